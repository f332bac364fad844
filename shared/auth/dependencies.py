"""FastAPI dependencies that give routes the authenticated principal."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from shared.api.problems import Problem
from shared.auth.tokens import Principal, TokenInvalid

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="hybrid"'}


def _authorizer_claims(request: Request) -> dict[str, Any] | None:
    """Claims API Gateway's JWT authorizer already verified (present only inside Lambda)."""
    event = request.scope.get("aws.event")
    if not isinstance(event, dict):
        return None
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    return claims if isinstance(claims, dict) else None


def _from_claims(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles") or ()
    if isinstance(roles, str):  # API Gateway flattens arrays to "[a b]"
        roles = tuple(r for r in roles.strip("[]").split() if r)
    return Principal(
        user_id=int(claims["sub"]), telegram_id=int(claims.get("tg", 0)), roles=tuple(roles), claims=claims
    )


def get_principal(request: Request) -> Principal:
    claims = _authorizer_claims(request)
    if claims is not None:
        try:
            return _from_claims(claims)
        except (KeyError, TypeError, ValueError) as exc:
            raise Problem(
                401, "authorizer claims are malformed", slug="unauthorized", headers=_UNAUTHORIZED
            ) from exc
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "a Bearer access token is required", slug="unauthorized", headers=_UNAUTHORIZED)
    # Imported here: behind API Gateway's JWT authorizer (the claims above) no function needs jwt or
    # cryptography, so they stay off the Lambda init path.
    from shared.auth.service import get_token_service

    try:
        return get_token_service().verify(token.strip())
    except TokenInvalid as exc:
        raise Problem(401, str(exc), slug="unauthorized", headers=_UNAUTHORIZED) from exc


def require_admin(request: Request) -> Principal:
    from shared.auth.service import admin_ids

    principal = get_principal(request)
    if not principal.is_admin and principal.telegram_id not in admin_ids():
        raise Problem(403, "this route is for administrators", slug="forbidden")
    return principal
