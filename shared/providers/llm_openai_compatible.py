"""Groq, OpenRouter, Together, Gemini (and vLLM / Ollama) through their OpenAI-compatible endpoints.

Same SDK and wire format as OpenAI's ``chat.completions``; only the base URL and key differ. These
endpoints have no ``responses`` API, so every profile goes through chat completions here. A provider
that does not accept strict schemas can set ``options.response_format: json_object``; the reply is
validated against the profile's schema either way.
"""

from __future__ import annotations

from shared.config.models import ProviderSettings
from shared.providers.llm_openai import OpenAILLM

BASE_URLS: dict[str, str] = {
    "groq": "https://api.groq.com/openai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "together": "https://api.together.xyz/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
    "ollama": "http://127.0.0.1:11434/v1",
}


class OpenAICompatibleLLM(OpenAILLM):
    supports_responses = False

    def _env_base_url(self) -> str | None:
        return None

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.default_base_url = BASE_URLS.get(settings.type)
        super().__init__(name, settings)
