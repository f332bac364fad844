"""Fake OpenAI speech and image endpoints on 127.0.0.1, speaking the real wire format.

``POST /v1/audio/speech`` {model, input, voice, response_format, speed} → raw audio bytes;
``POST /v1/images/generations`` {model, prompt, size, quality, n, ...} → {"created", "data": [{"b64_json"}]}.
Point the openai SDK at ``fake.base_url``. Bodies are deterministic functions of the request, so a test can
tell which request produced which stored asset. Invalid voices/sizes answer 400 the way OpenAI does.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time

from tests.fakes.http import FakeServer, Request, Response

SPEECH = "/v1/audio/speech"
IMAGES = "/v1/images/generations"

VOICES = {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
FORMATS = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
}
SIZES = {"1024x1024", "1024x1536", "1536x1024", "auto", "256x256", "512x512"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _header(req: Request, name: str) -> str:
    return next((v for k, v in req.headers.items() if k.lower() == name), "")


def _error(message: str, param: str) -> Response:
    return Response(
        400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    )


def speech_bytes(text: str, voice: str, fmt: str, speed: float) -> bytes:
    digest = hashlib.sha256(f"{text}|{voice}|{fmt}|{speed}".encode()).digest()
    return b"ID3FAKE-" + fmt.encode() + b"-" + digest * 8


def image_bytes(prompt: str, size: str, quality: str) -> bytes:
    return PNG_MAGIC + hashlib.sha256(f"{prompt}|{size}|{quality}".encode()).digest() * 16


class FakeOpenAIMedia:
    def __init__(self) -> None:
        self.server = FakeServer()
        self.speech_delay = 0.0  # seconds each speech call takes (to observe concurrency)
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.server.route("POST", SPEECH, self._speech)
        self.server.route("POST", IMAGES, self._images)

    def start(self) -> FakeOpenAIMedia:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def speech_calls(self) -> list[Request]:
        return self.server.calls(SPEECH)

    def image_calls(self) -> list[Request]:
        return self.server.calls(IMAGES)

    def _speech(self, req: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.speech_delay:
                time.sleep(self.speech_delay)
            return self._speech_answer(req)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _speech_answer(self, req: Request) -> Response:
        if not _header(req, "authorization").startswith("Bearer "):
            return Response(401, {"error": {"message": "missing API key", "type": "invalid_request_error"}})
        body = req.json()
        text, voice = body.get("input"), body.get("voice")
        fmt, speed = body.get("response_format", "mp3"), float(body.get("speed", 1.0))
        if not text or len(text) > 4096:
            return _error("input must be 1-4096 characters", "input")
        if voice not in VOICES:
            return _error(f"Invalid value for voice: {voice!r}", "voice")
        if fmt not in FORMATS:
            return _error(f"Invalid value for response_format: {fmt!r}", "response_format")
        if not 0.25 <= speed <= 4.0:
            return _error("speed must be between 0.25 and 4.0", "speed")
        return Response(200, speech_bytes(text, voice, fmt, speed), content_type=FORMATS[fmt])

    def _images(self, req: Request) -> Response:
        if not _header(req, "authorization").startswith("Bearer "):
            return Response(401, {"error": {"message": "missing API key", "type": "invalid_request_error"}})
        body = req.json()
        prompt, size, quality = body.get("prompt"), body.get("size", "auto"), body.get("quality", "auto")
        if not prompt:
            return _error("prompt is required", "prompt")
        if size not in SIZES:
            return _error(f"Invalid value for size: {size!r}", "size")
        if int(body.get("n", 1)) != 1:
            return _error("this fake makes one image per call", "n")
        data = base64.b64encode(image_bytes(prompt, size, quality)).decode()
        return Response(
            200,
            {
                "created": int(time.time()),
                "data": [{"b64_json": data, "revised_prompt": None}],
                "usage": {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50},
            },
        )
