"""Together AI embeddings: its OpenAI-compatible ``POST /v1/embeddings`` through the ``openai`` client."""

from __future__ import annotations

from shared.config import env
from shared.providers.embed_intelligence import OpenAICompatibleEmbedder

TOGETHER_BASE_URL = "https://api.together.xyz/v1"


class TogetherEmbedder(OpenAICompatibleEmbedder):
    default_base_url = TOGETHER_BASE_URL
    default_key_env = env.TOGETHER_API_KEY.name
    label = "Together AI provider"
