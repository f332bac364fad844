"""POST /v1/generate and GET /v1/admin/costs over HTTP: cache, limits, ledger, bad input, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.providers.resilience import FallbackChain
from tests.conftest import TEST_BOT_TOKEN
from tests.fakes.openai_chat import FakeOpenAI, Reply, write_config

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    oa = FakeOpenAI()
    oa.server.start()
    yield oa
    oa.server.stop()


@pytest.fixture(scope="module")
def config_dir(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = {"provider": "fake", "model": "gpt-fake", "output_schema": "answer.json", "retries": 1}
    return write_config(
        tmp_path_factory.mktemp("genlayers-api"),
        providers={"fake": {"type": "openai", "base_url": fake.base_url, "api_key_env": "OPENAI_API_KEY"}},
        profiles={
            "plain": {**base, "feature": "chat", "domain": "lore"},
            "cached": {**base, "cache": "shared", "cache_ttl_seconds": 600, "feature": "faq"},
            "scene": {
                **base,
                "template": "Setting: {setting}\nAction: {action}",
                "variables": {
                    "setting": {"type": "string", "max_length": 10},
                    "action": {"type": "string"},
                },
            },
        },
        genlayers={
            "limits": {"user": {"usd_per_day": 1.0}, "session": {"tokens_per_day": 50}},
            "prices": {"fake": {"*": {"prompt": 1.0, "completion": 2.0}}},
        },
        schemas={"answer.json": SCHEMA},
    )


@pytest.fixture()
def env(
    fake: FakeOpenAI, config_dir: Path, db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    from shared.genlayers import service

    fake.reset()
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TEST_BOT_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key-000000000000")
    service.set_generator(service.Generator(chain=FallbackChain()))
    yield db_url
    service.set_generator(None)


@pytest.fixture()
def client(env: str) -> Iterator[TestClient]:
    from shared.api.app import build_app
    from shared.genlayers.router import router

    with TestClient(build_app([router]), raise_server_exceptions=False) as c:
        yield c


def token(telegram_id: int, *, admin: bool = False) -> dict[str, str]:
    from shared.auth.service import get_token_service
    from shared.auth.users import ensure_user
    from shared.db.connection import get_database

    with get_database().connection() as conn:
        user_id = ensure_user(conn, telegram_id)
    tok, _ = get_token_service().issue(
        user_id=user_id, telegram_id=telegram_id, roles=("admin",) if admin else ()
    )
    return {"Authorization": f"Bearer {tok}"}


def problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and {"type", "title", "detail"} <= body.keys()
    assert "Traceback" not in resp.text
    return dict(body)


def test_generate_returns_schema_valid_json_with_usage(client: TestClient, fake: FakeOpenAI) -> None:
    fake.push(Reply.json({"answer": "forty-two"}, prompt_tokens=20, completion_tokens=10))
    resp = client.post("/v1/generate", json={"profile": "plain", "input": "question"}, headers=token(1))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["output"] == {"answer": "forty-two"} and body["cached"] is False
    assert body["usage"]["prompt_tokens"] == 20 and body["usage"]["completion_tokens"] == 10
    assert body["usage"]["cost_usd"] == pytest.approx((20 * 1 + 10 * 2) / 1e6)
    assert client.post("/v1/generate", json={"profile": "plain", "input": "q"}).status_code == 401


def test_cache_hit_makes_no_provider_call(client: TestClient, fake: FakeOpenAI) -> None:
    from shared.genlayers import cache

    hits_before = cache.counter.hits
    req = {"profile": "cached", "input": "what is a d20?"}
    first = client.post("/v1/generate", json=req, headers=token(2))
    second = client.post("/v1/generate", json=req, headers=token(3))
    assert first.status_code == second.status_code == 200
    assert first.json()["cached"] is False and second.json()["cached"] is True
    assert second.json()["output"] == first.json()["output"]
    assert second.json()["usage"]["total_tokens"] == 0
    assert len(fake.calls()) == 1
    assert cache.counter.hits == hits_before + 1
    other = client.post("/v1/generate", json={**req, "input": "another"}, headers=token(2))
    assert other.json()["cached"] is False and len(fake.calls()) == 2


def test_bad_input_is_a_clear_problem(client: TestClient, fake: FakeOpenAI) -> None:
    h = token(4)
    body = problem(client.post("/v1/generate", json={"profile": "nope", "input": "x"}, headers=h), 404)
    assert "nope" in body["detail"]
    body = problem(
        client.post("/v1/generate", json={"profile": "scene", "input": {"setting": "x" * 11}}, headers=h),
        422,
    )
    locs = {".".join(e["loc"]) for e in body["errors"]}
    assert "input.setting" in locs and any("action" in e["msg"] for e in body["errors"])
    body = problem(
        client.post("/v1/generate", json={"profile": "plain", "input": "a" * 1_000_000}, headers=h), 413
    )
    assert "1000000 characters" in body["detail"]
    problem(client.post("/v1/generate", json={"profile": "plain"}, headers=h), 422)
    assert fake.calls() == []


def test_non_json_reply_ends_in_502(client: TestClient, fake: FakeOpenAI) -> None:
    fake.default = Reply(content="I think the answer is 42")
    body = problem(
        client.post("/v1/generate", json={"profile": "plain", "input": "q"}, headers=token(5)), 502
    )
    assert "not valid JSON" in body["detail"] and body["type"].endswith("/invalid-model-output")
    assert len(fake.calls()) == 2  # the reply was retried once with a hint


def test_session_limit_blocks_before_the_call(client: TestClient, fake: FakeOpenAI) -> None:
    h = token(6)
    req = {"profile": "plain", "input": "q", "session_id": "sess-limit"}
    fake.push(Reply.json({"answer": "a"}, prompt_tokens=40, completion_tokens=20))
    assert client.post("/v1/generate", json=req, headers=h).status_code == 200
    resp = client.post("/v1/generate", json=req, headers=h)
    body = problem(resp, 429)
    assert body["limit"] == {"scope": "session", "metric": "tokens", "limit": 50, "used": 60, "period": "day"}
    assert body["reset_at"].endswith("T00:00:00+00:00") and int(resp.headers["Retry-After"]) > 0
    assert len(fake.calls()) == 1  # the blocked request never reached the provider
    other_session = client.post("/v1/generate", json={**req, "session_id": "sess-2"}, headers=h)
    assert other_session.status_code == 200


def test_user_usd_limit_and_reusable_check(client: TestClient, fake: FakeOpenAI, env: str) -> None:
    from shared.db.connection import get_database
    from shared.genlayers.ledger import record_usage
    from shared.genlayers.limits import LimitExceeded, enforce_limits

    h = token(7)
    with get_database().connection() as conn:
        user_id = conn.execute("SELECT id FROM users WHERE telegram_id = 7").fetchone()["id"]
        # the media broker's row: units priced per unit, same ledger, same limits
        record_usage(
            conn,
            user_id=user_id,
            session_id=None,
            feature="media",
            domain="general",
            provider="tts",
            model="tts-1",
            kind="tts",
            units=1000,
            cost_usd=0.6,
            latency_ms=5,
        )
        enforce_limits(conn, user_id=user_id, session_id=None)  # 0.6 < 1.0: allowed
        with pytest.raises(LimitExceeded) as err:
            enforce_limits(conn, user_id=user_id, session_id=None, add_usd=0.5)  # a job that would pass it
        assert err.value.status == 429 and err.value.scope == "user"
        record_usage(
            conn,
            user_id=user_id,
            session_id=None,
            feature="media",
            domain="general",
            provider="tts",
            model="tts-1",
            kind="tts",
            units=1000,
            cost_usd=0.6,
            latency_ms=5,
        )
    body = problem(client.post("/v1/generate", json={"profile": "plain", "input": "q"}, headers=h), 429)
    assert body["limit"]["scope"] == "user" and body["limit"]["metric"] == "usd"
    assert fake.calls() == []


def test_ledger_adds_up_in_the_cost_report_and_cli(
    client: TestClient, fake: FakeOpenAI, env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    h = token(8)
    fake.push(Reply.json({"x": 1}), Reply.json({"answer": "b"}, prompt_tokens=100, completion_tokens=50))
    resp = client.post("/v1/generate", json={"profile": "plain", "input": "q"}, headers=h)
    assert resp.status_code == 200 and resp.json()["usage"]["calls"] == 2
    assert resp.json()["usage"]["prompt_tokens"] == 11 + 100  # the invalid attempt counts too
    problem(client.get("/v1/admin/costs", headers=h), 403)
    report = client.get("/v1/admin/costs?by=feature&since=1d", headers=token(9, admin=True))
    assert report.status_code == 200, report.text
    data = report.json()
    with psycopg.connect(env) as conn:
        calls, prompt, usd = conn.execute(
            "SELECT count(*), sum(prompt_tokens), sum(cost_usd)::float FROM usage_ledger"
        ).fetchone()  # type: ignore[misc]
    assert data["total"]["calls"] == calls and data["total"]["prompt_tokens"] == prompt
    assert data["total"]["cost_usd"] == pytest.approx(usd)
    assert {"chat", "media"} <= {r["key"] for r in data["rows"]}
    problem(client.get("/v1/admin/costs?by=nonsense", headers=token(9, admin=True)), 422)
    problem(client.get("/v1/admin/costs?since=yesterday", headers=token(9, admin=True)), 422)

    from shared.cli.main import main

    capsys.readouterr()
    assert main(["costs", "--by", "domain", "--since", "2000-01-01"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["total"]["calls"] == calls
    assert {r["key"] for r in last["rows"]} >= {"lore", "general"}


def test_router_is_mounted_and_cli_generate_runs_a_profile(
    env: str, fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.api.app import ROUTERS
    from shared.cli.main import main

    assert "shared.genlayers.router:router" in ROUTERS
    fake.push(Reply.json({"answer": "from the shell"}))
    capsys.readouterr()
    assert main(["generate", "--profile", "plain", "--input", "hello"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["output"] == {"answer": "from the shell"} and out["cached"] is False
    assert main(["generate", "--profile", "missing", "--input", "hello"]) == 1
    assert "unknown profile" in capsys.readouterr().err
