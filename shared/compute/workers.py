"""Pull-worker credentials: per-worker tokens stored hashed, revocable, limited to kinds, rate-limited.

A token is ``hwk_`` + 43 random URL-safe characters (256 bits), shown once by ``hybrid workers add``.
Only its SHA-256 is stored: a token has enough entropy that a slow hash adds nothing, and a fast one
keeps authentication to one indexed lookup. Authentication and the rate limit are one statement: a
fixed one-minute window counted in the worker's row, so every Lambda instance sees the same count.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

TOKEN_PREFIX = "hwk_"  # noqa: S105 - a public prefix, not a secret

ADD_SQL = """
INSERT INTO compute_workers (name, token_hash, token_prefix, kinds, rate_limit_per_minute)
VALUES (%(name)s, %(hash)s, %(prefix)s, %(kinds)s, %(rate)s)
ON CONFLICT (name) DO UPDATE
SET token_hash = excluded.token_hash, token_prefix = excluded.token_prefix, kinds = excluded.kinds,
    rate_limit_per_minute = excluded.rate_limit_per_minute, revoked_at = NULL, created_at = now(),
    rl_window = NULL, rl_count = 0
RETURNING id, name, kinds, rate_limit_per_minute, created_at, revoked_at
"""

REVOKE_SQL = """
UPDATE compute_workers SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL RETURNING id
"""

LIST_SQL = """
SELECT name, token_prefix, kinds, rate_limit_per_minute, created_at, last_seen_at, revoked_at
FROM compute_workers ORDER BY name
"""

# One round trip: find the live token, count this request in the current minute, say whether it fits.
AUTH_SQL = """
UPDATE compute_workers
SET rl_count = CASE WHEN rl_window = date_trunc('minute', now()) THEN rl_count + 1 ELSE 1 END,
    rl_window = date_trunc('minute', now()),
    last_seen_at = now()
WHERE token_hash = %s AND revoked_at IS NULL
RETURNING id, name, kinds, rate_limit_per_minute, rl_count,
          extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()) AS window_left
"""


class WorkerAuthError(Exception):
    status, slug = 401, "worker-unauthorized"


class RateLimited(Exception):
    status, slug = 429, "rate-limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Worker:
    id: int
    name: str
    kinds: tuple[str, ...] | None  # None: every kind
    rate_limit_per_minute: int

    def may_take(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def add_worker(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    kinds: list[str] | None = None,
    rate_limit_per_minute: int = 600,
) -> tuple[Worker, str]:
    """Create (or re-key) a worker; returns it and its token, which is not stored and never shown again."""
    from psycopg.rows import dict_row

    if not name or len(name) > 64:
        raise ValueError("a worker name is 1-64 characters")
    token = new_token()
    row = (
        conn.cursor(row_factory=dict_row)
        .execute(
            ADD_SQL,
            {
                "name": name,
                "hash": hash_token(token),
                "prefix": token[:8],
                "kinds": kinds or None,
                "rate": rate_limit_per_minute,
            },
        )
        .fetchone()
    )
    assert row is not None
    return _worker(row), token


def revoke_worker(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute(REVOKE_SQL, (name,)).fetchone() is not None


def list_workers(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    rows = conn.cursor(row_factory=dict_row).execute(LIST_SQL).fetchall()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows]


def authenticate(conn: psycopg.Connection[Any], token: str) -> Worker:
    """The worker holding ``token``; raises ``WorkerAuthError`` or ``RateLimited``."""
    from psycopg.rows import dict_row

    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise WorkerAuthError("a worker token is required (hybrid workers add NAME)")
    row = conn.cursor(row_factory=dict_row).execute(AUTH_SQL, (hash_token(token),)).fetchone()
    if row is None:
        raise WorkerAuthError("unknown or revoked worker token")
    if int(row["rl_count"]) > int(row["rate_limit_per_minute"]):
        raise RateLimited(
            f"worker {row['name']} is over {row['rate_limit_per_minute']} requests per minute",
            retry_after=max(1.0, float(row["window_left"])),
        )
    return _worker(row)


def _worker(row: dict[str, Any]) -> Worker:
    kinds = row.get("kinds")
    return Worker(
        id=int(row["id"]),
        name=str(row["name"]),
        kinds=tuple(kinds) if kinds else None,
        rate_limit_per_minute=int(row["rate_limit_per_minute"]),
    )
