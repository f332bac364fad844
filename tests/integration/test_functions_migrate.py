"""functions/migrate/handler.py: the one-off migration invoke after a deploy."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.integration.lambda_support import JsonLogs, LambdaContext, fresh_handler


def test_migrate_applies_pending_files_once(
    empty_db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    handler = fresh_handler("migrate").handler
    first = handler({"action": "migrate"}, LambdaContext(function_name="hybrid-dev-migrate"))
    assert first["statusCode"] == 200 and first["applied"], first
    assert all(name.endswith(".sql") for name in first["applied"])
    again = handler({"action": "migrate"}, LambdaContext(function_name="hybrid-dev-migrate"))
    assert again == {"statusCode": 200, "applied": []}
    with psycopg.connect(empty_db_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()  # type: ignore[misc]
    assert count == len(first["applied"])


def test_anything_else_is_a_400_and_touches_nothing(
    empty_db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    handler = fresh_handler("migrate").handler
    for event in ({}, {"action": "drop"}, ["migrate"]):
        result = handler(event, LambdaContext())
        assert result["statusCode"] == 400 and result["error"] == "bad-event"
        assert "unknown action" in result["detail"] and "workers.add" in result["detail"]
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
    assert row == (None,)


def test_workers_add_returns_the_token_once_and_revoke_disables_it(
    app_env: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from shared.compute.workers import WorkerAuthError, authenticate

    handler = fresh_handler("migrate").handler
    ctx = LambdaContext(function_name="hybrid-dev-migrate")
    event = {"action": "workers.add", "name": "gpu-lambda-1", "kinds": ["embed", "rerank"]}
    with JsonLogs() as logs:
        added = handler(event, ctx)
    assert added["statusCode"] == 200, added
    token = added["token"]
    assert token.startswith("hwk_") and len(token) > 40
    assert added["worker"] == {"name": "gpu-lambda-1", "kinds": ["embed", "rerank"]}
    assert token not in json.dumps(logs.lines()) and token not in "".join(capfd.readouterr())
    with psycopg.connect(app_env) as conn:
        worker = authenticate(conn, token)
        assert worker.name == "gpu-lambda-1" and worker.may_take("embed") and not worker.may_take("score")
        stored = conn.execute("SELECT token_hash FROM compute_workers WHERE name = 'gpu-lambda-1'").fetchone()
    assert stored is not None and token not in stored[0]  # only the hash is kept

    revoked = handler({"action": "workers.revoke", "name": "gpu-lambda-1"}, ctx)
    assert revoked == {"statusCode": 200, "revoked": "gpu-lambda-1"}
    with psycopg.connect(app_env) as conn, pytest.raises(WorkerAuthError):
        authenticate(conn, token)
    again = handler({"action": "workers.revoke", "name": "gpu-lambda-1"}, ctx)
    assert again["statusCode"] == 404 and again["error"] == "worker-not-found"


@pytest.mark.parametrize(
    "event",
    [
        {"action": "workers.add"},
        {"action": "workers.add", "name": ""},
        {"action": "workers.add", "name": "x" * 65},
        {"action": "workers.add", "name": "w", "kinds": "embed"},
        {"action": "workers.add", "name": "w", "rate_limit_per_minute": 0},
        {"action": "workers.revoke"},
    ],
)
def test_bad_worker_events_are_400s_that_create_nothing(app_env: str, event: dict[str, object]) -> None:
    handler = fresh_handler("migrate").handler
    result = handler(event, LambdaContext())
    assert result["statusCode"] == 400 and result["error"] == "bad-event", result
    assert "token" not in result
    with psycopg.connect(app_env) as conn:
        row = conn.execute("SELECT count(*) FROM compute_workers WHERE name IN ('w', '')").fetchone()
    assert row == (0,)
