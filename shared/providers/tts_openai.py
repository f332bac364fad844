"""Text to speech through OpenAI's speech API (``POST /v1/audio/speech``): voice, format, speed."""

from __future__ import annotations

from typing import Any

from shared.config.models import ProviderSettings
from shared.providers.media import MediaOutput, SpeechProvider, SpeechRequest

CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class OpenAISpeech(SpeechProvider):
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name, self.settings = name, settings
        self.model = settings.model or "gpt-4o-mini-tts"
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from shared.providers._openai_media import openai_client

            self._client = openai_client(self.settings)
        return self._client

    def synthesize(self, req: SpeechRequest, *, timeout: float) -> MediaOutput:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "voice": req.voice,
            "input": req.text,
            "response_format": req.format,
            "speed": req.speed,
            "timeout": timeout,
        }
        if req.instructions:
            kwargs["instructions"] = req.instructions
        response = self._get_client().audio.speech.create(**kwargs)
        body = response.read() if hasattr(response, "read") else bytes(response.content)
        if not body:
            raise RuntimeError("speech API returned an empty body")
        return MediaOutput(
            body=body,
            content_type=CONTENT_TYPES.get(req.format, "application/octet-stream"),
            extension=req.format,
            units=float(len(req.text)),
            model=self.model,
        )
