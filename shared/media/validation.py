"""Edge validation of media job requests: shape by pydantic, limits from ``media`` config.

Every refusal is a ``MediaInputError`` whose message says what is wrong and what is allowed; the router
turns it into a 422 problem document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.config.models import MediaSection

KINDS = ("tts", "image", "avatar")


class MediaInputError(ValueError):
    def __init__(self, detail: str, slug: str = "invalid-media-input") -> None:
        super().__init__(detail)
        self.detail, self.slug = detail, slug


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=32)
    input: dict[str, Any]
    priority: Literal["high", "low"] = "low"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TTSInput(_Input):
    text: str
    voice: str | None = None
    format: str | None = None
    speed: float = 1.0
    instructions: str | None = Field(default=None, max_length=2000)


class ImageInput(_Input):
    prompt: str
    size: str | None = None
    quality: str | None = None


class AvatarInput(_Input):
    image_url: str = Field(max_length=2048)
    audio_url: str = Field(max_length=2048)


@dataclass(frozen=True)
class ValidatedInput:
    kind: str
    normalized: dict[str, Any]  # what the provider gets and what is hashed


def _parse(model: type[_Input], data: dict[str, Any], kind: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "input"
        raise MediaInputError(f"{kind} input.{where}: {first.get('msg', 'invalid')}") from None


def _choice(value: str | None, default: str, allowed: list[str], what: str) -> str:
    chosen = value if value is not None else default
    if chosen not in allowed:
        raise MediaInputError(
            f"unsupported {what} {chosen!r}; allowed: {', '.join(allowed)}", f"unsupported-{what}"
        )
    return chosen


def _text(value: str, what: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise MediaInputError(f"{what} must not be empty", f"empty-{what}")
    if len(text) > limit:
        raise MediaInputError(f"{what} is {len(text)} characters; the limit is {limit}", f"{what}-too-long")
    return text


def validate_input(kind: str, data: dict[str, Any], cfg: MediaSection) -> ValidatedInput:
    if kind not in KINDS:
        raise MediaInputError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}", "unknown-media-kind")
    if kind == "tts":
        t = _parse(TTSInput, data, kind)
        c = cfg.tts
        if not c.min_speed <= t.speed <= c.max_speed:
            raise MediaInputError(
                f"speed {t.speed} is outside {c.min_speed}..{c.max_speed}", "unsupported-speed"
            )
        normalized: dict[str, Any] = {
            "text": _text(t.text, "text", c.max_chars),
            "voice": _choice(t.voice, c.default_voice, c.voices, "voice"),
            "format": _choice(t.format, c.default_format, c.formats, "format"),
            "speed": round(float(t.speed), 3),
        }
        if t.instructions and t.instructions.strip():
            normalized["instructions"] = t.instructions.strip()
        return ValidatedInput(kind, normalized)
    if kind == "image":
        i = _parse(ImageInput, data, kind)
        ci = cfg.image
        return ValidatedInput(
            kind,
            {
                "prompt": _text(i.prompt, "prompt", ci.max_prompt_chars),
                "size": _choice(i.size, ci.default_size, ci.sizes, "size"),
                "quality": _choice(i.quality, ci.default_quality, ci.qualities, "quality"),
            },
        )
    a = _parse(AvatarInput, data, kind)
    schemes = cfg.avatar.allowed_schemes
    for name in ("image_url", "audio_url"):
        url = getattr(a, name).strip()
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.netloc:
            raise MediaInputError(f"{name} must be an absolute {'/'.join(schemes)} URL", "unreachable-input")
    return ValidatedInput(
        kind,
        {
            "image_url": a.image_url.strip(),
            "audio_url": a.audio_url.strip(),
            "max_seconds": cfg.avatar.max_seconds,
        },
    )


def check_reachable(url: str, what: str, timeout: float) -> None:
    """The avatar provider fetches its inputs itself: refuse a job whose inputs it could not fetch."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            resp = client.head(url)
            if resp.status_code in (403, 405, 501):  # some servers refuse HEAD: try a GET
                with client.stream("GET", url) as streamed:
                    status = streamed.status_code
            else:
                status = resp.status_code
    except httpx.HTTPError as exc:
        raise MediaInputError(f"{what} is not reachable: {type(exc).__name__}", "unreachable-input") from None
    if status >= 400:
        raise MediaInputError(f"{what} is not reachable: HTTP {status}", "unreachable-input")
