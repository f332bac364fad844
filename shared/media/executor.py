"""Runs one media task (compute kinds ``media.tts`` / ``media.image`` / ``media.avatar``, route ``inline``).

Called by the compute drain with the task's payload. Steps, each crash-safe:
  1. the asset is already ``ready`` (a redelivered task) → return it, no provider call;
  2. waiting jobs → ``running``;
  3. one provider call, under the provider's concurrency cap and the shared breaker
     (``shared.providers.resilience``); the whole body is in memory before anything is stored;
  4. the body is written under its content-addressed key (atomic: temp + rename, or one S3 PUT);
  5. one transaction: asset ``ready``, its jobs ``done``, the call in the usage ledger.
A crash after 4 leaves an object that the retry overwrites with the same bytes under the same key.
A failure raises: the queue retries it with backoff; the last attempt (or a client error, which no
retry can fix) marks the asset and its jobs ``failed`` with the reason, and nothing is stored.
"""

from __future__ import annotations

import time
from typing import Any

from shared.config.models import MediaSection
from shared.media import sql
from shared.media.blobstore import asset_key
from shared.media.quotas import actual_cost
from shared.media.registry import get_provider, max_concurrency
from shared.observability.logging import get_logger
from shared.providers.media import (
    AvatarProvider,
    AvatarRequest,
    ImageProvider,
    ImageRequest,
    MediaOutput,
    MediaProvider,
    SpeechProvider,
    SpeechRequest,
    provider_semaphore,
)

log = get_logger()


def _media_cfg() -> MediaSection:
    from shared.config.store import get_config

    return get_config().logic.media


def _call(
    provider: MediaProvider, kind: str, data: dict[str, Any], content_hash: str, timeout: float
) -> MediaOutput:
    if kind == "tts":
        assert isinstance(provider, SpeechProvider)
        return provider.synthesize(
            SpeechRequest(
                text=data["text"],
                voice=data["voice"],
                format=data["format"],
                speed=float(data["speed"]),
                instructions=data.get("instructions"),
            ),
            timeout=timeout,
        )
    if kind == "image":
        assert isinstance(provider, ImageProvider)
        return provider.generate(
            ImageRequest(prompt=data["prompt"], size=data["size"], quality=data["quality"]), timeout=timeout
        )
    assert isinstance(provider, AvatarProvider)
    return provider.render(
        AvatarRequest(
            image_url=data["image_url"], audio_url=data["audio_url"], max_seconds=data["max_seconds"]
        ),
        timeout=timeout,
        idempotency_key=content_hash,
    )


def _ready_result(asset: dict[str, Any]) -> dict[str, Any]:
    return {
        "asset_id": asset["id"],
        "storage_key": asset["storage_key"],
        "content_type": asset["content_type"],
        "size_bytes": int(asset["size_bytes"] or 0),
    }


def _is_last_attempt(conn: Any, task_id: int | None) -> bool:
    from shared.compute import queue

    task = queue.get_task(conn, task_id) if task_id else None
    return task is None or task.attempts >= task.max_attempts


def run_media_task(payload: dict[str, Any]) -> dict[str, Any]:
    from shared.compute import NonRetryable
    from shared.db.connection import get_database
    from shared.media.storage import get_blob_store
    from shared.providers.resilience import (
        AllProvidersFailed,
        CallPolicy,
        Candidate,
        FailureKind,
        ProviderError,
        default_chain,
    )

    asset_id, kind, digest = int(payload["asset_id"]), str(payload["kind"]), str(payload["content_hash"])
    cfg = _media_cfg()
    db = get_database()
    with db.connection() as conn:
        asset = conn.execute(sql.GET_ASSET, (asset_id,)).fetchone()
        if asset is None or asset["content_hash"] != digest:
            return {"asset_id": asset_id, "skipped": "asset no longer exists"}
        if asset["status"] == "ready":
            return _ready_result(asset)
        if asset["status"] == "failed":
            raise NonRetryable(asset["error"] or "asset failed")
        conn.execute(sql.JOBS_RUNNING, (asset_id,))
        task_id = asset["task_id"]

    name = str(payload["provider"])
    try:
        provider = get_provider(name, cfg)
    except Exception as exc:
        reason = f"provider {name!r} unavailable: {exc}"
        with db.connection() as conn:
            from shared.media.service import mark_failed

            mark_failed(conn, asset_id, reason)
        raise NonRetryable(reason) from exc
    settings = cfg.providers[name]
    timeout = settings.timeout_seconds
    semaphore = provider_semaphore(name, max_concurrency(name, cfg))
    started = time.monotonic()
    try:
        if not semaphore.acquire(timeout=timeout):
            raise ProviderError(name, FailureKind.TRANSIENT, "concurrency limit: no slot within the timeout")
        try:
            _, output = default_chain().call(
                [Candidate(name, lambda t: _call(provider, kind, payload["input"], digest, t))],
                CallPolicy(budget_seconds=timeout + 1.0, max_attempts=1),
            )
        finally:
            semaphore.release()
    except (ProviderError, AllProvidersFailed, Exception) as exc:
        # A refused request (4xx) or a misconfigured provider (401/403, missing key) will not heal by
        # retrying: fail the job now, with the reason. Everything else retries through the queue.
        kinds = (
            [exc.kind]
            if isinstance(exc, ProviderError)
            else [e.kind for e in exc.errors]
            if isinstance(exc, AllProvidersFailed)
            else []
        )
        client_error = bool(kinds) and all(k in (FailureKind.CLIENT, FailureKind.AUTH) for k in kinds)
        reason = f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)
        with db.connection() as conn:
            final = client_error or _is_last_attempt(conn, task_id)
            if final:
                from shared.media.service import mark_failed

                mark_failed(conn, asset_id, reason)
        log.warning(
            "media provider call failed", extra={"asset_id": asset_id, "final": final, "reason": reason}
        )
        if client_error:
            raise NonRetryable(reason) from exc
        raise RuntimeError(reason) from exc
    latency_ms = (time.monotonic() - started) * 1000

    key = asset_key(kind, digest, output.extension)
    store = get_blob_store()
    store.put(key, output.body, content_type=output.content_type, cache_control=cfg.storage.cache_control)
    cost = actual_cost(kind, payload["input"], output.units, cfg)
    with db.connection() as conn:
        ready = conn.execute(
            sql.ASSET_READY,
            {
                "id": asset_id,
                "key": key,
                "content_type": output.content_type,
                "size": len(output.body),
                "provider": name,
                "model": output.model,
                "units": output.units,
                "cost": round(cost, 6),
            },
        ).fetchone()
        if ready is None:  # cancelled or failed meanwhile: keep nothing behind
            store.delete(key)
            return {"asset_id": asset_id, "skipped": "asset is no longer pending"}
        conn.execute(sql.JOBS_DONE, {"asset": asset_id, "cost": round(cost, 6)})
        origin = conn.execute(sql.ORIGIN_JOB, (asset_id,)).fetchone()
        _record_usage(conn, origin, name, output, kind, cost, latency_ms, asset_id, digest)
    return _ready_result(dict(ready))


def _record_usage(
    conn: Any,
    origin: dict[str, Any] | None,
    provider: str,
    output: MediaOutput,
    kind: str,
    cost: float,
    latency_ms: float,
    asset_id: int,
    digest: str,
) -> None:
    from shared.genlayers.ledger import record_usage

    record_usage(
        conn,
        user_id=origin["user_id"] if origin else None,
        session_id=None,
        feature=f"media.{kind}",
        domain="media",
        provider=provider,
        model=output.model,
        kind=kind,
        units=output.units,
        cost_usd=cost,
        latency_ms=latency_ms,
        meta={"asset_id": asset_id, "content_hash": digest, "job_id": str(origin["id"]) if origin else None},
    )


def register() -> None:
    """Register the media kinds with the compute drain (idempotent)."""
    from shared.compute import register_executor
    from shared.config.models import ComputeKind

    # Defaults when compute.kinds in logic.yaml does not name the kind; the lease outlasts a provider call.
    for kind, lease in (("media.tts", 180), ("media.image", 300), ("media.avatar", 900)):
        register_executor(
            kind, run_media_task, settings=ComputeKind(route="inline", max_attempts=4, lease_seconds=lease)
        )
