"""The internal worker API: pull workers claim batches and post results (``functions/workers``).

Authentication is a per-worker Bearer token (``hybrid workers add NAME``), not a user JWT. Every
refusal is problem+json and leaves ``compute_tasks`` as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.api.problems import Problem
from shared.compute import queue
from shared.compute.kinds import compute_settings, kind_settings
from shared.compute.workers import RateLimited, Worker, WorkerAuthError, authenticate
from shared.db.connection import get_database

if TYPE_CHECKING:
    import psycopg

router = APIRouter(prefix="/internal/workers", tags=["workers"])

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="workers"'}
ASYNC_COMMIT_SQL = "SET LOCAL synchronous_commit TO off"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResultBody(_Body):
    """Either ``{"lease_token", "result"}`` or ``{"lease_token", "error", "retryable"}``."""

    lease_token: UUID
    result: dict[str, Any] | list[Any] | None = None
    error: str | None = Field(default=None, min_length=1, max_length=queue.MAX_ERROR_CHARS)
    retryable: bool = True

    @model_validator(mode="after")
    def _one_outcome(self) -> ResultBody:
        has_result = "result" in self.model_fields_set and self.result is not None
        if has_result == (self.error is not None):
            raise ValueError('give exactly one of "result" (a JSON object or array) or "error"')
        return self


class HeartbeatBody(_Body):
    lease_token: UUID
    lease_seconds: int | None = Field(default=None, ge=1)


class ReleaseBody(_Body):
    lease_token: UUID


def _problem(exc: Exception) -> Problem:
    if isinstance(exc, RateLimited):
        return Problem(
            429, str(exc), slug=exc.slug, headers={"Retry-After": str(int(exc.retry_after + 0.999))}
        )
    if isinstance(exc, WorkerAuthError):
        return Problem(401, str(exc), slug=exc.slug, headers=_UNAUTHORIZED)
    if isinstance(exc, queue.QueueError):
        return Problem(exc.status, str(exc), slug=exc.slug)
    raise exc


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "a Bearer worker token is required", slug="worker-unauthorized", headers=_UNAUTHORIZED
        )
    return token.strip()


def _authenticated(conn: psycopg.Connection[Any], request: Request) -> Worker:
    """Authenticate and count the request against the rate limit, in a transaction of its own.

    That transaction commits without waiting for the WAL flush: a counter lost in a database crash
    costs nothing, while a flush per request would double the latency of every call.
    """
    token = _bearer(request)
    conn.execute(ASYNC_COMMIT_SQL)
    try:
        worker = authenticate(conn, token)
    except (WorkerAuthError, RateLimited) as exc:
        conn.commit()  # the rate-limit count stands even though the request is refused
        raise _problem(exc) from exc
    conn.commit()
    return worker


def _lease_seconds(requested: int | None, default: int) -> int:
    section = compute_settings()
    value = default if requested is None else requested
    if not section.lease_seconds_min <= value <= section.lease_seconds_max:
        raise Problem(
            422,
            f"lease_seconds must be between {section.lease_seconds_min} and {section.lease_seconds_max}",
            slug="validation-error",
        )
    return value


def _lease_view(task: queue.Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "kind": task.kind,
        "payload": task.payload,
        "lease_token": task.lease_token,
        "lease_until": task.lease_until.isoformat() if task.lease_until else None,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
    }


@router.get("/tasks")
def claim_tasks(
    request: Request,
    kind: str = Query(min_length=1, max_length=64),
    limit: int = Query(default=10, ge=1),
    lease_seconds: int | None = Query(default=None, ge=1),
) -> dict[str, Any]:
    """Claim up to ``limit`` tasks of ``kind`` for ``lease_seconds``; an empty list when none wait."""
    section = compute_settings()
    with get_database().connection() as conn:
        worker = _authenticated(conn, request)
        settings = kind_settings(kind, section)
        if settings is None:
            raise Problem(422, f"unknown task kind {kind!r}", slug="unknown-kind")
        if not worker.may_take(kind):
            raise Problem(
                403, f"worker {worker.name} may not take tasks of kind {kind!r}", slug="kind-forbidden"
            )
        if limit > section.claim_limit_max:
            raise Problem(422, f"limit must be at most {section.claim_limit_max}", slug="validation-error")
        lease = _lease_seconds(lease_seconds, settings.lease_seconds)
        tasks = queue.claim(conn, kinds=[kind], limit=limit, lease_seconds=lease, worker_id=worker.name)
    return {"tasks": [_lease_view(t) for t in tasks]}


@router.post("/tasks/{task_id}/result")
def post_result(task_id: int, body: ResultBody, request: Request) -> dict[str, Any]:
    """Complete the task (``result``) or report its failure (``error``, ``retryable``)."""
    with get_database().connection() as conn:
        _authenticated(conn, request)
        try:
            if body.error is None:
                task = queue.complete(conn, task_id, str(body.lease_token), body.result)
            else:
                task = queue.fail(conn, task_id, str(body.lease_token), body.error, body.retryable)
        except queue.QueueError as exc:
            raise _problem(exc) from exc
    return {
        "id": task.id,
        "status": task.status,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
    }


@router.post("/tasks/{task_id}/heartbeat")
def post_heartbeat(task_id: int, body: HeartbeatBody, request: Request) -> dict[str, Any]:
    """Extend the lease of a task still being worked on."""
    with get_database().connection() as conn:
        _authenticated(conn, request)
        current = queue.get_task(conn, task_id)
        settings = kind_settings(current.kind) if current else None
        lease = _lease_seconds(body.lease_seconds, settings.lease_seconds if settings else 60)
        try:
            task = queue.heartbeat(conn, task_id, str(body.lease_token), lease)
        except queue.QueueError as exc:
            raise _problem(exc) from exc
    return {"id": task.id, "lease_until": task.lease_until.isoformat() if task.lease_until else None}


@router.post("/tasks/{task_id}/release")
def post_release(task_id: int, body: ReleaseBody, request: Request) -> dict[str, Any]:
    """Give a claimed task back unprocessed (worker shutdown); it is not counted as an attempt."""
    with get_database().connection() as conn:
        _authenticated(conn, request)
        try:
            task = queue.release(conn, task_id, str(body.lease_token))
        except queue.QueueError as exc:
            raise _problem(exc) from exc
    return {"id": task.id, "status": task.status}
