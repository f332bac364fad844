"""Images through OpenAI's image API (``POST /v1/images/generations``): size, quality, one image."""

from __future__ import annotations

import base64
from typing import Any

from shared.config.models import ProviderSettings
from shared.providers.media import ImageProvider, ImageRequest, MediaOutput

_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class OpenAIImages(ImageProvider):
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name, self.settings = name, settings
        self.model = settings.model or "gpt-image-1"
        self.output_format = str(settings.options.get("output_format", "png"))
        self._client: Any = None

    def settings_fingerprint(self) -> dict[str, Any]:
        return super().settings_fingerprint() | {"output_format": self.output_format}

    def _get_client(self) -> Any:
        if self._client is None:
            from shared.providers._openai_media import openai_client

            self._client = openai_client(self.settings)
        return self._client

    def generate(self, req: ImageRequest, *, timeout: float) -> MediaOutput:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "prompt": req.prompt,
            "size": req.size,
            "quality": req.quality,
            "n": 1,
            "timeout": timeout,
        }
        if self.model.startswith("dall-e"):
            kwargs["response_format"] = "b64_json"  # dall-e answers with URLs unless asked
        else:
            kwargs["output_format"] = self.output_format
        result = self._get_client().images.generate(**kwargs)
        data = list(result.data or [])
        if not data:
            raise RuntimeError("image API returned no image")
        first = data[0]
        if first.b64_json:
            body = base64.b64decode(first.b64_json)
        elif first.url:
            import httpx

            resp = httpx.get(first.url, timeout=timeout)
            resp.raise_for_status()
            body = resp.content
        else:
            raise RuntimeError("image API returned neither b64_json nor url")
        if not body:
            raise RuntimeError("image API returned an empty image")
        return MediaOutput(
            body=body,
            content_type=_FORMATS.get(self.output_format, "image/png"),
            extension=self.output_format if self.output_format in _FORMATS else "png",
            units=1.0,
            model=self.model,
            meta={"revised_prompt": getattr(first, "revised_prompt", None)},
        )
