"""Lambda: media jobs (TTS, image, avatar)."""

from shared.api.lambda_app import http_handler
from shared.media.router import router

handler = http_handler(router, title="media")
