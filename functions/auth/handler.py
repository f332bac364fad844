"""Lambda: Telegram initData → JWT, JWKS and OpenID discovery."""

from shared.api.app import check_startup
from shared.api.lambda_app import http_handler
from shared.auth.router import router

handler = http_handler(router, title="auth", startup=check_startup)
