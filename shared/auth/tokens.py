"""Issue and verify our RS256 access tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jwt and cryptography load when a token is issued or verified, not at import
    from shared.auth.keys import KeyRing


class TokenInvalid(Exception):
    """The bearer token is missing, malformed, expired, or not signed by one of our keys."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as every route sees it."""

    user_id: int
    telegram_id: int
    roles: tuple[str, ...] = ()
    claims: dict[str, Any] | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


class TokenService:
    def __init__(self, ring: KeyRing, *, issuer: str, audience: str, ttl_seconds: int = 900) -> None:
        self.ring, self.issuer, self.audience, self.ttl = ring, issuer, audience, ttl_seconds

    def issue(
        self,
        *,
        user_id: int,
        telegram_id: int,
        roles: tuple[str, ...] = (),
        now: float | None = None,
        ttl_seconds: int | None = None,
    ) -> tuple[str, int]:
        import jwt

        iat = int(time.time() if now is None else now)
        ttl = ttl_seconds or self.ttl
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": iat,
            "exp": iat + ttl,
            "tg": telegram_id,
            "roles": list(roles),
        }
        token = jwt.encode(
            claims, self.ring.signing_key, algorithm="RS256", headers={"kid": self.ring.signing_kid}
        )
        return token, ttl

    def verify(self, token: str, *, now: float | None = None) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid("malformed token") from exc
        key = self.ring.public_keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != "RS256":
            raise TokenInvalid("token is not signed by a known key")
        # With an injected clock PyJWT's own exp check (wall clock) is off and ours below applies.
        options: dict[str, Any] = {
            "require": ["exp", "iat", "sub", "iss", "aud"],
            "verify_exp": now is None,
            "verify_iat": now is None,
        }
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("token has expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        if now is not None and claims["exp"] <= now:
            raise TokenInvalid("token has expired")
        try:
            return Principal(
                user_id=int(claims["sub"]),
                telegram_id=int(claims.get("tg", 0)),
                roles=tuple(claims.get("roles") or ()),
                claims=claims,
            )
        except (TypeError, ValueError) as exc:
            raise TokenInvalid("token has malformed claims") from exc
