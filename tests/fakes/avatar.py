"""Fake talking-head avatar API (the wire format ``shared.providers.avatar_http`` documents).

``POST /v1/renders`` → {"id", "status": "queued"}; ``GET /v1/renders/{id}`` → "processing" on the first poll,
then "succeeded" with ``video_url`` (relative) and ``duration_seconds``; ``GET /v1/renders/{id}/video`` → MP4
bytes. It also serves input files under ``/inputs/`` so "inputs reachable" checks have something real to hit.
``fail_renders = True`` makes renders end in "failed" (a non-retryable render error).
"""

from __future__ import annotations

import hashlib
import itertools
import threading

from tests.fakes.http import FakeServer, Request, Response

CREATE = "/v1/renders"
MP4_MAGIC = b"\x00\x00\x00\x18ftypmp42"


def _header(req: Request, name: str) -> str:
    return next((v for k, v in req.headers.items() if k.lower() == name), "")


def video_bytes(image_url: str, audio_url: str) -> bytes:
    return MP4_MAGIC + hashlib.sha256(f"{image_url}|{audio_url}".encode()).digest() * 32


class FakeAvatar:
    def __init__(self) -> None:
        self.server = FakeServer()
        self.renders: dict[str, dict[str, object]] = {}
        self.polls: dict[str, int] = {}
        self.fail_renders = False
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server.route("POST", CREATE, self._create)
        self.server.route("GET", "/v1/renders/*", self._get)
        self.server.route("GET", "/inputs/*", self._input)

    def start(self) -> FakeAvatar:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url

    def input_url(self, name: str) -> str:
        return f"{self.server.url}/inputs/{name}"

    def create_calls(self) -> list[Request]:
        return self.server.calls(CREATE)

    def _create(self, req: Request) -> Response:
        if _header(req, "authorization") != "Bearer avatar-test-key":
            return Response(401, {"error": "unauthorized"})
        body = req.json()
        if not body.get("image_url") or not body.get("audio_url"):
            return Response(400, {"error": "image_url and audio_url are required"})
        with self._lock:
            render_id = f"r{next(self._ids)}"
            self.renders[render_id] = body
            self.polls[render_id] = 0
        return Response(202, {"id": render_id, "status": "queued"})

    def _get(self, req: Request) -> Response:
        parts = req.path.split("/")  # ['', 'v1', 'renders', id, ('video')?]
        render_id = parts[3]
        body = self.renders.get(render_id)
        if body is None:
            return Response(404, {"error": "no such render"})
        if len(parts) == 5 and parts[4] == "video":
            return Response(
                200, video_bytes(str(body["image_url"]), str(body["audio_url"])), content_type="video/mp4"
            )
        with self._lock:
            self.polls[render_id] += 1
            first = self.polls[render_id] == 1
        if first:
            return Response(200, {"id": render_id, "status": "processing"})
        if self.fail_renders:
            return Response(
                200, {"id": render_id, "status": "failed", "error": "no face found", "retryable": False}
            )
        return Response(
            200,
            {
                "id": render_id,
                "status": "succeeded",
                "video_url": f"/v1/renders/{render_id}/video",
                "duration_seconds": 4.5,
                "content_type": "video/mp4",
            },
        )

    def _input(self, req: Request) -> Response:
        name = req.path.rsplit("/", 1)[-1]
        if name.startswith("missing"):
            return Response(404, {"error": "not found"})
        return Response(200, b"input-bytes-" + name.encode(), content_type="application/octet-stream")
