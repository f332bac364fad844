"""The usage ledger: one row per provider call (LLM tokens, or media units), and cost reports.

``record_usage`` is shared with the media broker (kind tts/image/avatar with ``units``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.genlayers.pricing import cost_usd as price_of

if TYPE_CHECKING:
    import psycopg

INSERT_USAGE = """
INSERT INTO usage_ledger (user_id, session_id, feature, domain, provider, model, kind, prompt_tokens,
                          completion_tokens, cached_tokens, units, cost_usd, latency_ms, meta)
VALUES (%(user_id)s, %(session_id)s, %(feature)s, %(domain)s, %(provider)s, %(model)s, %(kind)s,
        %(prompt_tokens)s, %(completion_tokens)s, %(cached_tokens)s, %(units)s, %(cost_usd)s,
        %(latency_ms)s, %(meta)s)
"""

# Ledger writes do not wait for the WAL flush: a crash may lose the last few milliseconds of rows,
# which costs accounting precision, never correctness of a reply; it saves a disk sync per call.
ASYNC_COMMIT = "SET LOCAL synchronous_commit TO off"

# Column a report may group by -> SQL expression (a fixed whitelist: never user text in SQL).
GROUP_BY = {
    "feature": "feature",
    "domain": "domain",
    "user": "coalesce(user_id::text, '-')",
    "session": "coalesce(session_id, '-')",
    "provider": "provider",
    "model": "provider || ':' || model",
    "kind": "kind",
    "day": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

REPORT = """
SELECT {key} AS key, count(*) AS calls, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens,
       sum(units) AS units, sum(cost_usd) AS cost_usd
FROM usage_ledger
WHERE created_at >= %(since)s AND created_at < %(until)s
GROUP BY 1 ORDER BY sum(cost_usd) DESC, 1
"""


def record_usage(
    conn: psycopg.Connection[Any],
    *,
    user_id: int | None,
    session_id: str | None,
    feature: str,
    domain: str,
    provider: str,
    model: str,
    kind: str = "llm",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cached_tokens: int = 0,
    units: float = 0,
    cost_usd: float | None = None,
    latency_ms: float,
    meta: dict[str, Any] | None = None,
) -> float:
    """Write one ledger row and return its cost in USD (from the price table when not given)."""
    meta = dict(meta or {})
    if cost_usd is None:
        from shared.config.store import get_config

        cost_usd = price_of(
            get_config().logic.genlayers.prices,
            provider=provider,
            model=model,
            kind=kind,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            units=units,
        )
        if cost_usd is None:
            meta["price_missing"] = True
            cost_usd = 0.0
    conn.execute(
        INSERT_USAGE,
        {
            "user_id": user_id,
            "session_id": session_id,
            "feature": feature,
            "domain": domain,
            "provider": provider,
            "model": model,
            "kind": kind,
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "cached_tokens": int(cached_tokens),
            "units": units,
            "cost_usd": round(float(cost_usd), 8),
            "latency_ms": round(latency_ms),
            "meta": json.dumps(meta),
        },
    )
    return float(cost_usd)


def cost_report(
    conn: psycopg.Connection[Any], *, by: str, since: datetime, until: datetime
) -> dict[str, Any]:
    """Totals grouped by feature, domain, user, session, provider, model, kind or day."""
    if by not in GROUP_BY:
        raise ValueError(f"by must be one of {sorted(GROUP_BY)}")
    rows = conn.execute(REPORT.format(key=GROUP_BY[by]), {"since": since, "until": until}).fetchall()
    out = [
        {
            "key": r["key"],
            "calls": int(r["calls"]),
            "prompt_tokens": int(r["prompt_tokens"] or 0),
            "completion_tokens": int(r["completion_tokens"] or 0),
            "cached_tokens": int(r["cached_tokens"] or 0),
            "units": float(r["units"] or 0),
            "cost_usd": round(float(r["cost_usd"] or 0), 8),
        }
        for r in rows
    ]
    total = {
        k: sum(r[k] for r in out)
        for k in ("calls", "prompt_tokens", "completion_tokens", "cached_tokens", "units", "cost_usd")
    }
    total["cost_usd"] = round(float(total["cost_usd"]), 8)
    return {"by": by, "since": since.isoformat(), "until": until.isoformat(), "rows": out, "total": total}
