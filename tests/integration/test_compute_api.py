"""The worker API over HTTP: tokens, kinds, leases, results; bad input changes nothing in the table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from shared.compute import queue as q
from shared.compute import workers as w

PROBLEM = "application/problem+json"


def _conn(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, row_factory=dict_row)


def snapshot(url: str) -> list[tuple[Any, ...]]:
    with _conn(url) as conn:
        return [tuple(r.values()) for r in conn.execute("SELECT * FROM compute_tasks ORDER BY id").fetchall()]


@pytest.fixture()
def client(app_env: str) -> Iterator[TestClient]:
    from shared.api.app import create_app

    with _conn(app_env) as conn:
        conn.execute("TRUNCATE compute_tasks, compute_workers RESTART IDENTITY CASCADE")
    with TestClient(create_app()) as c:
        yield c


def add_worker(url: str, name: str, **kw: Any) -> str:
    with _conn(url) as conn:
        return w.add_worker(conn, name, **kw)[1]


def enqueue(url: str, kind: str = "classify", **kw: Any) -> q.Task:
    with _conn(url) as conn:
        return q.enqueue(conn, kind=kind, payload=kw.pop("payload", {"text": "hi"}), **kw)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(resp: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == status and body["detail"] and body["title"]
    if slug:
        assert body["type"].endswith("/" + slug), body
    return body


def test_claim_and_complete_round_trip(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "gpu-1", kinds=["classify"])
    task = enqueue(app_env, payload={"text": "hello"})
    resp = client.get("/internal/workers/tasks", params={"kind": "classify", "limit": 5}, headers=auth(token))
    assert resp.status_code == 200
    (got,) = resp.json()["tasks"]
    assert got["id"] == task.id and got["payload"] == {"text": "hello"} and got["lease_token"]
    assert got["lease_until"]
    url = f"/internal/workers/tasks/{task.id}/result"
    ok = client.post(
        url, json={"lease_token": got["lease_token"], "result": {"label": "greeting"}}, headers=auth(token)
    )
    assert ok.status_code == 200 and ok.json()["status"] == "completed"
    again = client.post(
        url, json={"lease_token": got["lease_token"], "result": {"label": "greeting"}}, headers=auth(token)
    )
    assert again.status_code == 200  # idempotent
    before = snapshot(app_env)
    conflict = client.post(
        url, json={"lease_token": got["lease_token"], "result": {"label": "x"}}, headers=auth(token)
    )
    assert_problem(conflict, 409, "result-conflict")
    assert snapshot(app_env) == before
    with _conn(app_env) as conn:
        stored = q.get_task(conn, task.id)
    assert stored is not None and stored.result == {"label": "greeting"} and stored.worker_id == "gpu-1"


def test_bad_tokens_are_refused_and_change_nothing(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "home-box")
    enqueue(app_env)
    before = snapshot(app_env)
    params = {"kind": "classify"}
    assert_problem(client.get("/internal/workers/tasks", params=params), 401, "worker-unauthorized")
    assert_problem(
        client.get("/internal/workers/tasks", params=params, headers=auth("hwk_not-a-real-token")),
        401,
        "worker-unauthorized",
    )
    # a user JWT is not a worker token
    assert_problem(client.get("/internal/workers/tasks", params=params, headers=auth("eyJhbGciOi.x.y")), 401)
    with _conn(app_env) as conn:
        assert w.revoke_worker(conn, "home-box")
    revoked = client.get("/internal/workers/tasks", params=params, headers=auth(token))
    assert "revoked" in assert_problem(revoked, 401, "worker-unauthorized")["detail"]
    assert snapshot(app_env) == before
    with _conn(app_env) as conn:
        rows = conn.execute("SELECT token_hash FROM compute_workers").fetchall()
    assert all(token not in str(r) for r in rows)  # stored hashed only


def test_kinds_limits_and_lease_bounds(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "classifier", kinds=["classify"])
    enqueue(app_env, kind="score")
    before = snapshot(app_env)
    get = client.get
    assert_problem(
        get("/internal/workers/tasks", params={"kind": "score"}, headers=auth(token)), 403, "kind-forbidden"
    )
    assert_problem(
        get("/internal/workers/tasks", params={"kind": "nope"}, headers=auth(token)), 422, "unknown-kind"
    )
    assert_problem(
        get("/internal/workers/tasks", params={"kind": "classify", "limit": 10_000}, headers=auth(token)), 422
    )
    assert_problem(
        get("/internal/workers/tasks", params={"kind": "classify", "limit": 0}, headers=auth(token)), 422
    )
    assert_problem(
        get(
            "/internal/workers/tasks",
            params={"kind": "classify", "lease_seconds": 999_999},
            headers=auth(token),
        ),
        422,
    )
    assert_problem(get("/internal/workers/tasks", headers=auth(token)), 422)  # kind is required
    assert snapshot(app_env) == before


def test_malformed_results_and_wrong_leases_change_nothing(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "w")
    task = enqueue(app_env)
    (got,) = client.get("/internal/workers/tasks", params={"kind": "classify"}, headers=auth(token)).json()[
        "tasks"
    ]
    url = f"/internal/workers/tasks/{task.id}/result"
    before = snapshot(app_env)
    lease = got["lease_token"]
    for body in (
        {"result": {"a": 1}},  # no lease token
        {"lease_token": "abc", "result": {"a": 1}},  # not a token
        {"lease_token": lease},  # neither result nor error
        {"lease_token": lease, "result": {"a": 1}, "error": "both"},
        {"lease_token": lease, "result": None},
        {"lease_token": lease, "result": "a string"},
        {"lease_token": lease, "result": {"a": 1}, "extra": True},
        {"lease_token": lease, "error": ""},
    ):
        assert_problem(client.post(url, json=body, headers=auth(token)), 422, "validation-error")
    assert_problem(
        client.post(url, content=b"{not json", headers=auth(token) | {"content-type": "application/json"}),
        422,
    )
    wrong = {"lease_token": "00000000-0000-4000-8000-000000000000", "result": {"a": 1}}
    assert_problem(client.post(url, json=wrong, headers=auth(token)), 409, "lease-mismatch")
    missing = client.post(
        "/internal/workers/tasks/999999/result",
        json={"lease_token": lease, "result": {}},
        headers=auth(token),
    )
    assert_problem(missing, 404, "task-not-found")
    assert snapshot(app_env) == before


def test_error_results_retry_then_die(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "w2")
    task = enqueue(app_env, max_attempts=2)
    (got,) = client.get("/internal/workers/tasks", params={"kind": "classify"}, headers=auth(token)).json()[
        "tasks"
    ]
    resp = client.post(
        f"/internal/workers/tasks/{task.id}/result",
        json={"lease_token": got["lease_token"], "error": "CUDA OOM", "retryable": False},
        headers=auth(token),
    )
    assert resp.status_code == 200 and resp.json()["status"] == "dead"
    with _conn(app_env) as conn:
        dead = q.get_task(conn, task.id)
    assert dead is not None and dead.error == "CUDA OOM"


def test_late_result_is_rejected_heartbeat_and_release(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "w3")
    a = enqueue(app_env)
    b = enqueue(app_env)
    params = {"kind": "classify", "limit": 2, "lease_seconds": 1}
    leases = {
        t["id"]: t["lease_token"]
        for t in client.get("/internal/workers/tasks", params=params, headers=auth(token)).json()["tasks"]
    }
    assert set(leases) == {a.id, b.id}
    beat = client.post(
        f"/internal/workers/tasks/{a.id}/heartbeat",
        json={"lease_token": leases[a.id], "lease_seconds": 30},
        headers=auth(token),
    )
    assert beat.status_code == 200 and beat.json()["lease_until"]
    time.sleep(1.2)
    late = client.post(
        f"/internal/workers/tasks/{b.id}/result",
        json={"lease_token": leases[b.id], "result": {"x": 1}},
        headers=auth(token),
    )
    assert_problem(late, 409, "lease-expired")
    rel = client.post(
        f"/internal/workers/tasks/{a.id}/release", json={"lease_token": leases[a.id]}, headers=auth(token)
    )
    assert rel.status_code == 200 and rel.json()["status"] == "pending"
    with _conn(app_env) as conn:
        t = q.get_task(conn, a.id)
    assert t is not None and t.attempts == 0


def test_rate_limit_per_worker(client: TestClient, app_env: str) -> None:
    token = add_worker(app_env, "greedy", rate_limit_per_minute=3)
    other = add_worker(app_env, "polite", rate_limit_per_minute=3)
    params = {"kind": "classify"}
    if time.time() % 60 > 57:  # the window is the clock minute: do not straddle its end
        time.sleep(60 - time.time() % 60 + 0.2)
    codes = [
        client.get("/internal/workers/tasks", params=params, headers=auth(token)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 200]
    limited = client.get("/internal/workers/tasks", params=params, headers=auth(token))
    assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert client.get("/internal/workers/tasks", params=params, headers=auth(other)).status_code == 200
