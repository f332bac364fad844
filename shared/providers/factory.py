"""Build embedders and rerankers from ``configs/logic.yaml``.

``providers.<name>.type`` picks the adapter class from the tables below (lazy ``module:Class`` strings, so
nothing heavy is imported until a provider of that type is built). Adding a provider is one new module
plus one line here. ``llm.embedding_provider`` / ``llm.rerank_provider`` name the defaults.

Built instances are cached per process, keyed by the provider's settings: a model loads once, and an
edited provider entry (hot reload) builds a fresh instance.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from shared.config.models import ProviderSettings
from shared.providers.embeddings import Embedder, EmbeddingError
from shared.providers.rerank import Reranker, RerankError

EMBEDDER_TYPES: dict[str, str] = {
    "local": "shared.providers.embed_local:LocalEmbedder",
    "openai": "shared.providers.embed_openai:OpenAIEmbedder",
    "runpod": "shared.providers.embed_runpod:RunPodEmbedder",
    "together": "shared.providers.embed_together:TogetherEmbedder",
    "intelligence_api": "shared.providers.embed_intelligence:IntelligenceAPIEmbedder",
}

RERANKER_TYPES: dict[str, str] = {
    "local": "shared.providers.rerank_local:LocalReranker",
    "runpod": "shared.providers.rerank_runpod:RunPodReranker",
    "together": "shared.providers.rerank_together:TogetherReranker",
}

_cache: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def _load_class(spec: str) -> Any:
    """``module:Class``; the class builds itself with ``from_settings(name, settings, default_model=...)``."""
    module, _, attr = spec.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert isinstance(cls, type) and hasattr(cls, "from_settings"), spec
    return cls


def _settings(name: str, kind: str, types: dict[str, str]) -> ProviderSettings:
    from shared.config.store import get_config

    providers = get_config().logic.providers
    if name in providers:
        return providers[name]
    if name in types:  # a bare type name with no providers entry: the adapter's defaults
        return ProviderSettings(type=name)
    raise (EmbeddingError if kind == "embedder" else RerankError)(
        f"{kind} provider {name!r} is not configured: add providers.{name} to configs/logic.yaml"
    )


def _build(kind: str, name: str, types: dict[str, str], defaults: dict[str, Any]) -> Any:
    settings = _settings(name, kind, types)
    if settings.type not in types:
        known = ", ".join(sorted(types))
        raise (EmbeddingError if kind == "embedder" else RerankError)(
            f"providers.{name}.type {settings.type!r} is not a known {kind} type ({known})"
        )
    key = (kind, name, settings.model_dump_json() + repr(sorted(defaults.items())))
    with _lock:
        found = _cache.get(key)
        if found is not None:
            return found
        cls = _load_class(types[settings.type])
        instance = cls.from_settings(name, settings, **defaults)
        _cache[key] = instance
        return instance


def build_embedder(provider_name: str | None = None) -> Embedder:
    """The embedder named ``provider_name`` (default ``llm.embedding_provider``), built once per process."""
    from shared.config.store import get_config

    llm = get_config().logic.llm
    name = provider_name or llm.embedding_provider
    embedder = _build("embedder", name, EMBEDDER_TYPES, {"default_model": llm.model_embedding})
    assert isinstance(embedder, Embedder)
    return embedder


def build_reranker(provider_name: str | None = None) -> Reranker | None:
    """The reranker named ``provider_name`` (default ``llm.rerank_provider``); ``None`` when none is set."""
    from shared.config.store import get_config

    llm = get_config().logic.llm
    name = provider_name or llm.rerank_provider
    if not name:
        return None
    reranker = _build("reranker", name, RERANKER_TYPES, {"default_model": llm.model_rerank})
    assert isinstance(reranker, Reranker)
    return reranker


def clear_cache() -> None:
    """Forget built instances (tests)."""
    with _lock:
        _cache.clear()
