"""Migrations against the real embedded PostgreSQL."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import psycopg
import pytest

from shared.db.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate


def test_all_migrations_apply_to_an_empty_database(empty_db_url: str) -> None:
    applied = migrate(empty_db_url)
    assert applied == [m.path.name for m in discover()]
    with psycopg.connect(empty_db_url) as conn:
        assert (
            conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone() is not None
        )
        cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name='users'"
            )
        }
        assert {"telegram_id", "username", "created_at", "updated_at"} <= cols
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert count is not None and count[0] == len(applied)


def test_second_run_is_a_noop(empty_db_url: str) -> None:
    assert migrate(empty_db_url)
    assert migrate(empty_db_url) == []


def _run(url: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        queue.put(migrate(url))
    except Exception as exc:  # pragma: no cover - reported to the parent
        queue.put(repr(exc))


def test_two_processes_at_once_apply_each_migration_once(empty_db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_run, args=(empty_db_url, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [queue.get(timeout=5) for _ in procs]
    assert all(isinstance(r, list) for r in results), results
    names = [m.path.name for m in discover()]
    assert sorted(results, key=len) == [[], names]  # one applied everything, the other nothing


def test_failed_migration_rolls_back_and_is_not_recorded(empty_db_url: str, tmp_path: Path) -> None:
    for mig in discover():
        shutil.copy(mig.path, tmp_path / mig.path.name)
    (tmp_path / "9999_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(MigrationError, match="9999_broken.sql"):
        migrate(empty_db_url, tmp_path)
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version=9999").fetchone() == (0,)


def test_an_applied_migration_that_changed_is_refused(empty_db_url: str, tmp_path: Path) -> None:
    first = discover()[0]
    shutil.copy(first.path, tmp_path / first.path.name)
    migrate(empty_db_url, tmp_path)
    (tmp_path / first.path.name).write_text(first.sql + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(empty_db_url, tmp_path)


def test_migration_names_are_numbered() -> None:
    for mig in discover(MIGRATIONS_DIR):
        assert mig.path.name.startswith(f"{mig.version:04d}_")
