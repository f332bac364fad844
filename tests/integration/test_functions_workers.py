"""functions/workers/handler.py: the internal worker API behind worker tokens (no JWT authorizer)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.lambda_support import LambdaContext, fresh_handler, http_event, response_json


@pytest.fixture()
def workers(app_env: str) -> Any:
    return fresh_handler("workers").handler


def test_a_worker_token_claims_tasks_and_a_missing_one_is_401(workers: Any, app_env: str) -> None:
    from shared.compute.workers import add_worker

    with psycopg.connect(app_env) as conn:
        _, token = add_worker(conn, "lambda-test-worker")
    ctx = LambdaContext(function_name="hybrid-dev-workers")
    anonymous = workers(http_event("GET", "/internal/workers/tasks", query="kind=embed&limit=2"), ctx)
    assert anonymous["statusCode"] == 401, anonymous
    event = http_event(
        "GET",
        "/internal/workers/tasks",
        query="kind=embed&limit=2&lease_seconds=60",
        headers={"authorization": f"Bearer {token}"},
    )
    resp = workers(event, ctx)
    assert resp["statusCode"] == 200, resp
    assert response_json(resp)["tasks"] == []


def test_an_unexpected_event_is_400(workers: Any) -> None:
    resp = workers({"source": "aws.events"}, LambdaContext())
    assert resp["statusCode"] == 400 and response_json(resp)["type"].endswith("/bad-event")


def test_the_user_compute_api_is_mounted_beside_the_worker_routes(workers: Any, app_env: str) -> None:
    from shared.auth.users import ensure_user

    with psycopg.connect(app_env) as conn:
        user_id = ensure_user(conn, 777001)
    claims = {"sub": str(user_id), "tg": "777001", "roles": "[]", "aud": "hybrid-webapp", "iss": "https://x"}
    ctx = LambdaContext(function_name="hybrid-dev-workers")
    body = {"kind": "classify", "payload": {"text": "hello"}, "priority": "low"}
    created = workers(http_event("POST", "/v1/compute/tasks", body=body, claims=claims), ctx)
    assert created["statusCode"] == 202, created
    task = response_json(created)
    assert task["kind"] == "classify" and task["status"] == "pending"
    got = workers(http_event("GET", f"/v1/compute/tasks/{task['id']}", claims=claims), ctx)
    assert got["statusCode"] == 200 and response_json(got)["id"] == task["id"]
    # another user does not see it; no claims and no token is a 401, not a route miss
    other = dict(claims, sub=str(user_id + 1000), tg="777002")
    hidden = workers(http_event("GET", f"/v1/compute/tasks/{task['id']}", claims=other), ctx)
    assert hidden["statusCode"] == 404
    assert workers(http_event("POST", "/v1/compute/tasks", body=body), ctx)["statusCode"] == 401
    bad_kind = http_event("POST", "/v1/compute/tasks", body=dict(body, kind="nope"), claims=claims)
    unknown = workers(bad_kind, ctx)
    assert unknown["statusCode"] == 422 and response_json(unknown)["type"].endswith("/unknown-kind")
