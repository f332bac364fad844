"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test module."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never see a developer's real settings or secrets.
for _name in (
    "DATABASE_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_BOT_ID",
    "JWT_PRIVATE_KEY",
    "OPENAI_API_KEY",
    "RUNPOD_API_KEY",
    "CONFIG_S3_URI",
    "CONFIG_SSM_PREFIX",
    "JWT_PRIVATE_KEY_SECRET_ID",
    "JWT_PRIVATE_KEY_SSM",
    "ADMIN_TELEGRAM_IDS",
):
    os.environ.pop(_name, None)
_LOCAL = Path(tempfile.mkdtemp(prefix="hybrid-test-local-"))
os.environ["HYBRID_LOCAL_DIR"] = str(_LOCAL)
os.environ["HYBRID_ENV"] = "local"
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "HybridTest")

TEST_BOT_TOKEN = "1234567890:TEST-bot-token-for-the-suite-only-abcdefg"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    from shared.db import embedded

    data_dir = Path(tempfile.mkdtemp(prefix="hybrid-pg-"))
    server = embedded.start(data_dir / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(_LOCAL, ignore_errors=True)


def _admin_url(server: Any) -> str:
    return str(server.get_uri("postgres"))


@pytest.fixture(scope="session")
def template_db(pg_server: Any) -> str:
    """A database with every migration applied, cloned for each test module."""
    from shared.db.migrate import migrate

    name = "hybrid_template"
    with psycopg.connect(_admin_url(pg_server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate(str(pg_server.get_uri(name)))
    return name


def create_database(server: Any, template: str | None = None) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(_admin_url(server), autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(name))


@pytest.fixture(scope="module")
def db_url(pg_server: Any, template_db: str) -> str:
    """A fresh, migrated database for this test module only."""
    return create_database(pg_server, template_db)


@pytest.fixture()
def empty_db_url(pg_server: Any) -> str:
    return create_database(pg_server)


@pytest.fixture()
def reset_singletons() -> Iterator[None]:
    """Forget process-wide config, database and auth caches around a test."""
    from shared.auth import service
    from shared.config import store
    from shared.db import connection

    store.set_store(None)
    connection.set_database(None)
    service.reset()
    yield
    store.set_store(None)
    connection.set_database(None)
    service.reset()


@pytest.fixture()
def app_env(db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment for an app under test: the module's database and a known bot token."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TEST_BOT_TOKEN)
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    return db_url
