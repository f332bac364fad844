"""Which provider serves a kind: ``media.<kind>.provider`` names one of ``media.providers``."""

from __future__ import annotations

import threading

from shared.config.models import MediaSection, ProviderSettings
from shared.providers.media import MediaProvider, build_media_provider

_lock = threading.Lock()
_instances: dict[str, tuple[ProviderSettings, MediaProvider]] = {}


class ProviderNotConfigured(RuntimeError):
    pass


def provider_name(kind: str, cfg: MediaSection) -> str:
    if kind == "tts":
        return cfg.tts.provider
    if kind == "image":
        return cfg.image.provider
    return cfg.avatar.provider


def get_provider(name: str, cfg: MediaSection) -> MediaProvider:
    settings = cfg.providers.get(name)
    if settings is None:
        raise ProviderNotConfigured(f"media provider {name!r} is not under media.providers in logic.yaml")
    with _lock:
        cached = _instances.get(name)
        if cached is None or cached[0] != settings:
            cached = (settings, build_media_provider(name, settings))
            _instances[name] = cached
        return cached[1]


def max_concurrency(name: str, cfg: MediaSection) -> int:
    settings = cfg.providers.get(name)
    return int((settings.options if settings else {}).get("max_concurrency", 2))


def reset() -> None:
    with _lock:
        _instances.clear()
