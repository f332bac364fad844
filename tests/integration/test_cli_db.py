"""`hybrid db url`, `hybrid migrate` and embedded start-up errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HYBRID = str(Path(sys.executable).parent / "hybrid")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HYBRID, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_db_url_prints_database_url_when_set() -> None:
    out = run("db", "url", DATABASE_URL="postgresql://u@db.example:5432/x")
    assert out.returncode == 0 and out.stdout.strip() == "postgresql://u@db.example:5432/x"


def test_migrate_cli_applies_then_noops(empty_db_url: str) -> None:
    first = run("migrate", DATABASE_URL=empty_db_url)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["applied"][0] == "0001_users.sql"
    second = run("migrate", DATABASE_URL=empty_db_url)
    assert json.loads(second.stdout) == {"applied": []}


def test_migrate_against_an_unreachable_database_says_so() -> None:
    out = run("migrate", DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1")
    assert out.returncode != 0
    assert "connection" in (out.stderr + out.stdout).lower()


def test_embedded_start_failure_says_why(tmp_path: Path) -> None:
    from shared.db.embedded import EmbeddedPostgresError, start

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data folder's parent should be")
    with pytest.raises(EmbeddedPostgresError, match="failed to start") as err:
        start(blocker / "pgdata")
    assert str(blocker) in str(err.value)


def test_embedded_start_with_foreign_data_folder_says_why(tmp_path: Path) -> None:
    from shared.db.embedded import EmbeddedPostgresError, start

    data = tmp_path / "pgdata"
    data.mkdir()
    (data / "PG_VERSION").write_text("12\n")
    with pytest.raises(EmbeddedPostgresError, match="(?i)version"):
        start(data)
