"""HTTP: POST/GET/DELETE /v1/media/jobs and, for the local blob store, GET /v1/media/assets/{key}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from shared.api.problems import Problem
from shared.auth.dependencies import get_principal
from shared.auth.tokens import Principal
from shared.media.validation import JobRequest, MediaInputError

router = APIRouter(prefix="/v1/media", tags=["media"])


def _cfg() -> Any:
    from shared.config.store import get_config

    return get_config().logic.media


def _not_found(job_id: str) -> Problem:
    return Problem(404, f"no media job {job_id!r}", slug="media-job-not-found")


def _view(conn: Any, user_id: int, job_id: str) -> dict[str, Any]:
    from shared.media.service import get_job, job_view
    from shared.media.storage import get_blob_store

    store = get_blob_store()
    return job_view(get_job(conn, user_id=user_id, job_id=job_id), store.url)


def _create(user_id: int, body: JobRequest) -> dict[str, Any]:
    from shared.db.connection import get_database
    from shared.media.quotas import QuotaExceeded
    from shared.media.registry import ProviderNotConfigured
    from shared.media.service import create_job, prepare

    cfg = _cfg()
    try:
        prepared = prepare(body.kind, body.input, cfg)
    except MediaInputError as exc:
        raise Problem(422, exc.detail, slug=exc.slug) from None
    except ProviderNotConfigured as exc:
        raise Problem(503, str(exc), slug="media-provider-not-configured") from None
    try:
        with get_database().connection() as conn:
            row = create_job(conn, user_id=user_id, prepared=prepared, priority=body.priority, cfg=cfg)
            return _view(conn, user_id, str(row["id"]))
    except QuotaExceeded as exc:
        raise Problem(
            429, exc.detail, slug="media-quota-exceeded", headers={"Retry-After": str(exc.retry_after)}
        ) from None


@router.post("/jobs", status_code=202)
async def create_media_job(body: JobRequest, principal: Principal = Depends(get_principal)) -> JSONResponse:
    view = await run_in_threadpool(_create, principal.user_id, body)
    return JSONResponse(view, status_code=202, headers={"Location": f"/v1/media/jobs/{view['id']}"})


def _get(user_id: int, job_id: str) -> dict[str, Any]:
    from shared.db.connection import get_database
    from shared.media.service import JobNotFound

    try:
        with get_database().connection() as conn:
            return _view(conn, user_id, job_id)
    except JobNotFound:
        raise _not_found(job_id) from None


@router.get("/jobs/{job_id}")
async def get_media_job(job_id: str, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    return await run_in_threadpool(_get, principal.user_id, job_id)


def _cancel(user_id: int, job_id: str) -> dict[str, Any]:
    from shared.db.connection import get_database
    from shared.media.service import JobNotCancellable, JobNotFound, cancel_job

    try:
        with get_database().connection() as conn:
            row = cancel_job(conn, user_id=user_id, job_id=job_id)
            return {"id": str(row["id"]), "status": row["status"]}
    except JobNotFound:
        raise _not_found(job_id) from None
    except JobNotCancellable as exc:
        raise Problem(409, str(exc), slug="media-job-not-cancellable") from None


@router.delete("/jobs/{job_id}")
async def cancel_media_job(job_id: str, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    return await run_in_threadpool(_cancel, principal.user_id, job_id)


_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
}


@router.get("/assets/{key:path}", include_in_schema=True)
def get_media_asset(key: str) -> FileResponse:
    """Serves assets of the local blob store. Keys are content hashes (capability URLs, like presigned S3
    URLs): whoever holds a job's URL may fetch it."""
    from shared.media.blob_local import LocalBlobStore
    from shared.media.storage import get_blob_store

    store = get_blob_store()
    if not isinstance(store, LocalBlobStore):
        raise Problem(
            404, "assets are served from object storage; use the job's url", slug="media-asset-not-found"
        )
    try:
        path = store.path_of(key)
    except KeyError:
        raise Problem(404, "no such asset", slug="media-asset-not-found") from None
    if not path.is_file():
        raise Problem(404, "no such asset", slug="media-asset-not-found")
    media_type = _TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": _cfg().storage.cache_control})
