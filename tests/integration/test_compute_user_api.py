"""POST /v1/compute/tasks routes by priority: high runs online now, low is queued; GET polls by id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from tests.fakes.compute_env import use_logic_yaml
from tests.fakes.http import Fault
from tests.fakes.runpod_jobs import FakeRunPod

LOGIC = """
providers:
  rp:
    type: runpod
    base_url: {rp}
    api_key_env: RUNPOD_API_KEY
    timeout_seconds: 5
    options: {{endpoint_id: ep-test, dimension: 8}}
compute:
  online:
    embed: {{providers: [rp], budget_seconds: 1.0, max_attempts: 1}}
  kinds:
    embed: {{route: runpod, runpod_provider: rp, max_payload_bytes: 200}}
    classify: {{route: pull}}
    media.secret: {{route: inline}}
"""


def snapshot(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return [tuple(r.values()) for r in conn.execute("SELECT * FROM compute_tasks ORDER BY id").fetchall()]


def bearer(telegram_id: int, url: str) -> dict[str, str]:
    from shared.auth.service import get_token_service
    from shared.auth.users import ensure_user

    with psycopg.connect(url, row_factory=dict_row) as conn:
        user_id = ensure_user(conn, telegram_id)
    token, _ = get_token_service().issue(user_id=user_id, telegram_id=telegram_id)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def env(
    app_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[TestClient, FakeRunPod]]:
    from shared.api.app import create_app
    from shared.compute import online

    rp = FakeRunPod().start()
    monkeypatch.setenv("RUNPOD_API_KEY", "runpod-test-key")
    use_logic_yaml(monkeypatch, tmp_path, LOGIC.format(rp=rp.base_url))
    monkeypatch.setattr(online, "_router", None)
    from shared.providers import resilience

    monkeypatch.setattr(resilience, "_default_chain", None)
    with psycopg.connect(app_env) as conn:
        conn.execute("TRUNCATE compute_tasks RESTART IDENTITY CASCADE")
    with TestClient(create_app()) as client:
        yield client, rp
    rp.stop()


def test_low_is_queued_and_polled_by_its_owner_only(env: tuple[TestClient, FakeRunPod], app_env: str) -> None:
    client, _ = env
    alice, bob = bearer(1001, app_env), bearer(1002, app_env)
    body = {"kind": "classify", "payload": {"text": "hi"}, "idempotency_key": "k"}
    first = client.post("/v1/compute/tasks", json=body, headers=alice)
    assert first.status_code == 202 and first.json()["status"] == "pending"
    again = client.post("/v1/compute/tasks", json=body, headers=alice)
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/compute/tasks", json=body, headers=bob)  # keys are per user
    assert other.json()["id"] != first.json()["id"]
    tid = first.json()["id"]
    assert client.get(f"/v1/compute/tasks/{tid}", headers=alice).json()["payload"] == {"text": "hi"}
    assert client.get(f"/v1/compute/tasks/{tid}", headers=bob).status_code == 404
    assert client.get(f"/v1/compute/tasks/{tid}").status_code == 401


def test_high_runs_online_now(env: tuple[TestClient, FakeRunPod], app_env: str) -> None:
    client, rp = env
    before = snapshot(app_env)
    resp = client.post(
        "/v1/compute/tasks",
        json={"kind": "embed", "payload": {"texts": ["a dragon"]}, "priority": "high"},
        headers=bearer(1003, app_env),
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["provider"] == "rp" and len(out["result"]["embeddings"]) == 1
    assert snapshot(app_env) == before  # nothing queued
    rp.server.fail_always("/v2/ep-test/runsync", Fault(status=503))
    down = client.post(
        "/v1/compute/tasks",
        json={"kind": "embed", "payload": {"texts": ["a dragon"]}, "priority": "high"},
        headers=bearer(1003, app_env),
    )
    assert down.status_code == 503 and down.headers["content-type"].startswith("application/problem+json")
    assert down.json()["providers"][0]["provider"] == "rp" and "Retry-After" in down.headers


def test_bad_input_is_problem_json_and_changes_nothing(
    env: tuple[TestClient, FakeRunPod], app_env: str
) -> None:
    client, _ = env
    auth = bearer(1004, app_env)
    before = snapshot(app_env)
    cases = [
        ({"kind": "nope", "payload": {}}, 422, "unknown-kind"),
        ({"kind": "embed", "payload": {"texts": ["x" * 500]}}, 413, "payload-too-large"),
        ({"kind": "media.secret", "payload": {}}, 403, "kind-forbidden"),
        ({"kind": "classify", "payload": []}, 422, "validation-error"),
        ({"kind": "classify", "payload": {}, "priority": "urgent"}, 422, "validation-error"),
        ({"kind": "classify", "payload": {}, "callback_url": "ftp://x"}, 422, "validation-error"),
    ]
    for body, status, slug in cases:
        resp = client.post("/v1/compute/tasks", json=body, headers=auth)
        assert resp.status_code == status, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["type"].endswith(slug)
    assert snapshot(app_env) == before
