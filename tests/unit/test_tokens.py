"""RS256 access tokens: claims, JWKS, rotation, rejection."""

from __future__ import annotations

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from shared.auth.keys import KeyRing, generate_private_key
from shared.auth.tokens import TokenInvalid, TokenService

NOW = 1_700_000_000


def service(ring: KeyRing, **kw: object) -> TokenService:
    return TokenService(ring, issuer="https://auth.example", audience="webapp", ttl_seconds=900, **kw)  # type: ignore[arg-type]


def test_token_has_the_required_claims_and_verifies_against_the_jwks() -> None:
    ring = KeyRing(generate_private_key())
    token, ttl = service(ring).issue(user_id=7, telegram_id=42, now=NOW)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == ring.signing_kid
    jwk = next(k for k in ring.jwks()["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        token,
        RSAAlgorithm.from_jwk(jwk),
        algorithms=["RS256"],
        audience="webapp",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "https://auth.example" and claims["sub"] == "7" and claims["tg"] == 42
    assert claims["exp"] - claims["iat"] == ttl == 900


def test_expiry_with_injected_clock() -> None:
    svc = service(KeyRing(generate_private_key()))
    token, _ = svc.issue(user_id=1, telegram_id=1, now=NOW)
    assert svc.verify(token, now=NOW + 899).user_id == 1
    with pytest.raises(TokenInvalid, match="expired"):
        svc.verify(token, now=NOW + 900)


def test_rotation_old_key_still_verifies_unknown_key_does_not() -> None:
    old, new, stranger = generate_private_key(), generate_private_key(), generate_private_key()
    old_token, _ = service(KeyRing(old)).issue(user_id=1, telegram_id=1)
    rotated = service(KeyRing(new, [old.public_key()]))
    assert len(rotated.ring.jwks()["keys"]) == 2
    assert rotated.verify(old_token).user_id == 1
    stranger_token, _ = service(KeyRing(stranger)).issue(user_id=1, telegram_id=1)
    with pytest.raises(TokenInvalid, match="known key"):
        rotated.verify(stranger_token)


def test_wrong_audience_issuer_or_garbage_is_rejected() -> None:
    ring = KeyRing(generate_private_key())
    token, _ = TokenService(ring, issuer="https://other", audience="webapp").issue(user_id=1, telegram_id=1)
    with pytest.raises(TokenInvalid):
        service(ring).verify(token)
    token, _ = TokenService(ring, issuer="https://auth.example", audience="x").issue(user_id=1, telegram_id=1)
    with pytest.raises(TokenInvalid):
        service(ring).verify(token)
    with pytest.raises(TokenInvalid, match="malformed"):
        service(ring).verify("not-a-jwt")


def test_hs256_token_with_our_kid_is_rejected() -> None:
    ring = KeyRing(generate_private_key())
    forged = jwt.encode(
        {"sub": "1", "iss": "https://auth.example", "aud": "webapp", "iat": NOW, "exp": NOW + 9},
        "a-secret-that-is-long-enough-for-hs256!!",
        algorithm="HS256",
        headers={"kid": ring.signing_kid},
    )
    with pytest.raises(TokenInvalid):
        service(ring).verify(forged)
