"""The drain's RunPod path: claimed tasks go out as asynchronous jobs (``/run``), and later ticks
collect them (``/status``) and write each task's result.

Many tasks per job: ``embed`` tasks are concatenated into one ``{"task": "embed", "texts": [...]}``
job (grouped by ``return_sparse``) and the answer is split back by each task's text count; other
kinds go one task per job (``{"task": kind, **payload}``). Tasks are claimed with a long lease
(``compute.drain_runpod_lease_seconds``) renewed while the job runs, so a tick that dies after the
claim loses nothing: the lease runs out and the tasks are claimed again.

Overlapping ticks: a job row is locked (``FOR UPDATE SKIP LOCKED``) while it is checked, so two
ticks never collect the same job; tasks are only ever obtained through ``claim``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shared.compute import queue
from shared.config.models import ComputeKind, ComputeSection, ProviderSettings
from shared.observability.logging import get_logger

INSERT_JOB_SQL = """
INSERT INTO compute_runpod_jobs (job_id, kind, endpoint_id, tasks) VALUES (%s, %s, %s, %s)
"""

# One job not yet checked in this tick (``checked_at`` before the tick began), locked while checked.
NEXT_JOB_SQL = """
SELECT job_id, kind, endpoint_id, tasks, extract(epoch FROM now() - submitted_at) AS age
FROM compute_runpod_jobs
WHERE finished_at IS NULL AND (checked_at IS NULL OR checked_at < %(tick)s)
ORDER BY checked_at NULLS FIRST, submitted_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

CHECKED_SQL = "UPDATE compute_runpod_jobs SET checked_at = now(), status = %s WHERE job_id = %s"
FINISHED_SQL = (
    "UPDATE compute_runpod_jobs SET checked_at = now(), finished_at = now(), status = %s WHERE job_id = %s"
)

# Keep the leases of tasks whose job is still running.
EXTEND_SQL = """
UPDATE compute_tasks SET lease_until = now() + make_interval(secs => %(lease)s), updated_at = now()
WHERE id = ANY(%(ids)s) AND lease_token = ANY(%(tokens)s::uuid[]) AND status = 'processing'
"""


class NotConfigured(Exception):
    """The kind's RunPod provider has no endpoint or key here: its tasks are left to pull workers."""


@dataclass
class Counts:
    dispatched_jobs: int = 0
    dispatched_tasks: int = 0
    collected_jobs: int = 0
    completed: int = 0
    failed: int = 0
    stale: int = 0
    errors: int = 0


def client_for(
    settings: ComputeKind, providers: dict[str, ProviderSettings], endpoint: str | None = None
) -> Any:
    """A ``RunPodClient`` for the kind's provider (``NotConfigured`` when it cannot be reached)."""
    import os

    from shared.config import env
    from shared.providers.runpod_client import client_for_provider

    name = settings.runpod_provider
    if not name or name not in providers:
        raise NotConfigured(f"runpod_provider {name!r} is not under providers:")
    prov = providers[name]
    options = dict(prov.options) | ({"endpoint_id": endpoint} if endpoint else {})
    try:
        return client_for_provider(
            name=name,
            base_url=prov.base_url,
            api_key=os.environ.get(prov.api_key_env or env.RUNPOD_API_KEY.name) or None,
            options=options,
            timeout=prov.timeout_seconds,
        )
    except ValueError as exc:
        raise NotConfigured(str(exc)) from exc


# --- job shapes ----------------------------------------------------------------------------------


def _valid_embed(payload: Any) -> str | None:
    texts = payload.get("texts") if isinstance(payload, dict) else None
    if not isinstance(texts, list) or not texts:
        return "texts: a non-empty list of strings is required"
    if not all(isinstance(t, str) and t.strip() for t in texts):
        return "texts: every item must be a non-empty string"
    return None


def build_jobs(
    kind: str, tasks: list[queue.Task]
) -> tuple[list[tuple[dict[str, Any], list[dict[str, Any]]]], list[tuple[queue.Task, str]]]:
    """``(jobs, invalid)``: each job is ``(job_input, [{"id", "lease_token", "n"}])``."""
    jobs: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    invalid: list[tuple[queue.Task, str]] = []
    if kind == "embed":
        groups: dict[bool, list[queue.Task]] = {}
        for t in tasks:
            reason = _valid_embed(t.payload)
            if reason:
                invalid.append((t, reason))
            else:
                groups.setdefault(bool(t.payload.get("return_sparse", False)), []).append(t)
        for sparse, group in groups.items():
            job: dict[str, Any] = {"task": "embed", "texts": [x for t in group for x in t.payload["texts"]]}
            if sparse:
                job["return_sparse"] = True
            entries = [
                {"id": t.id, "lease_token": t.lease_token, "n": len(t.payload["texts"])} for t in group
            ]
            jobs.append((job, entries))
        return jobs, invalid
    for t in tasks:
        payload = t.payload if isinstance(t.payload, dict) else {}
        jobs.append(({"task": kind, **payload}, [{"id": t.id, "lease_token": t.lease_token, "n": 1}]))
    return jobs, invalid


def split_output(kind: str, output: Any, entries: list[dict[str, Any]]) -> list[Any]:
    """One result per task of the job, in order; raises ``ValueError`` when the answer does not fit."""
    if kind != "embed":
        if len(entries) != 1:
            raise ValueError("one task per job expected")
        return [output]
    if not isinstance(output, dict) or not isinstance(output.get("embeddings"), list):
        raise ValueError("the worker answered without embeddings")
    total = sum(int(e["n"]) for e in entries)
    if len(output["embeddings"]) != total:
        raise ValueError(f"asked for {total} vectors, got {len(output['embeddings'])}")
    shared = {k: v for k, v in output.items() if k in ("model", "dimension")}
    results, offset = [], 0
    for e in entries:
        n = int(e["n"])
        part: dict[str, Any] = dict(shared)
        for key in ("embeddings", "sparse", "truncated"):
            if isinstance(output.get(key), list):
                part[key] = output[key][offset : offset + n]
        results.append(part)
        offset += n
    return results


# --- dispatch ------------------------------------------------------------------------------------


def dispatch(
    database: Any,
    kind: str,
    settings: ComputeKind,
    section: ComputeSection,
    client: Any,
    *,
    deadline: float,
    max_jobs: int,
    counts: Counts,
) -> None:
    """Claim batches of ``kind`` and send each as a RunPod job, until ``max_jobs`` or the deadline."""
    from psycopg.types.json import Jsonb

    worker = f"runpod:{client.endpoint_id or 'local'}"
    while counts.dispatched_jobs < max_jobs and time.monotonic() < deadline:
        with database.connection() as conn:
            tasks = queue.claim(
                conn,
                kinds=[kind],
                limit=settings.batch_size,
                lease_seconds=section.drain_runpod_lease_seconds,
                worker_id=worker,
                expire=False,
            )
        if not tasks:
            return
        jobs, invalid = build_jobs(kind, tasks)
        for task, reason in invalid:
            with database.connection() as conn:
                queue.fail(conn, task.id, task.lease_token or "", reason, retryable=False, section=section)
            counts.failed += 1
        for job_input, entries in jobs:
            try:
                job_id = client.run(job_input)
            except Exception as exc:  # RunPod unreachable: give the tasks back, try on a later tick
                get_logger().warning("runpod /run failed", extra={"kind": kind, "error": str(exc)[:300]})
                counts.errors += 1
                with database.connection() as conn:
                    for e in entries:
                        try:
                            queue.release(conn, e["id"], e["lease_token"])
                        except queue.QueueError:
                            counts.stale += 1
                return
            with database.connection() as conn:
                conn.execute(INSERT_JOB_SQL, (job_id, kind, client.endpoint_id or "", Jsonb(entries)))
            counts.dispatched_jobs += 1
            counts.dispatched_tasks += len(entries)


# --- collect -------------------------------------------------------------------------------------


def collect(
    database: Any,
    section: ComputeSection,
    clients: dict[str, Any],
    *,
    tick_started: Any,
    deadline: float,
    max_jobs: int,
    counts: Counts,
) -> None:
    """Check open jobs once each (``/status``): write results, fail tasks of failed jobs, keep leases."""
    from psycopg.rows import dict_row

    from shared.providers.runpod_client import FINAL_BAD, FINAL_OK, error_message

    for _ in range(max_jobs):
        if time.monotonic() >= deadline:
            return
        with database.connection() as conn:
            job = conn.cursor(row_factory=dict_row).execute(NEXT_JOB_SQL, {"tick": tick_started}).fetchone()
            if job is None:
                return
            client = clients.get(job["kind"])
            if client is None:  # its provider is not configured here any more: leave it
                conn.execute(CHECKED_SQL, ("UNCONFIGURED", job["job_id"]))
                continue
            entries = list(job["tasks"])
            try:
                status = client.status(
                    job["job_id"], timeout=min(client.timeout, max(deadline - time.monotonic(), 0.5))
                )
            except Exception as exc:
                code = getattr(getattr(exc, "response", None), "status_code", None)
                if code == 404:  # RunPod no longer knows the job: its tasks go back for a retry
                    _fail_all(conn, entries, "RunPod lost the job (404)", True, section, counts)
                    conn.execute(FINISHED_SQL, ("LOST", job["job_id"]))
                    counts.collected_jobs += 1
                else:
                    counts.errors += 1
                    conn.execute(CHECKED_SQL, ("CHECK_FAILED", job["job_id"]))
                continue
            if status.status == FINAL_OK:
                try:
                    results = split_output(job["kind"], status.output, entries)
                except ValueError as exc:
                    _fail_all(conn, entries, f"RunPod answer unusable: {exc}", True, section, counts)
                else:
                    for e, result in zip(entries, results, strict=True):
                        try:
                            queue.complete(conn, e["id"], e["lease_token"], result)
                            counts.completed += 1
                        except queue.QueueError:
                            counts.stale += 1
                conn.execute(FINISHED_SQL, (status.status, job["job_id"]))
                counts.collected_jobs += 1
            elif status.status in FINAL_BAD:
                message = error_message(status.error)
                retryable = "JobInputError" not in str(status.error)
                _fail_all(conn, entries, f"RunPod job {status.status}: {message}", retryable, section, counts)
                conn.execute(FINISHED_SQL, (status.status, job["job_id"]))
                counts.collected_jobs += 1
            elif float(job["age"]) > section.drain_runpod_lease_seconds:  # stuck: give up on this job
                try:
                    client.cancel(job["job_id"])
                except Exception as exc:
                    get_logger().warning(
                        "runpod cancel failed", extra={"job": job["job_id"], "error": str(exc)}
                    )
                limit = section.drain_runpod_lease_seconds
                _fail_all(
                    conn, entries, f"RunPod job still {status.status} after {limit}s", True, section, counts
                )
                conn.execute(FINISHED_SQL, ("ABANDONED", job["job_id"]))
                counts.collected_jobs += 1
            else:  # still queued or running: keep the tasks' leases
                conn.execute(
                    EXTEND_SQL,
                    {
                        "lease": section.drain_runpod_lease_seconds,
                        "ids": [e["id"] for e in entries],
                        "tokens": [e["lease_token"] for e in entries],
                    },
                )
                conn.execute(CHECKED_SQL, (status.status, job["job_id"]))


def _fail_all(
    conn: Any,
    entries: list[dict[str, Any]],
    error: str,
    retryable: bool,
    section: ComputeSection,
    counts: Counts,
) -> None:
    for e in entries:
        try:
            queue.fail(conn, e["id"], e["lease_token"], error, retryable, section=section)
            counts.failed += 1
        except queue.QueueError:
            counts.stale += 1
