"""One database connection per Lambda environment: reused, replaced after the server kills it,
no server-side prepared statements (RDS Proxy multiplexing), and a statement timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.auth.telegram import sign_init_data
from tests.conftest import TEST_BOT_TOKEN
from tests.integration.lambda_support import LambdaContext, fresh_handler, http_event, response_json

APP = "hybrid-lambda-conn"


@pytest.fixture()
def auth(app_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DB_POOL_SIZE", "1")  # what serverless.yml sets
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "700")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", APP)  # application_name of our sessions
    yield fresh_handler("auth").handler


def backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid", (APP,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def login(handler: Any, telegram_id: int) -> int:
    data = sign_init_data(
        {"auth_date": str(int(time.time())), "user": f'{{"id": {telegram_id}, "first_name": "C"}}'},
        TEST_BOT_TOKEN,
    )
    resp = handler(http_event("POST", "/v1/auth/telegram", body={"init_data": data}), LambdaContext())
    assert resp["statusCode"] == 200, resp
    return int(response_json(resp)["expires_in"])


def test_invocations_reuse_one_connection(auth: Any, app_env: str) -> None:
    assert backends(app_env) == []  # init did not connect
    for i in range(5):
        login(auth, 9000 + i)
    pids = backends(app_env)
    assert len(pids) == 1
    login(auth, 9100)
    assert backends(app_env) == pids


def test_a_killed_backend_is_replaced_on_the_next_invocation(auth: Any, app_env: str) -> None:
    login(auth, 9200)
    (pid,) = backends(app_env)
    with psycopg.connect(app_env, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    deadline = time.monotonic() + 5
    while pid in backends(app_env) and time.monotonic() < deadline:
        time.sleep(0.05)
    login(auth, 9201)  # the same Lambda environment keeps answering
    login(auth, 9202)
    new = backends(app_env)
    assert len(new) == 1 and new != [pid]


def test_sessions_use_no_prepared_statements_and_carry_the_statement_timeout(auth: Any) -> None:
    from shared.db.connection import DatabaseUnavailable, get_database

    with get_database().connection() as conn:
        assert conn.prepare_threshold is None
        assert conn.execute("SHOW statement_timeout").fetchone() == {"statement_timeout": "700ms"}
        for _ in range(3):  # repeated queries would be prepared with psycopg's default threshold
            conn.execute("SELECT 1 WHERE %s", (True,)).fetchall()
        assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 0}
    with pytest.raises(DatabaseUnavailable) as err, get_database().connection() as conn:
        conn.execute("SELECT pg_sleep(3)")  # answered 503 by the API, not left hanging
    assert isinstance(err.value.__cause__, psycopg.errors.QueryCanceled)
    with get_database().connection() as conn:  # the connection survives a cancelled statement
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_nothing_listens_so_rds_proxy_can_multiplex() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(p.relative_to(root))
        for folder in ("shared", "functions")
        for p in (root / folder).rglob("*.py")
        if "LISTEN " in p.read_text(encoding="utf-8").upper().replace('"LISTEN "', "")
        and "pg_notify" not in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
