"""Media jobs: create (cache hit, join, or enqueue), read, cancel.

A job asks for an asset identified by a content hash. Inside one transaction ``create_job``:
  * serves a ``ready`` asset at once (``done``, ``cached``; no provider call, no task);
  * joins an asset that is ``pending`` (being made by an earlier job's task; no second task);
  * otherwise claims the asset row (insert, or reset a ``failed`` one) and enqueues one compute task of
    kind ``media.<kind>``. The unique content hash plus the row lock make two identical concurrent jobs
    end on one asset and one task, hence one provider call.
Quotas are checked in the same transaction, before anything is enqueued.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.config.models import MediaSection
from shared.media import sql
from shared.media.hashing import content_hash
from shared.media.quotas import check_quota, estimate_cost
from shared.media.registry import get_provider, provider_name
from shared.media.validation import ValidatedInput, check_reachable, validate_input

if TYPE_CHECKING:
    import psycopg

TASK_KIND = {"tts": "media.tts", "image": "media.image", "avatar": "media.avatar"}
LIVE = ("queued", "running")


class JobNotFound(Exception):
    pass


class JobNotCancellable(Exception):
    pass


@dataclass(frozen=True)
class Prepared:
    """A validated request: what is hashed, which provider makes it, what it is estimated to cost."""

    kind: str
    normalized: dict[str, Any]
    provider: str
    content_hash: str
    estimate_usd: float


def prepare(kind: str, data: dict[str, Any], cfg: MediaSection, *, check_inputs: bool = True) -> Prepared:
    """Validate and hash (no database). Raises ``MediaInputError`` with the reason."""
    valid: ValidatedInput = validate_input(kind, data, cfg)
    name = provider_name(kind, cfg)
    provider = get_provider(name, cfg)
    if kind == "avatar" and check_inputs and cfg.avatar.check_inputs_reachable:
        for field in ("image_url", "audio_url"):
            check_reachable(valid.normalized[field], field, cfg.avatar.reachability_timeout_seconds)
    digest = content_hash(kind, valid.normalized, provider.settings_fingerprint())
    return Prepared(kind, valid.normalized, name, digest, estimate_cost(kind, valid.normalized, cfg))


def create_job(
    conn: psycopg.Connection[Any], *, user_id: int, prepared: Prepared, priority: str, cfg: MediaSection
) -> dict[str, Any]:
    """Create the job inside the caller's transaction; returns the job row."""
    from psycopg.types.json import Jsonb

    from shared.compute import queue

    job_id = uuid.uuid4()
    asset = conn.execute(
        sql.INSERT_ASSET,
        {"hash": prepared.content_hash, "kind": prepared.kind, "provider": prepared.provider},
    ).fetchone()
    fresh = asset is not None
    if asset is None:
        asset = conn.execute(sql.LOCK_ASSET_BY_HASH, (prepared.content_hash,)).fetchone()
        assert asset is not None
        if asset["status"] == "pending" and reconcile_asset(conn, asset["id"]):
            asset = conn.execute(sql.LOCK_ASSET_BY_HASH, (prepared.content_hash,)).fetchone()
            assert asset is not None
    status, cached, joined, task_id, cost = "queued", False, False, None, prepared.estimate_usd
    if not fresh and asset["status"] == "ready":
        status, cached, cost = "done", True, 0.0
    elif not fresh and asset["status"] == "pending":
        joined, cost, task_id = True, 0.0, asset["task_id"]
        task = queue.get_task(conn, task_id) if task_id else None
        if task is not None and task.status in ("processing", "failed"):
            status = "running"
    check_quota(conn, user_id, cost, cfg)
    if fresh or asset["status"] == "failed":
        if not fresh:
            conn.execute(sql.RESET_FAILED_ASSET, {"id": asset["id"], "provider": prepared.provider})
        task = queue.enqueue(
            conn,
            kind=TASK_KIND[prepared.kind],
            priority=priority,
            owner_user_id=user_id,
            payload={
                "asset_id": asset["id"],
                "content_hash": prepared.content_hash,
                "kind": prepared.kind,
                "provider": prepared.provider,
                "input": prepared.normalized,
                "job_id": str(job_id),
                "user_id": user_id,
            },
        )
        task_id = task.id
        conn.execute(sql.SET_ASSET_TASK, {"id": asset["id"], "task": task_id})
    row = conn.execute(
        sql.INSERT_JOB,
        {
            "id": job_id,
            "user": user_id,
            "kind": prepared.kind,
            "priority": priority,
            "input": Jsonb(prepared.normalized),
            "hash": prepared.content_hash,
            "asset": asset["id"],
            "task": task_id,
            "status": status,
            "cached": cached,
            "joined": joined,
            "cost": round(cost, 6),
        },
    ).fetchone()
    assert row is not None
    from shared.observability.metrics import add_metric

    add_metric("MediaCacheHit" if cached else ("MediaJoined" if joined else "MediaEnqueued"), 1)
    return dict(row)


def _parse_id(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(job_id))
    except ValueError as exc:
        raise JobNotFound(job_id) from exc


def get_job(conn: psycopg.Connection[Any], *, user_id: int, job_id: str) -> dict[str, Any]:
    """The caller's job (someone else's is ``JobNotFound``), reconciled with its task first."""
    params = {"id": _parse_id(job_id), "user": user_id}
    row = conn.execute(sql.GET_JOB_FOR_USER, params).fetchone()
    if row is None:
        raise JobNotFound(job_id)
    if row["status"] in LIVE and row["asset_id"] and reconcile_asset(conn, row["asset_id"]):
        row = conn.execute(sql.GET_JOB_FOR_USER, params).fetchone()
        assert row is not None
    return dict(row)


def reconcile_asset(conn: psycopg.Connection[Any], asset_id: int) -> bool:
    """A pending asset whose task is over without making it (dead after its last retry, cancelled,
    deleted) is failed, with the task's last error, together with every job waiting for it."""
    from shared.compute import queue

    asset = conn.execute(sql.GET_ASSET, (asset_id,)).fetchone()
    if asset is None or asset["status"] != "pending":
        return False
    task = queue.get_task(conn, asset["task_id"]) if asset["task_id"] else None
    if task is not None and task.status not in ("dead", "cancelled"):
        return False
    reason = (task.error if task is not None else None) or "the task making this asset is gone"
    mark_failed(conn, asset_id, reason)
    return True


def mark_failed(conn: psycopg.Connection[Any], asset_id: int, reason: str) -> None:
    if conn.execute(sql.ASSET_FAILED, {"id": asset_id, "error": reason[:2000]}).fetchone() is not None:
        conn.execute(sql.JOBS_FAILED, {"asset": asset_id, "error": reason[:2000]})


def cancel_job(conn: psycopg.Connection[Any], *, user_id: int, job_id: str) -> dict[str, Any]:
    """Cancel a job that has not started. The task is cancelled only when no other job waits for it."""
    from shared.compute import queue

    params = {"id": _parse_id(job_id), "user": user_id}
    job = conn.execute(sql.LOCK_JOB_FOR_USER, params).fetchone()
    if job is None:
        raise JobNotFound(job_id)
    if job["status"] != "queued":
        raise JobNotCancellable(f"job is {job['status']}; only a queued job can be cancelled")
    asset_id = job["asset_id"]
    if asset_id is not None:
        asset = conn.execute(sql.LOCK_ASSET, (asset_id,)).fetchone()
        others = conn.execute(sql.OTHER_LIVE_JOBS, {"asset": asset_id, "id": job["id"]}).fetchone()
        if asset is not None and asset["status"] == "pending" and others is not None and others["n"] == 0:
            if asset["task_id"] is not None:
                try:
                    queue.cancel(conn, asset["task_id"])
                except queue.InvalidState as exc:
                    raise JobNotCancellable("the job has already started") from exc
            conn.execute(sql.DELETE_PENDING_ASSET, (asset_id,))
    row = conn.execute(sql.CANCEL_JOB, (job["id"],)).fetchone()
    assert row is not None
    return dict(row)


def job_view(row: dict[str, Any], url_for: Any = None) -> dict[str, Any]:
    """The public shape of a job (GET /v1/media/jobs/{id})."""
    view: dict[str, Any] = {
        "id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "priority": row["priority"],
        "cached": bool(row["cached"]),
        "created_at": row["created_at"].isoformat(),
        "finished_at": row["finished_at"].isoformat() if row.get("finished_at") else None,
    }
    if row["status"] == "done" and row.get("storage_key"):
        view["url"] = url_for(row["storage_key"]) if url_for else row["storage_key"]
        view["content_type"] = row.get("content_type")
        view["size_bytes"] = int(row["size_bytes"]) if row.get("size_bytes") is not None else None
    if row["status"] == "failed":
        view["error"] = row.get("error") or row.get("asset_error")
    return view
