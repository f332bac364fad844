"""Validation of Telegram WebApp (Mini App) ``initData``.

Two schemes, both as Telegram specifies (core.telegram.org/bots/webapps):

* ``verify_init_data``: HMAC-SHA256 with the bot token. secret = HMAC_SHA256(key="WebAppData",
  msg=bot_token); the data-check string is every decoded ``key=value`` pair except ``hash``,
  sorted by key and joined by ``\\n`` (``signature`` stays in); ``hash`` is compared in constant time.
* ``verify_init_data_third_party``: the Ed25519 ``signature`` field, checked with Telegram's
  published public key over ``"{bot_id}:WebAppData\\n"`` + the data-check string without ``hash``
  and ``signature``. For deployments that hold only the bot id.

The query string is decoded exactly once (``+`` is a space, ``%2B`` a plus) and values are hashed as
received: the ``user`` JSON keeps its escaped slashes, it is never re-serialised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

MAX_INIT_DATA_BYTES = 8192

# Telegram's published Ed25519 keys for third-party validation.
TELEGRAM_PUBLIC_KEY_PRODUCTION = "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d"
TELEGRAM_PUBLIC_KEY_TEST = "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec"

# auth_date may be this far in the future (clock skew between Telegram and us).
FUTURE_SKEW_SECONDS = 60


class InitDataError(ValueError):
    """Base class: initData was not accepted."""


class InitDataInvalid(InitDataError):
    """initData is malformed or its hash/signature does not match."""


class InitDataExpired(InitDataError):
    """initData is authentic but older than the allowed age."""


@dataclass(frozen=True)
class InitData:
    """Parsed, verified initData. ``fields`` holds every decoded pair as received."""

    fields: dict[str, str]
    auth_date: int
    user: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def telegram_id(self) -> int | None:
        if self.user is None:
            return None
        uid = self.user.get("id")
        return uid if isinstance(uid, int) else None


def parse_init_data(init_data: str, *, max_bytes: int = MAX_INIT_DATA_BYTES) -> dict[str, str]:
    """Decode the query string once into a dict, rejecting anything ambiguous."""
    if not isinstance(init_data, str) or not init_data.strip():
        raise InitDataInvalid("init_data is empty")
    if len(init_data.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InitDataInvalid(f"init_data is longer than {max_bytes} bytes")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InitDataInvalid("init_data is not a valid query string") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise InitDataInvalid(f"init_data has a duplicate key: {key!r}")
        if "\n" in key or "=" in key or "\n" in value:
            raise InitDataInvalid("init_data has a key or value with a forbidden character")
        fields[key] = value
    return fields


def data_check_string(fields: dict[str, str], *, exclude: tuple[str, ...] = ("hash",)) -> str:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields) if k not in exclude)


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode("utf-8"), hashlib.sha256).digest()


def sign_init_data(fields: dict[str, str], bot_token: str) -> str:
    """Build a signed initData query string (for tests and `hybrid dev` tooling)."""
    from urllib.parse import urlencode

    payload = {k: v for k, v in fields.items() if k != "hash"}
    digest = hmac.new(secret_key(bot_token), data_check_string(payload).encode("utf-8"), hashlib.sha256)
    return urlencode({**payload, "hash": digest.hexdigest()})


def _check_auth_date(fields: dict[str, str], max_age: int | None, now: float | None) -> int:
    raw = fields.get("auth_date")
    if raw is None or not raw.isdigit():
        raise InitDataInvalid("auth_date is missing or not an integer")
    auth_date = int(raw)
    current = time.time() if now is None else now
    if auth_date > current + FUTURE_SKEW_SECONDS:
        raise InitDataInvalid("auth_date is in the future")
    if max_age is not None and current - auth_date > max_age:
        raise InitDataExpired(f"init_data is older than {max_age} seconds")
    return auth_date


def _build(fields: dict[str, str], auth_date: int) -> InitData:
    user = None
    if "user" in fields:
        try:
            user = json.loads(fields["user"])
        except json.JSONDecodeError as exc:
            raise InitDataInvalid("user is not valid JSON") from exc
        if not isinstance(user, dict):
            raise InitDataInvalid("user is not a JSON object")
    extra: dict[str, Any] = {}
    for key in ("receiver", "chat"):
        if key in fields:
            try:
                extra[key] = json.loads(fields[key])
            except json.JSONDecodeError as exc:
                raise InitDataInvalid(f"{key} is not valid JSON") from exc
    return InitData(fields=fields, auth_date=auth_date, user=user, extra=extra)


def verify_init_data(
    init_data: str,
    bot_token: str,
    *,
    max_age: int | None = 86400,
    now: float | None = None,
    max_bytes: int = MAX_INIT_DATA_BYTES,
) -> InitData:
    """Verify initData signed with ``bot_token``; ``max_age=None`` skips the freshness check.

    Raises ``InitDataInvalid`` for anything malformed or unauthentic and ``InitDataExpired`` for
    authentic data that is too old (the signature is checked first, so an expired error is never
    given for forged data).
    """
    if not bot_token:
        raise ValueError("bot_token is required")
    fields = parse_init_data(init_data, max_bytes=max_bytes)
    received = fields.get("hash", "")
    if len(received) != 64 or any(c not in "0123456789abcdefABCDEF" for c in received):
        raise InitDataInvalid("hash is missing or not 64 hex characters")
    expected = hmac.new(
        secret_key(bot_token), data_check_string(fields).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, received.lower()):
        raise InitDataInvalid("hash does not match")
    return _build(fields, _check_auth_date(fields, max_age, now))


def _b64url_decode(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InitDataInvalid("signature is not base64url") from exc


def verify_init_data_third_party(
    init_data: str,
    bot_id: int,
    *,
    test_environment: bool = False,
    public_key_hex: str | None = None,
    max_age: int | None = 86400,
    now: float | None = None,
    max_bytes: int = MAX_INIT_DATA_BYTES,
) -> InitData:
    """Verify the Ed25519 ``signature`` field with Telegram's public key (no bot token needed)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    fields = parse_init_data(init_data, max_bytes=max_bytes)
    signature = fields.get("signature")
    if not signature:
        raise InitDataInvalid("signature is missing")
    raw_sig = _b64url_decode(signature)
    if len(raw_sig) != 64:
        raise InitDataInvalid("signature has the wrong length")
    key_hex = public_key_hex or (
        TELEGRAM_PUBLIC_KEY_TEST if test_environment else TELEGRAM_PUBLIC_KEY_PRODUCTION
    )
    message = f"{bot_id}:WebAppData\n" + data_check_string(fields, exclude=("hash", "signature"))
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)).verify(raw_sig, message.encode("utf-8"))
    except InvalidSignature as exc:
        raise InitDataInvalid("signature does not match") from exc
    return _build(fields, _check_auth_date(fields, max_age, now))
