"""Profiles at config load, narrow hints, prices, --since parsing, and the resilience 429 wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from shared.config.models import PriceEntry
from shared.config.store import ConfigError, ConfigStore, default_sources
from shared.genlayers import profiles as _profiles  # noqa: F401 - registers the cross-check
from shared.genlayers.pricing import cost_usd
from shared.genlayers.profiles import InputInvalid, get_profile, template_fields
from shared.genlayers.structured import check, hint
from shared.genlayers.timeparse import parse_since
from shared.providers.resilience import (
    BreakerRegistry,
    CallPolicy,
    Candidate,
    FailureKind,
    FallbackChain,
    ProviderError,
)
from tests.fakes.openai_chat import write_config

PROVIDERS = {"fake": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}}


def load(tmp_path: Path, profiles: dict[str, Any], schemas: dict[str, Any] | None = None) -> ConfigStore:
    d = write_config(tmp_path / "cfg", providers=PROVIDERS, profiles=profiles, schemas=schemas)
    return ConfigStore(default_sources(d), reload_seconds=3600)


def test_repository_profiles_load_and_compile() -> None:
    store = ConfigStore(default_sources(Path(__file__).resolve().parents[2] / "configs"))
    cfg = store.get()
    scene = get_profile("scene", cfg)
    assert scene.schema is not None and scene.schema["required"]
    assert [c[0] for c in scene.candidates] == ["openai", "groq", "anthropic"]
    assert get_profile("story", cfg).profile.plan is not None


def test_invalid_schema_file_fails_at_load_naming_the_file(tmp_path: Path) -> None:
    bad = {"type": "object", "properties": {"a": {"type": "strnig"}}}
    with pytest.raises(ConfigError, match=r"bad\.json: not a valid JSON Schema at properties/a/type"):
        load(tmp_path, {"p": {"provider": "fake", "output_schema": "bad.json"}}, {"bad.json": bad})
    with pytest.raises(ConfigError, match=r"broken\.json: not valid JSON"):
        load(tmp_path, {"p": {"provider": "fake", "output_schema": "broken.json"}}, {"broken.json": "{nope"})
    with pytest.raises(ConfigError, match=r"missing\.json: schema file not found"):
        load(tmp_path, {"p": {"provider": "fake", "output_schema": "missing.json"}})
    with pytest.raises(ConfigError, match="must be a file under"):
        load(tmp_path, {"p": {"provider": "fake", "output_schema": "../logic.yaml"}})


def test_profile_cross_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="placeholders not declared"):
        load(tmp_path, {"p": {"provider": "fake", "template": "{who} {input}"}})
    with pytest.raises(ConfigError, match="plain name"):
        load(tmp_path, {"p": {"provider": "fake", "template": "{input.__class__}"}})
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        load(tmp_path, {"p": {"provider": "fake", "fallback": ["nope:model"]}})
    with pytest.raises(ConfigError, match="cache_ttl_seconds"):
        load(tmp_path, {"p": {"provider": "fake", "cache": "shared"}})
    with pytest.raises(ConfigError, match="plan.worker"):
        load(
            tmp_path,
            {
                "q": {"provider": "fake"},
                "p": {"provider": "fake", "plan": {"planner": "q", "worker": "ghost"}},
            },
        )


def test_a_bad_edit_keeps_the_last_good_config(tmp_path: Path) -> None:
    store = load(tmp_path, {"p": {"provider": "fake"}})
    store._explicit_reload = 0
    write_config(
        tmp_path / "cfg", providers=PROVIDERS, profiles={"p": {"provider": "fake", "output_schema": "x.json"}}
    )
    assert "p" in store.get().profiles.profiles and store.last_error and "x.json" in store.last_error


def test_template_variables_are_validated(tmp_path: Path) -> None:
    store = load(
        tmp_path,
        {
            "p": {
                "provider": "fake",
                "template": "{kind}: {input}",
                "variables": {
                    "input": {"type": "string", "max_length": 5},
                    "kind": {"type": "string", "enum": ["rule", "lore"], "default": "rule"},
                },
            }
        },
    )
    p = get_profile("p", store.get())
    assert p.render(p.variables_for("hello")) == "rule: hello"
    with pytest.raises(InputInvalid) as err:
        p.variables_for({"input": "too long", "kind": "other"})
    assert {".".join(e["loc"]) for e in err.value.errors} == {"input.input", "input.kind"}
    with pytest.raises(InputInvalid):
        p.variables_for({"kind": "rule"})
    assert template_fields("{a} and {b} and {a}") == ("a", "b")


def test_hint_lists_only_failing_paths() -> None:
    schema = {
        "type": "object",
        "properties": {
            "scenes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"title": {"type": "string", "description": "A LONG DESCRIPTION"}},
                    "required": ["title"],
                },
            }
        },
        "required": ["scenes"],
    }
    _, problems, is_json = check('{"scenes": [{"title": "a"}, {}]}', None, Draft202012Validator(schema))
    assert is_json and problems == ["$.scenes[1]: 'title' is a required property"]
    text = hint(problems, is_json=True)
    assert "$.scenes[1]" in text and "LONG DESCRIPTION" not in text
    _, problems, is_json = check('```json\n{"scenes": []}\n```', None, Draft202012Validator(schema))
    assert is_json and problems == []  # code fences are tolerated
    _, problems, is_json = check("nope", None, None)
    assert not is_json and "not valid JSON" in hint(problems, is_json=False)


def test_prices() -> None:
    prices = {"openai": {"gpt-4o-mini": PriceEntry(prompt=0.15, completion=0.6, cached=0.075)}}
    prices["tts"] = {"*": PriceEntry(unit=0.000015)}
    got = cost_usd(
        prices,
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens=1_000_000,
        completion_tokens=1_000_000,
        cached_tokens=500_000,
    )
    assert got == pytest.approx(0.5 * 0.15 + 0.5 * 0.075 + 0.6)
    assert cost_usd(prices, provider="tts", model="x", kind="tts", units=1000) == pytest.approx(0.015)
    assert cost_usd(prices, provider="openai", model="unknown") is None


def test_parse_since() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert parse_since("24h", now=now) == now - timedelta(hours=24)
    assert parse_since("2026-01-01", now=now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_since(None, now=now) == now - timedelta(days=7)
    with pytest.raises(ValueError):
        parse_since("yesterday", now=now)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_resilience_waits_out_a_short_retry_after_only_when_asked() -> None:
    clock = Clock()
    calls: list[float] = []

    def limited_then_ok(timeout: float) -> str:
        calls.append(clock.t)
        if len(calls) == 1:
            raise ProviderError("a", FailureKind.RATE_LIMITED, "429", status=429, retry_after=0.5)
        return "ok"

    chain = FallbackChain(BreakerRegistry(clock=clock), clock=clock, sleep=clock.sleep)
    policy = CallPolicy(budget_seconds=5, rate_limit_wait_max=1.0)
    assert chain.call([Candidate("a", limited_then_ok)], policy) == ("a", "ok")
    assert calls == [0.0, 0.5]
    # default policy (compute): no waiting, fall back at once
    calls.clear()
    chain = FallbackChain(BreakerRegistry(clock=clock), clock=clock, sleep=clock.sleep)
    result = chain.call([Candidate("a", limited_then_ok), Candidate("b", lambda t: "b")], CallPolicy())
    assert result == ("b", "b") and len(calls) == 1
