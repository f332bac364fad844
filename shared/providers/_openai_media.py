"""An openai SDK client for a media provider's settings (imported lazily: only workers that call need it)."""

from __future__ import annotations

from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings


def openai_client(settings: ProviderSettings) -> Any:
    import openai

    key_var = settings.api_key_env or "OPENAI_API_KEY"
    api_key = env.EnvVar(key_var, "API key of an OpenAI media provider", secret=True).require()
    base_url = settings.base_url or env.OPENAI_BASE_URL.get()
    # The media queue retries with backoff; the SDK must not retry on its own underneath it.
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=settings.timeout_seconds)
