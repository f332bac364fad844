"""The scheduled drain of ``compute_tasks`` (``functions/drain``, ``hybrid drain``, the local loop).

One tick, bounded by ``max_seconds`` (the Lambda's remaining time) and by per-tick counts:
  1. expired leases go back to ``pending`` (or ``dead``);
  2. RunPod jobs sent on earlier ticks are checked once each (``/status``) and their results written;
  3. pending tasks of ``runpod`` kinds are claimed in batches and sent to RunPod's ``/run``;
  4. ``inline`` kinds run in-process through their registered executors;
  5. due completion webhooks are delivered;
  6. queue depth and oldest-pending age per kind are emitted as metrics.
``pull`` kinds are left alone for external workers, and a ``runpod`` kind whose endpoint is not
configured here is left to them too. Two overlapping ticks do no harm: every task is obtained through
``claim`` (``SKIP LOCKED``) and every RunPod job is locked while it is checked.
"""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime
from typing import Any

from shared.compute import callbacks, queue, runpod_dispatch
from shared.compute.kinds import NonRetryable, compute_settings, get_executor, kind_settings, known_kinds
from shared.config.models import ComputeSection
from shared.observability.logging import get_logger

SAFETY_SECONDS = 2.0  # leave this much of the budget unused (commit, metrics, Lambda overhead)


def _emit_metrics(depth: dict[str, dict[str, float]]) -> None:
    try:
        from shared.observability.metrics import MetricUnit, add_metric

        add_metric("QueueDepth", sum(v["depth"] for v in depth.values()))
        add_metric(
            "QueueOldestPendingAge",
            max((v["oldest_age_seconds"] for v in depth.values()), default=0.0),
            MetricUnit.Seconds,
        )
        for kind, v in depth.items():
            add_metric(f"QueueDepth_{kind}", v["depth"])
            add_metric(f"QueueOldestPendingAge_{kind}", v["oldest_age_seconds"], MetricUnit.Seconds)
    except Exception as exc:  # metrics never break the drain
        get_logger().warning("drain metrics failed", extra={"error": str(exc)})


def _import_executor_modules(section: ComputeSection, errors: list[str]) -> None:
    for module in section.executor_modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            errors.append(f"import {module}: {type(exc).__name__}: {exc}")


def run_inline(
    database: Any, kind: str, section: ComputeSection, *, deadline: float, budget: int
) -> dict[str, int]:
    """Run up to ``budget`` tasks of an inline kind with its registered executor, one at a time."""
    counts = {"completed": 0, "failed": 0, "released": 0}
    fn = get_executor(kind)
    settings = kind_settings(kind, section)
    if fn is None or settings is None:
        return counts
    worker = "drain-inline"
    while budget > 0 and time.monotonic() < deadline:
        with database.connection() as conn:
            tasks = queue.claim(
                conn,
                kinds=[kind],
                limit=min(settings.batch_size, budget),
                lease_seconds=settings.lease_seconds,
                worker_id=worker,
                expire=False,
            )
        if not tasks:
            break
        for i, task in enumerate(tasks):
            token = task.lease_token or ""
            if time.monotonic() >= deadline:  # out of time: give the rest back unprocessed
                with database.connection() as conn:
                    for rest in tasks[i:]:
                        queue.release(conn, rest.id, rest.lease_token or "")
                counts["released"] += len(tasks) - i
                return counts
            try:
                result = fn(dict(task.payload))
            except NonRetryable as exc:
                outcome: tuple[bool, str] | None = (False, f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                outcome = (True, f"{type(exc).__name__}: {exc}")
            else:
                outcome = None
            with database.connection() as conn:
                try:
                    if outcome is None:
                        queue.complete(conn, task.id, token, result)
                        counts["completed"] += 1
                    else:
                        queue.fail(conn, task.id, token, outcome[1], outcome[0], section=section)
                        counts["failed"] += 1
                except queue.QueueError as exc:  # lease lost meanwhile: someone else has it now
                    get_logger().warning(
                        "inline result not stored", extra={"task": task.id, "error": str(exc)}
                    )
            budget -= 1
    return counts


def run_tick(db: Any = None, *, now: datetime | None = None, max_seconds: float = 50.0) -> dict[str, Any]:
    """One bounded pass of the drain; returns a JSON-ready summary of what it did."""
    from shared.db.connection import get_database

    database = db or get_database()
    section = compute_settings()
    started = time.monotonic()
    deadline = started + max(0.5, max_seconds - SAFETY_SECONDS)
    errors: list[str] = []
    summary: dict[str, Any] = {"at": (now or datetime.now(UTC)).isoformat()}
    _import_executor_modules(section, errors)

    with database.connection() as conn:
        row = conn.execute("SELECT now() AS t").fetchone()
        tick_started = row["t"] if row else None
        summary["expired"] = len(queue.expire_leases(conn, limit=section.drain_max_tasks_per_tick))

    counts = runpod_dispatch.Counts()
    clients: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for kind in known_kinds(section):
        settings = kind_settings(kind, section)
        if settings is None or settings.route != "runpod":
            continue
        try:
            clients[kind] = runpod_dispatch.client_for(settings, section_providers())
        except runpod_dispatch.NotConfigured as exc:
            skipped[kind] = str(exc)
    max_jobs = section.drain_max_jobs_per_tick
    try:
        runpod_dispatch.collect(
            database,
            section,
            clients,
            tick_started=tick_started,
            deadline=deadline,
            max_jobs=max_jobs,
            counts=counts,
        )
    except Exception as exc:
        errors.append(f"collect: {type(exc).__name__}: {exc}")
    for kind, client in clients.items():
        settings = kind_settings(kind, section)
        assert settings is not None
        try:
            runpod_dispatch.dispatch(
                database, kind, settings, section, client, deadline=deadline, max_jobs=max_jobs, counts=counts
            )
        except Exception as exc:
            errors.append(f"dispatch {kind}: {type(exc).__name__}: {exc}")
    summary["runpod"] = vars(counts)
    summary["left_to_pull_workers"] = sorted(skipped)

    inline: dict[str, dict[str, int]] = {}
    budget = section.drain_max_tasks_per_tick
    for kind in known_kinds(section):
        settings = kind_settings(kind, section)
        if settings is None or settings.route != "inline":
            continue
        if get_executor(kind) is None:
            errors.append(f"inline kind {kind!r} has no registered executor in this process")
            continue
        try:
            inline[kind] = run_inline(database, kind, section, deadline=deadline, budget=budget)
        except Exception as exc:
            errors.append(f"inline {kind}: {type(exc).__name__}: {exc}")
            continue
        budget -= sum(inline[kind].values())
    summary["inline"] = inline

    try:
        summary["callbacks"] = callbacks.deliver_due(
            database,
            limit=section.callbacks_per_tick,
            max_attempts=section.callback_max_attempts,
            timeout=section.callback_timeout_seconds,
            deadline=deadline,
        )
    except Exception as exc:
        errors.append(f"callbacks: {type(exc).__name__}: {exc}")

    with database.connection() as conn:
        depth = queue.depth(conn)
    _emit_metrics(depth)
    summary["depth"] = {k: int(v["depth"]) for k, v in depth.items()}
    summary["oldest_pending_age_seconds"] = round(
        max((v["oldest_age_seconds"] for v in depth.values()), default=0.0), 3
    )
    summary["errors"] = errors
    summary["elapsed_seconds"] = round(time.monotonic() - started, 3)
    if errors:
        get_logger().warning("drain tick had errors", extra={"errors": errors})
    return summary


def section_providers() -> dict[str, Any]:
    from shared.config.store import get_config

    return dict(get_config().logic.providers)
