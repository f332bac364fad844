"""Low-priority generation: POST /v1/generate priority low → compute_tasks → OpenAI Batch API (fake,
real SDK) → the drain writes the schema-valid result back to the task; billed at the batch price."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.providers.resilience import FallbackChain
from tests.conftest import TEST_BOT_TOKEN
from tests.fakes.openai_chat import CHAT, FakeOpenAI, Reply, write_config

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


@pytest.fixture()
def client(
    fake: FakeOpenAI, tmp_path: Path, db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    from shared.api.app import build_app
    from shared.genlayers import service
    from shared.genlayers.router import router

    fake.reset()
    base = {"provider": "fake", "model": "gpt-fake", "output_schema": SCHEMA, "feature": "digest"}
    d = write_config(
        tmp_path / "cfg",
        providers={"fake": {"type": "openai", "base_url": fake.base_url, "api_key_env": "OPENAI_API_KEY"}},
        profiles={"digest": {**base, "batch": True}, "online_only": base},
        genlayers={"prices": {"fake": {"*": {"prompt": 2.0, "completion": 4.0}}}, "batch_price_factor": 0.5},
    )
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(d))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TEST_BOT_TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key-000000000000")
    service.set_generator(service.Generator(chain=FallbackChain()))
    with TestClient(build_app([router]), raise_server_exceptions=False) as c:
        yield c
    service.set_generator(None)


def headers(telegram_id: int) -> dict[str, str]:
    from shared.auth.service import get_token_service
    from shared.auth.users import ensure_user
    from shared.db.connection import get_database

    with get_database().connection() as conn:
        user_id = ensure_user(conn, telegram_id)
    tok, _ = get_token_service().issue(user_id=user_id, telegram_id=telegram_id)
    return {"Authorization": f"Bearer {tok}"}


def drain_once(kind: str) -> dict[str, int]:
    import time

    from shared.compute.drain import run_inline
    from shared.compute.kinds import compute_settings
    from shared.db.connection import get_database

    return run_inline(get_database(), kind, compute_settings(), deadline=time.monotonic() + 10, budget=10)


def test_low_priority_generation_goes_through_the_batch_api(
    client: TestClient, fake: FakeOpenAI, db_url: str
) -> None:
    h = headers(71)
    resp = client.post(
        "/v1/generate", json={"profile": "digest", "input": "weekly news", "priority": "low"}, headers=h
    )
    assert resp.status_code == 202, resp.text
    task_id = resp.json()["task_id"]

    drain_once("genlayers.generate")  # first attempt: upload + create the batch, then "pending"
    assert len(fake.batches) == 1 and fake.calls(CHAT) == []
    [batch] = fake.batches.values()
    assert batch["endpoint"] == "/v1/chat/completions" and batch["completion_window"] == "24h"
    status = client.get(f"/v1/generate/tasks/{task_id}", headers=h).json()
    assert status["status"] != "completed" and status["result"] is None
    assert "submitted as batch batch_1" in (status["error"] or "")

    def make_due() -> None:
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE compute_tasks SET not_before = now() WHERE id = %s", (task_id,))

    make_due()
    drain_once("genlayers.generate")  # still in progress: polled, not submitted again
    assert len(fake.batches) == 1

    fake.push(Reply.json({"answer": "the digest"}, prompt_tokens=1000, completion_tokens=1000))
    fake.complete_batches()
    make_due()
    drain_once("genlayers.generate")
    done = client.get(f"/v1/generate/tasks/{task_id}", headers=h).json()
    assert done["status"] == "completed", done
    result: dict[str, Any] = done["result"]
    assert result["output"] == {"answer": "the digest"} and result["batch_id"] == "batch_1"
    assert result["usage"]["cost_usd"] == pytest.approx((1000 * 2.0 + 1000 * 4.0) / 1e6 * 0.5)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT feature, prompt_tokens, cost_usd::float FROM usage_ledger "
            "WHERE meta->>'batch_id' = 'batch_1'"
        ).fetchall()
    assert rows == [("digest", 1000, pytest.approx(0.003))]
    assert client.get(f"/v1/generate/tasks/{task_id}", headers=headers(72)).status_code == 404


def test_profiles_without_batch_are_refused_at_once(client: TestClient, fake: FakeOpenAI) -> None:
    resp = client.post(
        "/v1/generate", json={"profile": "online_only", "input": "x", "priority": "low"}, headers=headers(73)
    )
    assert resp.status_code == 422 and "does not allow batch" in resp.json()["detail"]
    resp = client.post(
        "/v1/generate", json={"profile": "ghost", "input": "x", "priority": "low"}, headers=headers(73)
    )
    assert resp.status_code == 404
    assert fake.batches == {}
