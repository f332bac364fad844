"""Completion webhooks: when a task with a ``callback_url`` completes or dies, the drain POSTs it there.

The body is JSON ``{"id", "kind", "status", "result", "error", "attempts", "finished_at"}``. The header
``X-Hybrid-Signature: t=<unix seconds>,v1=<hex>`` carries HMAC-SHA256 over ``"<t>." + body`` keyed by
``COMPUTE_CALLBACK_SECRET``; a receiver recomputes it (``verify_signature``) and rejects stale ``t``.
A non-2xx answer or a network error is retried with exponential backoff (2^n s, capped at 1 h, with
jitter) up to ``compute.callback_max_attempts``, then the callback is marked ``failed`` — the result
stays in the table for polling by id either way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import httpx

from shared.config import env

if TYPE_CHECKING:
    import psycopg

SIGNATURE_HEADER = "X-Hybrid-Signature"

DUE_SQL = """
SELECT id, kind, status, result, error, attempts, finished_at, callback_url, callback_attempts
FROM compute_tasks
WHERE callback_status = 'pending' AND callback_next_at <= now()
ORDER BY callback_next_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

DELIVERED_SQL = """
UPDATE compute_tasks
SET callback_status = 'delivered', callback_attempts = callback_attempts + 1, callback_error = NULL,
    callback_next_at = NULL
WHERE id = %s
"""

RETRY_SQL = """
UPDATE compute_tasks
SET callback_attempts = callback_attempts + 1,
    callback_status = CASE WHEN callback_attempts + 1 >= %(max)s THEN 'failed' ELSE 'pending' END,
    callback_next_at = CASE WHEN callback_attempts + 1 >= %(max)s THEN NULL
                            ELSE now() + make_interval(secs => least(3600, power(2, callback_attempts + 1))
                                                              * (0.5 + random() / 2)) END,
    callback_error = %(error)s
WHERE id = %(id)s
"""


def callback_secret() -> str:
    """``COMPUTE_CALLBACK_SECRET``; locally a generated one kept in ``.local`` when it is not set."""
    value = env.COMPUTE_CALLBACK_SECRET.get()
    if value:
        return value
    if env.ENVIRONMENT.get() != "local":
        return env.COMPUTE_CALLBACK_SECRET.require()
    path = env.local_dir() / "callback-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def verify_signature(
    body: bytes, header: str, secret: str, *, tolerance_seconds: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: recompute the HMAC and refuse a signature older than the tolerance."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_seconds:
        return False
    expected = sign(body, secret, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def body_for(row: dict[str, Any]) -> bytes:
    finished = row.get("finished_at")
    doc = {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "result": row.get("result"),
        "error": row.get("error"),
        "attempts": row["attempts"],
        "finished_at": finished.isoformat() if finished else None,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def deliver_due(
    database: Any,
    *,
    limit: int,
    max_attempts: int,
    timeout: float,
    deadline: float,
    client: httpx.Client | None = None,
) -> dict[str, int]:
    """Deliver up to ``limit`` due callbacks, one transaction each (row locked while it is sent)."""
    from psycopg.rows import dict_row

    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    secret: str | None = None
    try:
        for _ in range(limit):
            if time.monotonic() >= deadline:
                break
            with database.connection() as conn:
                row = conn.cursor(row_factory=dict_row).execute(DUE_SQL).fetchone()
                if row is None:
                    break
                secret = secret or callback_secret()
                error = _send(http, row, secret, timeout=min(timeout, max(deadline - time.monotonic(), 0.1)))
                if error is None:
                    conn.execute(DELIVERED_SQL, (row["id"],))
                    counts["delivered"] += 1
                else:
                    _retry(conn, row["id"], error, max_attempts)
                    gave_up = row["callback_attempts"] + 1 >= max_attempts
                    counts["failed" if gave_up else "retrying"] += 1
    finally:
        if own:
            http.close()
    return counts


def _send(http: httpx.Client, row: dict[str, Any], secret: str, *, timeout: float) -> str | None:
    body = body_for(row)
    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(body, secret)}
    try:
        resp = http.post(row["callback_url"], content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= resp.status_code < 300:
        return None
    return f"HTTP {resp.status_code}"


def _retry(conn: psycopg.Connection[Any], task_id: int, error: str, max_attempts: int) -> None:
    conn.execute(RETRY_SQL, {"id": task_id, "error": error, "max": max_attempts})
