"""Telegram initData validation: our own signer, real Telegram-signed samples, tampering, expiry."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.auth.telegram import (
    InitDataExpired,
    InitDataInvalid,
    data_check_string,
    parse_init_data,
    sign_init_data,
    verify_init_data,
    verify_init_data_third_party,
)

# Published in Telegram Mini Apps documentation (@telegram-apps/init-data-node, init-data-golang, ...).
DOC_TOKEN = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8"
DOC_INIT_DATA = (
    "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22"
    "%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22"
    "%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648"
    "&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2"
)
# A live sample published in a public repository's validation script: it carries both `hash` and
# the Ed25519 `signature` (bot 8591035047), and escaped slashes in photo_url.
LIVE_TOKEN = "8591035047:AAH_0hYmc3PU9fG7sWg5OB8DrpYKCkT5-d0"
LIVE_BOT_ID = 8591035047
LIVE_INIT_DATA = (
    "user=%7B%22id%22%3A6698369098%2C%22first_name%22%3A%22LL%22%2C%22last_name%22%3A%22%22%2C%22username"
    "%22%3A%22hikill8%22%2C%22language_code%22%3A%22ru%22%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url"
    "%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2FWv2Pan8AblvcXnRiYGifRMtzn8SiynLRMme"
    "KIyWtl75-qbOEMAuzqnhDHrtjIIC1.svg%22%7D&chat_instance=-5471737045128434439&chat_type=sender"
    "&auth_date=1765127072&signature=Wn1Xo5OboCJ7X-KwCMsfhAp6okKjKMuoKKyYoYKskC9_F7h-5wIYoIlgA86kjFIZ3FKofmW"
    "XT0aTOmEl_fweDw&hash=20fe086cb18a6481d11f8fc5e16543e8e3bf28d3aaef970997e2bedbbd7277f5"
)
TOKEN = "1111:own-signer-token"
NOW = 1_700_000_000


def own(fields: dict[str, str]) -> str:
    return sign_init_data({"auth_date": str(NOW), **fields}, TOKEN)


def test_documentation_sample_verifies() -> None:
    data = verify_init_data(DOC_INIT_DATA, DOC_TOKEN, max_age=None)
    assert data.telegram_id == 279058397
    assert data.user is not None and data.user["username"] == "vdkfrost"
    assert data.auth_date == 1662771648


def test_live_sample_verifies_by_hash_with_signature_kept_in_the_check_string() -> None:
    data = verify_init_data(LIVE_INIT_DATA, LIVE_TOKEN, max_age=None)
    assert data.telegram_id == 6698369098
    assert data.user is not None
    assert data.user["photo_url"].startswith("https://t.me/i/userpic/")


def test_live_sample_verifies_by_ed25519_with_telegram_production_key() -> None:
    data = verify_init_data_third_party(LIVE_INIT_DATA, LIVE_BOT_ID, max_age=None)
    assert data.telegram_id == 6698369098


def test_live_sample_fails_with_the_test_environment_key_or_another_bot_id() -> None:
    with pytest.raises(InitDataInvalid):
        verify_init_data_third_party(LIVE_INIT_DATA, LIVE_BOT_ID, test_environment=True, max_age=None)
    with pytest.raises(InitDataInvalid):
        verify_init_data_third_party(LIVE_INIT_DATA, LIVE_BOT_ID + 1, max_age=None)


def _replace(raw: str, key: str, value: str) -> str:
    return "&".join(f"{key}={value}" if p.split("=", 1)[0] == key else p for p in raw.split("&"))


@pytest.mark.parametrize("sample,token", [(DOC_INIT_DATA, DOC_TOKEN), (LIVE_INIT_DATA, LIVE_TOKEN)])
def test_tampered_real_samples_are_rejected(sample: str, token: str) -> None:
    tampered = [
        _replace(sample, "auth_date", "1762771648"),
        sample.replace("%22id%22%3A", "%22id%22%3A1", 1),
        sample.replace("hash=", "hash=0", 1)[:-1],  # same length, different digest
        sample + "&extra=1",
        "&".join(p for p in sample.split("&") if not p.startswith("user=")),
    ]
    for variant in tampered:
        with pytest.raises(InitDataInvalid):
            verify_init_data(variant, token, max_age=None)
    with pytest.raises(InitDataInvalid):
        verify_init_data(sample, token + "x", max_age=None)


def test_live_sample_with_tampered_signature_fails_third_party() -> None:
    variant = LIVE_INIT_DATA.replace("signature=Wn1", "signature=Wn2")
    with pytest.raises(InitDataInvalid):
        verify_init_data_third_party(variant, LIVE_BOT_ID, max_age=None)


def test_own_signer_roundtrip_and_expiry_with_injected_clock() -> None:
    raw = own({"user": json.dumps({"id": 5, "first_name": "A"})})
    assert verify_init_data(raw, TOKEN, max_age=60, now=NOW + 60).telegram_id == 5
    with pytest.raises(InitDataExpired):
        verify_init_data(raw, TOKEN, max_age=60, now=NOW + 61)
    # max_age=None skips the freshness check entirely
    assert verify_init_data(raw, TOKEN, max_age=None, now=NOW + 10**8).auth_date == NOW


def test_expired_is_reported_only_for_authentic_data() -> None:
    raw = own({"user": json.dumps({"id": 5})})
    forged = raw.replace("hash=", "hash=f", 1)[:-1]
    with pytest.raises(InitDataInvalid):
        verify_init_data(forged, TOKEN, max_age=1, now=NOW + 10_000)


def test_future_auth_date_is_invalid() -> None:
    raw = sign_init_data({"auth_date": str(NOW + 3600), "user": '{"id":1}'}, TOKEN)
    with pytest.raises(InitDataInvalid, match="future"):
        verify_init_data(raw, TOKEN, max_age=None, now=NOW)


def test_plus_and_percent_2b_decode_once() -> None:
    # '+' in a query string is a space, '%2B' is a literal plus; both must hash as Telegram decoded them.
    user = {"id": 9, "first_name": "A+B C"}
    fields = {"auth_date": str(NOW), "user": json.dumps(user, separators=(",", ":"))}
    raw = sign_init_data(fields, TOKEN)  # urlencode writes ' ' as '+' and '+' as '%2B'
    assert "%2B" in raw and "+" in raw
    assert verify_init_data(raw, TOKEN, max_age=None).user == user
    # Decoding twice would turn %2B into '+' and then into ' ': the hash must then fail.
    double_decoded = raw.replace("%2B", "+")
    with pytest.raises(InitDataInvalid):
        verify_init_data(double_decoded, TOKEN, max_age=None)


def test_escaped_slashes_are_hashed_as_received() -> None:
    user_json = '{"id":3,"photo_url":"https:\\/\\/t.me\\/i\\/a.svg"}'
    raw = sign_init_data({"auth_date": str(NOW), "user": user_json}, TOKEN)
    data = verify_init_data(raw, TOKEN, max_age=None)
    assert data.fields["user"] == user_json  # not re-serialised
    assert data.user == {"id": 3, "photo_url": "https://t.me/i/a.svg"}


def test_data_check_string_keeps_signature_and_drops_hash() -> None:
    fields = parse_init_data("b=2&a=1&signature=s&hash=h")
    assert data_check_string(fields) == "a=1\nb=2\nsignature=s"
    assert data_check_string(fields, exclude=("hash", "signature")) == "a=1\nb=2"


@pytest.mark.parametrize(
    "raw,reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not a query string", "query string"),
        ("a=1&a=2&hash=" + "0" * 64, "duplicate"),
        ("auth_date=1&user=%7B%7D", "hash"),
        ("auth_date=1&hash=xyz", "hash"),
        ("auth_date=1&hash=" + "g" * 64, "hash"),
        ("x=" + "a" * 100_000, "longer"),
        ("auth_date=%ff&hash=" + "0" * 64, "query string"),
    ],
)
def test_malformed_input_is_invalid_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InitDataInvalid, match=reason):
        verify_init_data(raw, TOKEN, max_age=None)


def test_missing_auth_date_is_invalid() -> None:
    raw = sign_init_data({"user": '{"id":1}'}, TOKEN)
    with pytest.raises(InitDataInvalid, match="auth_date"):
        verify_init_data(raw, TOKEN, max_age=None)


def test_third_party_with_own_key() -> None:
    key = Ed25519PrivateKey.generate()
    pub_hex = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    fields = {"auth_date": str(NOW), "user": '{"id":77}', "hash": "a" * 64}
    message = "42:WebAppData\n" + data_check_string(fields, exclude=("hash", "signature"))
    sig = base64.urlsafe_b64encode(key.sign(message.encode())).rstrip(b"=").decode()
    raw = "&".join(f"{k}={quote(v)}" for k, v in {**fields, "signature": sig}.items())
    assert verify_init_data_third_party(raw, 42, public_key_hex=pub_hex, max_age=None).telegram_id == 77
    with pytest.raises(InitDataExpired):
        verify_init_data_third_party(raw, 42, public_key_hex=pub_hex, max_age=10, now=NOW + 11)
    with pytest.raises(InitDataInvalid, match="signature"):
        verify_init_data_third_party(raw.replace("signature=", "signature=AA"), 42, public_key_hex=pub_hex)
