"""The media provider seams: text → speech, prompt → image, image + audio → talking-head video.

One adapter per file (``tts_openai``, ``image_openai``, ``avatar_http``), chosen by name in
``media.providers`` of logic.yaml. Adapters return the whole body or raise: never a partial result.
Errors are whatever the transport raises (openai / httpx exceptions or ``ProviderError``);
``shared.providers.resilience.classify`` turns them into transient / rate-limited / client / auth.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.config.models import ProviderSettings


@dataclass(frozen=True)
class MediaOutput:
    body: bytes
    content_type: str
    extension: str
    units: float  # billed units: characters (tts), images (image), seconds (avatar)
    model: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str
    format: str = "mp3"
    speed: float = 1.0
    instructions: str | None = None


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    size: str = "1024x1024"
    quality: str = "medium"


@dataclass(frozen=True)
class AvatarRequest:
    image_url: str
    audio_url: str
    max_seconds: int = 60


class MediaProvider(ABC):
    name: str
    model: str

    def settings_fingerprint(self) -> dict[str, Any]:
        """What, besides the input, changes the output (part of the content hash)."""
        return {"provider": self.name, "model": self.model}


class SpeechProvider(MediaProvider):
    @abstractmethod
    def synthesize(self, req: SpeechRequest, *, timeout: float) -> MediaOutput: ...


class ImageProvider(MediaProvider):
    @abstractmethod
    def generate(self, req: ImageRequest, *, timeout: float) -> MediaOutput: ...


class AvatarProvider(MediaProvider):
    @abstractmethod
    def render(
        self, req: AvatarRequest, *, timeout: float, idempotency_key: str | None = None
    ) -> MediaOutput: ...


# --- registry: provider type → factory --------------------------------------------------------
Factory = Callable[[str, ProviderSettings], MediaProvider]
_FACTORIES: dict[str, str] = {
    "openai_tts": "shared.providers.tts_openai:OpenAISpeech",
    "openai_image": "shared.providers.image_openai:OpenAIImages",
    "avatar_http": "shared.providers.avatar_http:HTTPAvatar",
}


def build_media_provider(name: str, settings: ProviderSettings) -> MediaProvider:
    import importlib

    spec = _FACTORIES.get(settings.type)
    if spec is None:
        raise ValueError(
            f"media provider {name!r}: unknown type {settings.type!r} (known: {sorted(_FACTORIES)})"
        )
    module, _, attr = spec.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    provider: MediaProvider = cls(name, settings)
    return provider


# --- concurrency: one semaphore per provider name, per process ---------------------------------
_sem_lock = threading.Lock()
_semaphores: dict[str, tuple[int, threading.BoundedSemaphore]] = {}


def provider_semaphore(name: str, limit: int) -> threading.BoundedSemaphore:
    """Caps calls in flight to one provider in this process (a new limit takes a fresh semaphore)."""
    with _sem_lock:
        current = _semaphores.get(name)
        if current is None or current[0] != limit:
            current = (limit, threading.BoundedSemaphore(max(1, limit)))
            _semaphores[name] = current
        return current[1]
