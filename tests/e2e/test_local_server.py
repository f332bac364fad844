"""The local stack as a user runs it: `hybrid serve`, /docs, a token through /v1/auth/telegram."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.serving import HYBRID, ROOT, start_server, stop_server


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[str]:
    proc, base = start_server(db_url, "--no-sample")
    yield base
    stop_server(proc)


def test_docs_and_openapi_are_served(server: str) -> None:
    assert httpx.get(server + "/docs").status_code == 200
    paths = httpx.get(server + "/openapi.json").json()["paths"]
    assert "/v1/auth/telegram" in paths


def test_a_token_can_be_obtained_with_dev_init_data(server: str, db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    raw = subprocess.run(
        [HYBRID, "dev-init-data", "--telegram-id", "31337"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    resp = httpx.post(server + "/v1/auth/telegram", json={"init_data": raw})
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    me = httpx.get(server + "/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["telegram_id"] == 31337


def test_dev_token_is_accepted_by_the_server(server: str, db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    token = subprocess.run(
        [HYBRID, "dev-token", "--telegram-id", "4242"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    me = httpx.get(server + "/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["telegram_id"] == 4242


def test_dev_token_is_refused_outside_local(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "HYBRID_ENV": "prod"}
    proc = subprocess.run(
        [HYBRID, "dev-token", "--telegram-id", "1"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "local development only" in proc.stderr
