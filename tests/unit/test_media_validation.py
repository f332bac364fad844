"""Media input validation, content hashing and cost estimates (no I/O)."""

from __future__ import annotations

import pytest

from shared.config.models import MediaSection
from shared.media.hashing import content_hash
from shared.media.quotas import actual_cost, estimate_cost
from shared.media.validation import MediaInputError, validate_input

CFG = MediaSection()


def test_tts_defaults_are_filled_and_text_is_trimmed() -> None:
    v = validate_input("tts", {"text": "  hello  "}, CFG)
    assert v.normalized == {"text": "hello", "voice": "alloy", "format": "mp3", "speed": 1.0}


def test_image_defaults() -> None:
    v = validate_input("image", {"prompt": "a cat"}, CFG)
    assert v.normalized == {"prompt": "a cat", "size": "1024x1024", "quality": "medium"}


@pytest.mark.parametrize(
    ("kind", "data", "slug", "needle"),
    [
        ("music", {}, "unknown-media-kind", "use one of tts, image, avatar"),
        ("tts", {"text": ""}, "empty-text", "must not be empty"),
        ("tts", {"text": "a" * 5000}, "text-too-long", "5000 characters; the limit is 4096"),
        ("tts", {"text": "a", "voice": "vader"}, "unsupported-voice", "allowed: alloy"),
        ("tts", {"text": "a", "format": "midi"}, "unsupported-format", "midi"),
        ("tts", {"text": "a", "speed": 0.1}, "unsupported-speed", "0.25..4.0"),
        ("tts", {"text": 5}, "invalid-media-input", "input.text"),
        ("image", {"prompt": "a", "size": "10x10"}, "unsupported-size", "1024x1536"),
        ("image", {"prompt": "p" * 4001}, "prompt-too-long", "limit is 4000"),
        (
            "avatar",
            {"image_url": "ftp://x/y.png", "audio_url": "https://x/a.mp3"},
            "unreachable-input",
            "image_url",
        ),
        ("avatar", {"image_url": "https://x/y.png"}, "invalid-media-input", "audio_url"),
    ],
)
def test_bad_input_says_why(kind: str, data: dict[str, object], slug: str, needle: str) -> None:
    with pytest.raises(MediaInputError) as err:
        validate_input(kind, data, CFG)
    assert err.value.slug == slug and needle in err.value.detail


def test_hash_depends_on_kind_input_and_provider_settings_only() -> None:
    a = validate_input("tts", {"text": "hi", "voice": "nova"}, CFG).normalized
    b = validate_input("tts", {"voice": "nova", "text": " hi "}, CFG).normalized
    settings = {"provider": "openai_tts", "model": "gpt-4o-mini-tts"}
    assert content_hash("tts", a, settings) == content_hash("tts", b, dict(reversed(settings.items())))
    assert content_hash("tts", a, settings) != content_hash("tts", a, settings | {"model": "tts-1"})
    assert content_hash("tts", a, settings) != content_hash("tts", a | {"speed": 1.1}, settings)
    assert len(content_hash("tts", a, settings)) == 64


def test_cost_estimates_follow_the_price_config() -> None:
    tts = validate_input("tts", {"text": "x" * 2000}, CFG).normalized
    assert estimate_cost("tts", tts, CFG) == pytest.approx(0.03)
    img = validate_input("image", {"prompt": "x", "quality": "high"}, CFG).normalized
    assert estimate_cost("image", img, CFG) == pytest.approx(0.167)
    avatar = {"image_url": "https://a/b.png", "audio_url": "https://a/b.mp3", "max_seconds": 60}
    assert estimate_cost("avatar", avatar, CFG) == pytest.approx(15 * 0.02)
    assert actual_cost("avatar", avatar, 4.5, CFG) == pytest.approx(4.5 * 0.02)
