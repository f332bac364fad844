"""Lambda: generation with profiles and structured outputs."""

from shared.api.lambda_app import http_handler
from shared.genlayers.router import router

handler = http_handler(router, title="generate")
