"""HTTP routes of the auth function: Telegram initData → JWT, JWKS and OpenID discovery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from shared.api.problems import Problem
from shared.auth import telegram
from shared.auth.dependencies import get_principal
from shared.auth.service import admin_ids, get_token_service, get_verifier
from shared.auth.tokens import Principal
from shared.auth.users import upsert_user
from shared.config.store import get_config
from shared.db.connection import get_database
from shared.observability.metrics import add_metric

router = APIRouter()


class TelegramAuthRequest(BaseModel):
    init_data: str = Field(description="Telegram.WebApp.initData, exactly as received")


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class MeResponse(BaseModel):
    user_id: int
    telegram_id: int
    roles: list[str]


@router.post("/v1/auth/telegram", response_model=TokenResponse, tags=["auth"])
def auth_telegram(body: TelegramAuthRequest) -> TokenResponse:
    cfg = get_config().logic.auth
    verifier = get_verifier()
    try:
        data = verifier.verify(
            body.init_data, max_age=cfg.init_data_max_age_seconds, max_bytes=cfg.max_init_data_bytes
        )
    except telegram.InitDataExpired as exc:
        add_metric("AuthRejected", 1)
        raise Problem(401, str(exc), slug="init-data-expired", title="initData expired") from exc
    except telegram.InitDataInvalid as exc:
        add_metric("AuthRejected", 1)
        raise Problem(401, str(exc), slug="init-data-invalid", title="initData invalid") from exc
    if data.user is None or data.telegram_id is None:
        raise Problem(
            401,
            "initData carries no user with an integer id",
            slug="init-data-invalid",
            title="initData invalid",
        )
    with get_database().connection() as conn:
        user_id = upsert_user(conn, data.user)
    roles = ("admin",) if data.telegram_id in admin_ids() else ()
    token, ttl = get_token_service().issue(user_id=user_id, telegram_id=data.telegram_id, roles=roles)
    add_metric("AuthIssued", 1)
    return TokenResponse(access_token=token, expires_in=ttl)


@router.get("/v1/auth/me", response_model=MeResponse, tags=["auth"])
def me(principal: Principal = Depends(get_principal)) -> MeResponse:
    return MeResponse(
        user_id=principal.user_id, telegram_id=principal.telegram_id, roles=list(principal.roles)
    )


@router.get("/.well-known/jwks.json", tags=["auth"])
def jwks() -> dict[str, Any]:
    return get_token_service().ring.jwks()


@router.get("/.well-known/openid-configuration", tags=["auth"])
def openid_configuration() -> dict[str, Any]:
    svc = get_token_service()
    issuer = svc.issuer.rstrip("/")
    return {
        "issuer": svc.issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/v1/auth/telegram",
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "aud", "sub", "iat", "exp", "tg", "roles"],
    }
