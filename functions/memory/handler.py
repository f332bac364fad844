"""Lambda: memory queries (hybrid search over pgvector)."""

from shared.api.lambda_app import http_handler
from shared.memory37.router import router

handler = http_handler(router, title="memory")
