"""The LLM seam: one request/result shape for every chat model, adapters chosen by configuration.

Adapters (one per file): ``llm_openai`` (official SDK, chat.completions or responses),
``llm_openai_compatible`` (Groq, OpenRouter, Together, Gemini, vLLM/Ollama through their
OpenAI-compatible base URLs), ``llm_anthropic`` (Messages API over httpx, tool use for JSON).

An adapter raises on transport failures (the exception is classified by
``shared.providers.resilience.classify``) and returns an ``LLMResult`` for anything the model
answered, including refusals, length cut-offs and content filtering (``finish_reason`` says which).
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.resilience import FailureKind, ProviderError

# finish reasons, normalised across providers
STOP, LENGTH, CONTENT_FILTER, REFUSAL = "stop", "length", "content_filter", "refusal"


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class LLMRequest:
    model: str
    messages: tuple[Message, ...]
    system: str = ""
    temperature: float = 0.7
    max_tokens: int = 1024
    schema: dict[str, Any] | None = None  # JSON Schema of the reply (strict structured output)
    schema_name: str = "output"
    strict: bool = True
    api: str = "chat"  # "chat" | "responses" (only OpenAI has responses)


@dataclass
class Usage:
    prompt_tokens: int = 0  # includes cached prompt tokens
    completion_tokens: int = 0
    cached_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class LLMResult:
    text: str  # the reply as text (JSON text for structured output)
    finish_reason: str = STOP
    refusal: str | None = None
    parsed: Any = None  # already-parsed JSON when the provider returns objects (tool use)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    provider: str = ""
    latency_ms: float = 0.0
    response_id: str | None = None


class LLMProvider(ABC):
    name: str
    settings: ProviderSettings

    @abstractmethod
    def generate(self, request: LLMRequest, *, timeout: float) -> LLMResult:
        """One call, no retries of its own, finished or failed within ``timeout`` seconds."""


# type in logic.yaml providers.<name>.type -> "module:class"
ADAPTERS: dict[str, str] = {
    "openai": "shared.providers.llm_openai:OpenAILLM",
    "openai_compatible": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "groq": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "openrouter": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "together": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "gemini": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "vllm": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "ollama": "shared.providers.llm_openai_compatible:OpenAICompatibleLLM",
    "anthropic": "shared.providers.llm_anthropic:AnthropicLLM",
}


def api_key(name: str, settings: ProviderSettings, *, required: bool = True) -> str | None:
    """The provider's key from the env var it names; missing → a misconfiguration (AUTH) error."""
    if not settings.api_key_env:
        return None
    var = next((v for v in env.ALL if v.name == settings.api_key_env), None)
    value = var.get() if var is not None else env.EnvVar(settings.api_key_env, "").get()
    if not value and required:
        raise ProviderError(
            name, FailureKind.AUTH, f"{settings.api_key_env} is not set: set the environment variable"
        )
    return value


_instances: dict[tuple[str, str], LLMProvider] = {}
_lock = threading.Lock()


def get_llm(name: str, settings: ProviderSettings) -> LLMProvider:
    """The adapter for a named provider, reused while its settings are unchanged (keeps connections)."""
    key = (name, settings.model_dump_json())
    with _lock:
        inst = _instances.get(key)
        if inst is None:
            spec = ADAPTERS.get(settings.type)
            if spec is None:
                raise ProviderError(name, FailureKind.CLIENT, f"unknown LLM provider type {settings.type!r}")
            module, _, attr = spec.partition(":")
            inst = getattr(importlib.import_module(module), attr)(name, settings)
            _instances[key] = inst
        return inst


def reset_llm_cache() -> None:
    with _lock:
        _instances.clear()
