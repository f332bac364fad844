"""Daily limits per user and per session (tokens and USD), read from the usage ledger and checked
before a call. A day is a UTC calendar day; the limit resets at the next UTC midnight.

The media broker calls ``enforce_limits(conn, user_id=..., session_id=..., add_usd=estimate)`` before
a paid job: the same ledger, the same limits. ``LimitExceeded`` is a ``Problem`` (429 with
``Retry-After``), so raising it from a route answers problem+json with the limit and reset time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.api.problems import Problem
from shared.config.models import GenlayersLimits, UsageLimit

if TYPE_CHECKING:
    import psycopg

# One round trip: the user's day, and within it the session's (FILTER); the session's alone without a user.
USED_BY_USER = """
SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens,
       coalesce(sum(cost_usd), 0) AS usd,
       coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE session_id = %(session_id)s), 0)
           AS session_tokens,
       coalesce(sum(cost_usd) FILTER (WHERE session_id = %(session_id)s), 0) AS session_usd
FROM usage_ledger
WHERE user_id = %(user_id)s AND created_at >= %(since)s
"""
USED_BY_SESSION = """
SELECT 0 AS tokens, 0 AS usd,
       coalesce(sum(prompt_tokens + completion_tokens), 0) AS session_tokens,
       coalesce(sum(cost_usd), 0) AS session_usd
FROM usage_ledger
WHERE session_id = %(session_id)s AND user_id IS NULL AND created_at >= %(since)s
"""


@dataclass(frozen=True)
class Usage:
    tokens: int
    usd: float


def day_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


class LimitExceeded(Problem):
    def __init__(self, *, scope: str, metric: str, limit: float, used: float, reset_at: datetime) -> None:
        retry = max(1, int((reset_at - datetime.now(UTC)).total_seconds()))
        unit = "tokens" if metric == "tokens" else "USD"
        super().__init__(
            429,
            f"daily {unit} limit per {scope} reached: used {used:g} of {limit:g}; resets at "
            f"{reset_at.isoformat()}",
            slug="usage-limit",
            title="Usage limit reached",
            headers={"Retry-After": str(retry)},
            limit={"scope": scope, "metric": metric, "limit": limit, "used": used, "period": "day"},
            reset_at=reset_at.isoformat(),
        )
        self.scope, self.metric, self.limit, self.used, self.reset_at = scope, metric, limit, used, reset_at


def used_today(
    conn: psycopg.Connection[Any], *, user_id: int | None, session_id: str | None, since: datetime
) -> tuple[Usage, Usage]:
    """``(user, session)`` tokens and USD since ``since``; a session counts within its user."""
    params = {"user_id": user_id, "session_id": session_id, "since": since}
    row = conn.execute(USED_BY_USER if user_id is not None else USED_BY_SESSION, params).fetchone()
    if row is None:
        return Usage(0, 0.0), Usage(0, 0.0)
    r = (
        row
        if isinstance(row, dict)
        else dict(zip(("tokens", "usd", "session_tokens", "session_usd"), row, strict=True))
    )
    return (
        Usage(int(r["tokens"]), float(r["usd"])),
        Usage(int(r["session_tokens"]), float(r["session_usd"])),
    )


def _check(
    scope: str, limit: UsageLimit, used: Usage, add_tokens: int, add_usd: float, reset: datetime
) -> None:
    if limit.tokens_per_day is not None and used.tokens + add_tokens >= limit.tokens_per_day:
        raise LimitExceeded(
            scope=scope, metric="tokens", limit=limit.tokens_per_day, used=used.tokens, reset_at=reset
        )
    if limit.usd_per_day is not None and used.usd + add_usd >= limit.usd_per_day:
        raise LimitExceeded(
            scope=scope, metric="usd", limit=limit.usd_per_day, used=round(used.usd, 6), reset_at=reset
        )


def enforce_limits(
    conn: psycopg.Connection[Any],
    *,
    user_id: int | None,
    session_id: str | None,
    add_tokens: int = 0,
    add_usd: float = 0.0,
    limits: GenlayersLimits | None = None,
    now: datetime | None = None,
) -> None:
    """Raise ``LimitExceeded`` when today's usage (plus what the next call is expected to add)
    reaches a user or session limit. A call that would only reach it is refused too."""
    if limits is None:
        from shared.config.store import get_config

        limits = get_config().logic.genlayers.limits
    since, reset = day_window(now)
    check_user = user_id is not None and (
        limits.user.tokens_per_day is not None or limits.user.usd_per_day is not None
    )
    check_session = bool(session_id) and (
        limits.session.tokens_per_day is not None or limits.session.usd_per_day is not None
    )
    if not (check_user or check_session):
        return
    user, session = used_today(conn, user_id=user_id, session_id=session_id, since=since)
    if check_user:
        _check("user", limits.user, user, add_tokens, add_usd, reset)
    if check_session:
        _check("session", limits.session, session, add_tokens, add_usd, reset)
