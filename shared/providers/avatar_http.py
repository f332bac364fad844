"""Talking-head avatar over HTTP: an image and an audio track in, an MP4 out.

Wire format (documented in README, "Media broker"):
  POST {base}/v1/renders   {"image_url", "audio_url", "max_seconds"}
       headers: Authorization: Bearer <key>, Idempotency-Key: <content hash>
       → 200/201/202 {"id", "status": "queued"|"processing"|"succeeded"|"failed"}
  GET  {base}/v1/renders/{id}
       → {"id", "status", "video_url"?, "duration_seconds"?, "content_type"?, "error"?, "retryable"?}
  GET  {video_url}  (absolute, or relative to base) → the video bytes
The adapter polls every ``options.poll_seconds`` until ``succeeded`` or ``failed`` or the timeout.
"""

from __future__ import annotations

import time
from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.media import AvatarProvider, AvatarRequest, MediaOutput
from shared.providers.resilience import FailureKind, ProviderError


class HTTPAvatar(AvatarProvider):
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name, self.settings = name, settings
        self.model = settings.model or "talking-head"
        self.poll_seconds = float(settings.options.get("poll_seconds", 2.0))

    def _base(self) -> str:
        base = self.settings.base_url or env.AVATAR_API_URL.get()
        if not base:
            raise env.MissingSetting("AVATAR_API_URL", f"media provider {self.name} has no base_url")
        return base.rstrip("/")

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        key_var = self.settings.api_key_env
        if key_var:
            key = env.EnvVar(key_var, "avatar API key", secret=True).require()
            headers["Authorization"] = f"Bearer {key}"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def render(
        self, req: AvatarRequest, *, timeout: float, idempotency_key: str | None = None
    ) -> MediaOutput:
        import httpx

        deadline = time.monotonic() + timeout
        base = self._base()
        headers = self._headers(idempotency_key)
        with httpx.Client(base_url=base, headers=headers, timeout=min(timeout, 30.0)) as client:
            created = client.post(
                "/v1/renders",
                json={"image_url": req.image_url, "audio_url": req.audio_url, "max_seconds": req.max_seconds},
            )
            created.raise_for_status()
            render: dict[str, Any] = created.json()
            while render.get("status") not in ("succeeded", "failed"):
                if time.monotonic() + self.poll_seconds > deadline:
                    raise ProviderError(self.name, FailureKind.TRANSIENT, "render timed out")
                time.sleep(self.poll_seconds)
                polled = client.get(f"/v1/renders/{render['id']}")
                polled.raise_for_status()
                render = polled.json()
            if render["status"] == "failed":
                kind = FailureKind.TRANSIENT if render.get("retryable") else FailureKind.CLIENT
                raise ProviderError(self.name, kind, f"render failed: {render.get('error') or 'no reason'}")
            video = client.get(str(render["video_url"]))
            video.raise_for_status()
        if not video.content:
            raise ProviderError(self.name, FailureKind.TRANSIENT, "empty video")
        return MediaOutput(
            body=video.content,
            content_type=str(render.get("content_type") or "video/mp4"),
            extension="mp4",
            units=float(render.get("duration_seconds") or 0.0),
            model=self.model,
            meta={"render_id": render.get("id")},
        )
