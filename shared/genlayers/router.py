"""HTTP: ``POST /v1/generate`` (authenticated) and ``GET /v1/admin/costs`` (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from shared.api.problems import Problem
from shared.auth.dependencies import get_principal, require_admin
from shared.auth.tokens import Principal
from shared.genlayers import profiles as _profiles  # noqa: F401 - registers the config cross-check

router = APIRouter(tags=["generation"])


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    input: str | dict[str, Any]
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    priority: Literal["high", "low"] = "high"  # low: OpenAI Batch API through compute_tasks (202 + task)


def to_problem(exc: Exception) -> Problem:
    """Map generation errors to problem+json; anything else is re-raised by the caller."""
    from shared.genlayers.profiles import InputInvalid, UnknownProfile
    from shared.genlayers.structured import GenerationError

    if isinstance(exc, UnknownProfile):
        return Problem(404, f"unknown profile {exc.args[0]!r}", slug="unknown-profile")
    if isinstance(exc, InputInvalid):
        return Problem(
            422,
            f"input does not fit the profile's template variables: {exc}",
            slug="invalid-input",
            errors=exc.errors,
        )
    if isinstance(exc, GenerationError):
        headers = {}
        retry = exc.extra.get("retry_after")
        if retry is not None or exc.status in (503, 504):
            headers["Retry-After"] = str(max(1, round(retry if retry is not None else 5)))
        extra = {k: v for k, v in exc.extra.items() if k in ("errors", "failed", "attempts")}
        return Problem(exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=headers, **extra)
    raise exc


@router.post("/v1/generate")
def generate(
    body: GenerateBody, response: Response, principal: Principal = Depends(get_principal)
) -> dict[str, Any]:
    from shared.genlayers.profiles import InputInvalid, UnknownProfile
    from shared.genlayers.service import Context, get_generator
    from shared.genlayers.structured import GenerationError

    if body.priority == "low":
        response.status_code = 202
        return _enqueue(body, principal)
    ctx = Context(user_id=principal.user_id, session_id=body.session_id)
    try:
        result = get_generator().generate(body.profile, body.input, ctx)
    except (UnknownProfile, InputInvalid, GenerationError) as exc:
        raise to_problem(exc) from exc
    out: dict[str, Any] = {
        "profile": result.profile,
        "output": result.output,
        "cached": result.cached,
        "usage": result.usage_dict(),
        "provider": result.provider,
        "model": result.model,
    }
    if result.sources:
        out["sources"] = [{k: s[k] for k in ("id", "doc_id", "title", "score")} for s in result.sources]
    return out


@router.get("/v1/admin/costs")
def costs(
    by: str = Query("feature", pattern="^(feature|domain|user|session|provider|model|kind|day)$"),
    since: str | None = Query(None, max_length=40, description="ISO date/datetime or a span: 24h, 7d"),
    _: Principal = Depends(require_admin),
) -> dict[str, Any]:
    from shared.db.connection import get_database
    from shared.genlayers.ledger import cost_report
    from shared.genlayers.timeparse import parse_since

    try:
        start = parse_since(since)
    except ValueError as exc:
        raise Problem(422, str(exc), slug="validation-error") from exc
    with get_database().connection() as conn:
        return cost_report(conn, by=by, since=start, until=datetime.now(UTC))


def _enqueue(body: GenerateBody, principal: Principal) -> dict[str, Any]:
    from shared.compute.kinds import NonRetryable
    from shared.db.connection import get_database
    from shared.genlayers.batch import enqueue_generation
    from shared.genlayers.limits import enforce_limits
    from shared.genlayers.profiles import InputInvalid, UnknownProfile

    try:
        with get_database().connection() as conn:
            enforce_limits(conn, user_id=principal.user_id, session_id=body.session_id)
            task = enqueue_generation(
                conn, body.profile, body.input, user_id=principal.user_id, session_id=body.session_id
            )
    except (UnknownProfile, InputInvalid) as exc:
        raise to_problem(exc) from exc
    except NonRetryable as exc:
        raise Problem(422, str(exc), slug="batch-not-allowed") from exc
    return {"task_id": task.id, "status": task.status, "priority": "low"}


@router.get("/v1/generate/tasks/{task_id}")
def generation_task(task_id: int, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    """A low-priority generation: its status, and the result once the batch is done (owner only)."""
    from shared.compute.queue import get_task
    from shared.db.connection import get_database
    from shared.genlayers.batch import KIND

    with get_database().connection() as conn:
        task = get_task(conn, task_id)
    if task is None or task.kind != KIND or task.owner_user_id != principal.user_id:
        raise Problem(404, f"no generation task {task_id}", slug="not-found")
    done = task.status == "completed"
    return {
        "task_id": task.id,
        "status": task.status,
        "result": task.result if done else None,
        "error": None if done else task.error,
    }
