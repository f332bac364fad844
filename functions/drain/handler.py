"""Lambda: the scheduled drain of ``compute_tasks`` (EventBridge schedule, or a direct invoke).

A tick may start an inline task (a media provider call) only while that task can still finish inside
the invocation: ``run_tick`` gets the remaining time minus the longest inline call, so the Lambda
timeout (``serverless.yml``: 360 s) must exceed the longest provider timeout (avatar: 300 s).
"""

from typing import Any

from shared.api.lambda_events import BadEvent, is_scheduled, lambda_task, remaining_seconds
from shared.compute import queue
from shared.compute.drain import run_tick
from shared.db.connection import get_database
from shared.observability.logging import get_logger
from shared.observability.metrics import add_metric

UPLOAD_SECONDS = 10.0  # after the provider call: the S3 put of the asset and the database writes
MIN_TICK_SECONDS = 1.0  # expire leases, poll RunPod, deliver webhooks even when no inline task fits


def inline_task_seconds() -> float:
    """Longest one inline task can take: the slowest provider call (media kinds; the OpenAI Batch kind
    calls the LLM providers) within its call budget, plus the upload of the result."""
    from shared.config.store import get_config

    logic = get_config().logic
    timeouts = [p.timeout_seconds for p in (*logic.media.providers.values(), *logic.providers.values())]
    return max(timeouts, default=0.0) + 1.0 + UPLOAD_SECONDS  # the media call budget is the timeout + 1 s


def tick_seconds(context: Any) -> float:
    """The tick's budget for *starting* work: what is left of the invocation minus one inline task."""
    left = remaining_seconds(context)
    budget = left - inline_task_seconds()
    if budget < MIN_TICK_SECONDS:
        get_logger().warning(
            "drain timeout leaves no room for an inline task",
            extra={"remaining_seconds": round(left, 1), "inline_task_seconds": inline_task_seconds()},
        )
    return max(MIN_TICK_SECONDS, budget)


def emit_dead_tasks() -> None:
    """``TasksDead`` (tasks out of attempts, waiting for a requeue): the dead-tasks alarm watches it."""
    try:
        with get_database().connection() as conn:
            add_metric("TasksDead", queue.stats(conn)["by_status"].get("dead", 0))
    except Exception as exc:  # a metric never fails the drain
        get_logger().warning("dead-task gauge failed", extra={"error": str(exc)[:200]})


@lambda_task("drain")
def handler(event: Any, context: Any) -> dict[str, Any]:
    if not (is_scheduled(event) or (isinstance(event, dict) and event.get("action") == "drain")):
        raise BadEvent('expected an EventBridge "Scheduled Event" or {"action": "drain"}')
    max_seconds = tick_seconds(context)
    summary = dict(run_tick(max_seconds=max_seconds))
    summary["max_seconds"] = round(max_seconds, 1)
    emit_dead_tasks()
    return summary
