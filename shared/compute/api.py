"""The user-facing entry to compute: one request, routed by priority.

``POST /v1/compute/tasks`` ``{"kind", "payload", "priority", "idempotency_key", "callback_url"}``:
``high`` runs now through the online router (``200`` with the provider's output, ``503`` when every
provider failed inside the budget); ``low`` is queued (``202`` with the task; poll
``GET /v1/compute/tasks/{id}`` or pass a ``callback_url``). Users may submit kinds routed ``runpod`` or
``pull``; ``inline`` kinds belong to other capabilities (media, genlayers) and are submitted through them.
Idempotency keys are scoped per user.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shared.api.problems import Problem
from shared.auth.dependencies import get_principal
from shared.auth.tokens import Principal
from shared.compute import queue
from shared.compute.kinds import compute_settings, kind_settings
from shared.db.connection import get_database

router = APIRouter(prefix="/v1/compute", tags=["compute"])


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any]
    priority: Literal["low", "high"] = "low"
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    callback_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")


def _problem(exc: queue.QueueError) -> Problem:
    return Problem(exc.status, str(exc), slug=exc.slug)


@router.post("/tasks", status_code=202)
def submit(body: SubmitBody, principal: Principal = Depends(get_principal)) -> Any:
    section = compute_settings()
    settings = kind_settings(body.kind, section)
    if settings is None:
        raise Problem(422, f"unknown task kind {body.kind!r}", slug="unknown-kind")
    if settings.route == "inline":
        raise Problem(
            403, f"tasks of kind {body.kind!r} are submitted through their own API", slug="kind-forbidden"
        )
    size = len(json.dumps(body.payload, separators=(",", ":"), ensure_ascii=False).encode())
    if size > settings.max_payload_bytes:
        raise Problem(
            413,
            f"payload of {size} bytes is over the {settings.max_payload_bytes}-byte limit "
            f"of kind {body.kind!r}",
            slug="payload-too-large",
        )
    if body.priority == "high" and body.kind in section.online:
        return JSONResponse(_run_online(body.kind, body.payload), status_code=200)
    key = f"u{principal.user_id}:{body.idempotency_key}" if body.idempotency_key else None
    with get_database().connection() as conn:
        try:
            task = queue.enqueue(
                conn,
                kind=body.kind,
                payload=body.payload,
                priority=body.priority,
                idempotency_key=key,
                callback_url=body.callback_url,
                owner_user_id=principal.user_id,
                section=section,
            )
        except queue.QueueError as exc:
            raise _problem(exc) from exc
    return _view(task)


def _run_online(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    from shared.compute.online import get_router
    from shared.providers.resilience import AllProvidersFailed, ProviderError

    try:
        result = get_router().run(kind, payload)
    except AllProvidersFailed as exc:
        retry = max(1, int(exc.retry_after or 1))
        raise Problem(
            503,
            "no provider answered within the time budget; retry, or submit with priority low",
            slug="providers-unavailable",
            headers={"Retry-After": str(retry)},
            providers=[{"provider": e.provider, "reason": e.kind.value} for e in exc.errors],
        ) from exc
    except ProviderError as exc:  # the request itself was refused (4xx): the caller's to fix
        raise Problem(422, f"the provider refused the input: {exc}", slug="invalid-payload") from exc
    return {
        "kind": kind,
        "priority": "high",
        "status": "completed",
        "provider": result.provider,
        "result": result.output,
        "latency_ms": round(result.latency_ms, 2),
    }


@router.get("/tasks/{task_id}")
def get(task_id: int, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    with get_database().connection() as conn:
        task = queue.get_task(conn, task_id)
    if task is None or (task.owner_user_id != principal.user_id and not principal.is_admin):
        raise Problem(404, f"task {task_id} does not exist", slug="task-not-found")
    return _view(task)


def _view(task: queue.Task) -> dict[str, Any]:
    out = task.to_dict()
    for hidden in ("worker_id", "idempotency_key", "owner_user_id", "callback_url"):
        out.pop(hidden, None)
    return out
