"""Lambda: Telegram initData → JWT, JWKS and OpenID discovery, and ``GET /healthz`` (no token)."""

from shared.api.app import check_startup
from shared.api.health import router as health_router
from shared.api.lambda_app import http_handler
from shared.auth.router import router

handler = http_handler(router, health_router, title="auth", startup=check_startup)
