"""Per-user daily quotas (jobs and estimated cost), checked inside the transaction that creates a job.

The user's advisory lock serialises concurrent creations, so two requests cannot both pass the last slot.
Days are UTC days. Failed and cancelled jobs still count as jobs but not as cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.config.models import MediaSection

if TYPE_CHECKING:
    import psycopg

LOCK_USER_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('media-quota:' || %s::text, 0))"

USAGE_TODAY_SQL = """
SELECT count(*) AS jobs,
       coalesce(sum(cost_usd) FILTER (WHERE status NOT IN ('failed', 'cancelled')), 0) AS cost
FROM media_jobs
WHERE user_id = %s AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
"""


class QuotaExceeded(Exception):
    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail, self.retry_after = detail, retry_after


def estimate_cost(kind: str, normalized: dict[str, Any], cfg: MediaSection) -> float:
    if kind == "tts":
        return len(normalized["text"]) / 1000.0 * cfg.tts.price_per_1k_chars_usd
    if kind == "image":
        prices = cfg.image.price_per_image_usd
        return float(prices.get(normalized["quality"], max(prices.values(), default=0.0)))
    return cfg.avatar.estimated_seconds * cfg.avatar.price_per_second_usd


def actual_cost(kind: str, normalized: dict[str, Any], units: float, cfg: MediaSection) -> float:
    if kind == "avatar":
        return units * cfg.avatar.price_per_second_usd
    return estimate_cost(kind, normalized, cfg)


def _seconds_to_midnight(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day'"
        " - now() AT TIME ZONE 'UTC') AS s"
    ).fetchone()
    return max(1, int(float(_first(row))))


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def check_quota(conn: psycopg.Connection[Any], user_id: int, cost: float, cfg: MediaSection) -> None:
    """Raise ``QuotaExceeded`` when one more job (costing ``cost``) would pass today's limits."""
    conn.execute(LOCK_USER_SQL, (user_id,))
    row = conn.execute(USAGE_TODAY_SQL, (user_id,)).fetchone()
    assert row is not None
    jobs, spent = (
        (int(row["jobs"]), float(row["cost"])) if isinstance(row, dict) else (int(row[0]), float(row[1]))
    )
    q = cfg.quotas
    if jobs + 1 > q.jobs_per_day:
        raise QuotaExceeded(
            f"daily media job quota reached ({jobs} of {q.jobs_per_day} today, UTC)",
            _seconds_to_midnight(conn),
        )
    if spent + cost > q.cost_usd_per_day + 1e-9:
        raise QuotaExceeded(
            f"daily media cost quota reached: ${spent:.4f} spent + ${cost:.4f} for this job"
            f" > ${q.cost_usd_per_day:.2f} per day (UTC)",
            _seconds_to_midnight(conn),
        )
