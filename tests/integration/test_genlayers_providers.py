"""Structured generation through the real openai SDK (chat.completions and responses) and the
Anthropic Messages API, against fake servers on 127.0.0.1, with the ledger in real PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.genlayers.service import Context, Generator, ProviderTimeout, ProviderUnavailable
from shared.genlayers.structured import ContentFiltered, OutputInvalid, Refused, Truncated
from shared.providers.resilience import FallbackChain
from tests.fakes.anthropic import MESSAGES, AReply, FakeAnthropic
from tests.fakes.http import Fault
from tests.fakes.openai_chat import CHAT, RESPONSES, FakeOpenAI, Reply, user_messages, write_config

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string", "minLength": 1}, "score": {"type": "integer"}},
    "required": ["title", "score"],
    "additionalProperties": False,
}
GOOD = {"title": "The Gate", "score": 3}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    oa, an = FakeOpenAI(), FakeAnthropic()
    oa.server.start()
    an.server.start()
    yield oa, an
    oa.server.stop()
    an.server.stop()


@pytest.fixture(scope="module")
def config_dir(fakes: tuple[FakeOpenAI, FakeAnthropic], tmp_path_factory: pytest.TempPathFactory) -> Path:
    oa, an = fakes
    base = {"output_schema": "item.json", "retries": 2, "timeout_seconds": 0.5, "feature": "tests"}
    return write_config(
        tmp_path_factory.mktemp("genlayers-config"),
        providers={
            "fake": {"type": "openai", "base_url": oa.base_url, "api_key_env": "OPENAI_API_KEY"},
            "groq": {"type": "groq", "base_url": oa.base_url, "api_key_env": "GROQ_API_KEY"},
            "claude": {
                "type": "anthropic",
                "base_url": an.base_url,
                "api_key_env": "ANTHROPIC_API_KEY",
                "model": "claude-fake",
            },
        },
        profiles={
            "p_chat": {**base, "provider": "fake", "model": "gpt-fake", "api": "chat"},
            "p_responses": {**base, "provider": "fake", "model": "gpt-fake", "api": "responses"},
            "p_claude": {**base, "provider": "claude", "model": "claude-fake"},
            "p_fallback": {**base, "provider": "fake", "model": "gpt-fake", "fallback": ["claude"]},
            "p_groq": {**base, "provider": "groq", "model": "llama-fake", "api": "responses"},
        },
        genlayers={
            "call_budget_seconds": 5,
            "max_attempts_per_provider": 2,
            "rate_limit_wait_max_seconds": 1.0,
            "prices": {
                "fake": {"gpt-fake": {"prompt": 1.0, "completion": 2.0, "cached": 0.5}},
                "claude": {"*": {"prompt": 3.0, "completion": 15.0}},
            },
        },
        schemas={"item.json": SCHEMA},
    )


@pytest.fixture()
def gen(
    fakes: tuple[FakeOpenAI, FakeAnthropic],
    config_dir: Path,
    db_url: str,
    reset_singletons: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Generator]:
    for f in fakes:
        f.reset()
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key-000000000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "anthropic-test-key")
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test-key")
    yield Generator(chain=FallbackChain())  # fresh breakers: no test sees another's failures


def ledger(db_url: str, session: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "SELECT provider, model, prompt_tokens, completion_tokens, cached_tokens, cost_usd::float, "
            "feature, meta FROM usage_ledger WHERE session_id = %s ORDER BY id",
            (session,),
        )
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


API = pytest.mark.parametrize(("profile", "path"), [("p_chat", CHAT), ("p_responses", RESPONSES)])


@API
def test_valid_reply_sends_the_strict_schema_and_is_billed(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], db_url: str, profile: str, path: str
) -> None:
    oa, _ = fakes
    oa.push(Reply.json(GOOD, prompt_tokens=1000, completion_tokens=500, cached_tokens=400))
    res = gen.generate(profile, "a gate", Context(session_id=f"valid-{profile}"))
    assert res.output == GOOD and not res.cached and res.provider == "fake"
    [req] = oa.calls()
    assert req.path == path
    body = req.json()
    if path == CHAT:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"] == SCHEMA and body["max_completion_tokens"] == 1024
    else:
        fmt = body["text"]["format"]
        assert fmt["type"] == "json_schema" and fmt["strict"] is True and fmt["schema"] == SCHEMA
        assert body["max_output_tokens"] == 1024
    assert {k.lower(): v for k, v in req.headers.items()}[
        "authorization"
    ] == "Bearer sk-test-fake-key-000000000000"
    rows = ledger(db_url, f"valid-{profile}")
    assert len(rows) == 1
    r = rows[0]
    assert (r["provider"], r["model"], r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"]) == (
        "fake",
        "gpt-fake",
        1000,
        500,
        400,
    )
    # 600 prompt at $1/M + 400 cached at $0.5/M + 500 completion at $2/M
    assert r["cost_usd"] == pytest.approx((600 * 1.0 + 400 * 0.5 + 500 * 2.0) / 1e6)
    assert res.cost_usd == pytest.approx(r["cost_usd"])


@API
def test_invalid_reply_is_retried_with_a_narrow_hint(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], db_url: str, profile: str, path: str
) -> None:
    oa, _ = fakes
    oa.push(Reply.json({"title": "x", "score": "high"}), Reply.json(GOOD))
    res = gen.generate(profile, "a gate", Context(session_id=f"hint-{profile}"))
    assert res.output == GOOD and res.attempts == 2
    first, second = oa.calls(path)
    assert len(user_messages(first)) == 1
    hint = user_messages(second)[-1]
    assert "$.score" in hint and "'high' is not of type 'integer'" in hint
    # narrow: the failing path and message only, never the schema again
    assert "additionalProperties" not in hint and '"properties"' not in hint and "minLength" not in hint
    assert len(hint) < 400
    rows = ledger(db_url, f"hint-{profile}")
    assert len(rows) == 2  # the tokens of every attempt are counted
    assert res.usage.prompt_tokens == sum(r["prompt_tokens"] for r in rows) == 22


@API
def test_refusal_length_and_content_filter_are_distinct_errors(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], db_url: str, profile: str, path: str
) -> None:
    oa, _ = fakes
    session = f"ends-{profile}"
    oa.push(Reply(refusal="I can't help with that."))
    with pytest.raises(Refused, match="can't help"):
        gen.generate(profile, "x", Context(session_id=session))
    oa.push(Reply(content='{"title": "cut', finish="length"))
    with pytest.raises(Truncated):
        gen.generate(profile, "x", Context(session_id=session))
    oa.push(Reply(content="", finish="content_filter"))
    with pytest.raises(ContentFiltered):
        gen.generate(profile, "x", Context(session_id=session))
    assert len(oa.calls(path)) == 3  # none of them retried
    assert len(ledger(db_url, session)) == 3  # but every one billed


@API
def test_non_json_is_retried_with_a_hint_then_fails(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], profile: str, path: str
) -> None:
    oa, _ = fakes
    oa.default = Reply(content="Sure! Here is your answer: a gate.")
    with pytest.raises(OutputInvalid, match="not valid JSON") as err:
        gen.generate(profile, "x", Context(session_id="nonjson"))
    calls = oa.calls(path)
    assert len(calls) == 3  # 1 + retries(2)
    assert "not valid JSON" in user_messages(calls[1])[-1]
    assert err.value.status == 502


@API
def test_429_with_a_short_retry_after_is_waited_out(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], profile: str, path: str
) -> None:
    oa, _ = fakes
    oa.server.fail_next(path, Fault(status=429, headers={"Retry-After": "0.3"}))
    oa.push(Reply.json(GOOD))
    started = time.monotonic()
    res = gen.generate(profile, "x", Context(session_id="429"))
    assert res.output == GOOD
    assert len(oa.server.calls(path)) == 2
    assert time.monotonic() - started >= 0.3


@API
def test_429_with_a_long_retry_after_fails_fast_with_the_hint(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], profile: str, path: str
) -> None:
    oa, _ = fakes
    oa.server.fail_next(path, Fault(status=429, headers={"Retry-After": "30"}))
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as err:
        gen.generate(profile, "x", Context(session_id="429long"))
    assert err.value.extra["retry_after"] == pytest.approx(30)
    assert len(oa.server.calls(path)) == 1 and time.monotonic() - started < 1.0


@API
def test_500_is_retried_and_sdk_retries_do_not_multiply(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], profile: str, path: str
) -> None:
    oa, _ = fakes
    oa.server.fail_next(path, Fault(status=500))
    oa.push(Reply.json(GOOD))
    assert gen.generate(profile, "x", Context(session_id="500")).output == GOOD
    assert len(oa.server.calls(path)) == 2
    oa.reset()
    oa.server.fail_always(path, Fault(status=503))
    with pytest.raises(ProviderUnavailable):
        gen.generate(profile, "x", Context(session_id="500"))
    # exactly our max_attempts_per_provider (2): the SDK's max_retries is 0
    assert len(oa.server.calls(path)) == 2


@API
def test_a_hang_times_out_per_call(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], profile: str, path: str
) -> None:
    oa, _ = fakes
    # a hang (answering 500 once it wakes, so a late request never eats another test's scripted reply)
    oa.server.fail_always(path, Fault(delay=3.0, status=500))
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as err:
        gen.generate(profile, "x", Context(session_id="hang"))
    elapsed = time.monotonic() - started
    assert err.value.status == 504
    assert len(oa.server.calls(path)) == 2 and 0.9 < elapsed < 2.5  # two 0.5 s timeouts + a backoff
    oa.server.fail_always(path, None)


def test_anthropic_tool_use_structured_output(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], db_url: str
) -> None:
    _, an = fakes
    an.push(
        AReply(tool_input={"title": "", "score": 1}),
        AReply(tool_input=GOOD, input_tokens=100, output_tokens=50, cache_read_input_tokens=40),
    )
    res = gen.generate("p_claude", "a gate", Context(session_id="claude"))
    assert res.output == GOOD and res.provider == "claude"
    first, second = an.server.calls(MESSAGES)
    body = first.json()
    assert body["tools"][0]["input_schema"] == SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "p_claude"}
    assert {k.lower(): v for k, v in first.headers.items()}["x-api-key"] == "anthropic-test-key"
    hint = second.json()["messages"][-1]["content"]
    assert "$.title" in hint and "properties" not in hint
    rows = ledger(db_url, "claude")
    assert [r["prompt_tokens"] for r in rows] == [13, 140] and rows[1]["cached_tokens"] == 40
    assert rows[1]["cost_usd"] == pytest.approx((140 * 3 + 50 * 15) / 1e6)


def test_anthropic_length_and_overload(gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic]) -> None:
    _, an = fakes
    an.push(AReply(tool_input={"title": "x"}, stop_reason="max_tokens"))
    with pytest.raises(Truncated):
        gen.generate("p_claude", "x", Context(session_id="claude2"))
    an.server.fail_next(MESSAGES, Fault(status=529))
    an.push(AReply(tool_input=GOOD))
    assert gen.generate("p_claude", "x", Context(session_id="claude2")).output == GOOD


def test_fallback_to_the_next_provider(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], db_url: str
) -> None:
    oa, an = fakes
    oa.server.fail_always(CHAT, Fault(status=500))
    an.push(AReply(tool_input=GOOD))
    res = gen.generate("p_fallback", "x", Context(session_id="fallback"))
    assert res.output == GOOD and res.provider == "claude"
    assert len(oa.server.calls(CHAT)) == 2 and len(an.server.calls(MESSAGES)) == 1
    assert [r["provider"] for r in ledger(db_url, "fallback")] == ["claude"]
    meta = ledger(db_url, "fallback")[0]["meta"]
    assert json.loads(meta)["profile"] if isinstance(meta, str) else meta["profile"] == "p_fallback"


def test_openai_compatible_providers_use_chat_completions(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], monkeypatch: pytest.MonkeyPatch
) -> None:
    oa, _ = fakes
    oa.push(Reply.json(GOOD))
    res = gen.generate("p_groq", "x", Context(session_id="groq"))
    assert res.output == GOOD and res.provider == "groq"
    [req] = oa.calls()
    assert req.path == CHAT  # no responses API on compatible endpoints
    assert req.json()["model"] == "llama-fake"
    assert {k.lower(): v for k, v in req.headers.items()}["authorization"] == "Bearer gsk-test-key"
    # a missing key is a misconfiguration: the provider is taken out, with the variable named
    monkeypatch.delenv("GROQ_API_KEY")
    from shared.providers.llm import reset_llm_cache

    reset_llm_cache()
    with pytest.raises(ProviderUnavailable, match="GROQ_API_KEY is not set"):
        Generator(chain=FallbackChain()).generate("p_groq", "x", Context(session_id="groq"))


def test_logs_carry_usage_but_never_the_prompt_or_output(
    gen: Generator, fakes: tuple[FakeOpenAI, FakeAnthropic], caplog: pytest.LogCaptureFixture
) -> None:
    oa, _ = fakes
    oa.push(Reply.json({"title": "OUTPUT-MARKER-77", "score": 1}, prompt_tokens=123))
    with caplog.at_level("INFO"):
        gen.generate("p_chat", "PROMPT-MARKER-42 tell me a story", Context(session_id="logs"))
    record = next(r for r in caplog.records if r.getMessage() == "generation")
    assert record.usage["prompt"] == 123 and record.profile == "p_chat"  # type: ignore[attr-defined]
    everything = " ".join(str(r.__dict__) for r in caplog.records)
    assert "PROMPT-MARKER-42" not in everything and "OUTPUT-MARKER-77" not in everything
