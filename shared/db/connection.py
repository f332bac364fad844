"""Database access: one small reconnecting pool per process.

In Lambda the pool holds one connection (``DB_POOL_SIZE=1``) kept at module scope and reused across
invocations; a broken connection is detected on checkout and replaced. Connections are opened with
``prepare_threshold=None`` (no server-side prepared statements) and never LISTEN, so RDS Proxy can
multiplex them, and every session carries a ``statement_timeout``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.config import env

if TYPE_CHECKING:  # psycopg loads on first use, keeping it off the Lambda init path
    import psycopg


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached right now; callers answer 503 with Retry-After."""


def resolve_url(explicit: str | None = None) -> str:
    url = env.DATABASE_URL.get(explicit)
    if url:
        return url
    from shared.db import embedded

    return embedded.url()


def connect_kwargs(statement_timeout_ms: int) -> dict[str, Any]:
    return {
        "prepare_threshold": None,
        "options": f"-c statement_timeout={int(statement_timeout_ms)}",
        "application_name": env.SERVICE_NAME.get() or "hybrid",
    }


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        statement_timeout_ms: int = 15_000,
    ) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.connect_timeout = connect_timeout
        kwargs = connect_kwargs(statement_timeout_ms) | {"connect_timeout": max(1, int(connect_timeout))}
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=kwargs,
            check=ConnectionPool.check_connection,
            open=False,
            timeout=connect_timeout,
            reconnect_timeout=max(connect_timeout * 4, 10.0),
            name="hybrid",
        )
        self.pool.open(wait=False)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside a transaction: committed on success, rolled back on error."""
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection(timeout=self.connect_timeout) as conn:
                conn.row_factory = dict_row  # type: ignore[assignment]
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable("database connection timed out") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"database error: {exc.__class__.__name__}") from exc

    def close(self) -> None:
        self.pool.close()


_db: Database | None = None
_db_lock = threading.Lock()


def get_database() -> Database:
    """The process-wide database (module scope, so a Lambda environment reuses it)."""
    global _db
    if _db is None:
        with _db_lock:
            if _db is None:
                from shared.config.store import get_config

                cfg = get_config().logic.database
                size = env.DB_POOL_SIZE.get()
                _db = Database(
                    resolve_url(),
                    pool_size=int(size) if size else cfg.pool_size,
                    connect_timeout=float(env.DB_CONNECT_TIMEOUT.get() or cfg.connect_timeout_seconds),
                    statement_timeout_ms=int(env.DB_STATEMENT_TIMEOUT_MS.get() or cfg.statement_timeout_ms),
                )
    return _db


def set_database(db: Database | None) -> None:
    global _db
    if _db is not None and _db is not db:
        _db.close()
    _db = db
