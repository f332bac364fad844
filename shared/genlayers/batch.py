"""Low-priority generation through the OpenAI Batch API, as the ``compute_tasks`` kind
``genlayers.generate`` (run inline by the compute drain; results written back to the task).

The first attempt of a task uploads its chat-completions request as a one-line JSONL file and creates a
batch (``completion_window`` 24 h, half the price); later attempts poll it: while the batch is in flight
the executor raises ``BatchPending`` and the drain tries again after its backoff. When the batch is done
the line's reply is validated against the profile's schema, billed in the ledger at
``genlayers.batch_price_factor`` of the table price, and returned as the task's result
``{"output", "usage", "batch_id"}``. A failed or expired batch is submitted again on the next attempt;
output that fails the schema ends the task (``NonRetryable``) — use the synchronous route for hints.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Final

from shared.compute.kinds import NonRetryable, register_executor
from shared.config.models import ComputeKind
from shared.genlayers import ledger
from shared.genlayers.pricing import cost_usd
from shared.genlayers.profiles import get_profile
from shared.genlayers.structured import check

if TYPE_CHECKING:
    import psycopg

KIND = "genlayers.generate"
ENDPOINT: Final = "/v1/chat/completions"
IN_FLIGHT = {"validating", "in_progress", "finalizing"}

GET_REQUEST = "SELECT batch_id, input_file FROM llm_batch_requests WHERE request_key = %s"
PUT_REQUEST = """
INSERT INTO llm_batch_requests (request_key, provider, batch_id, input_file) VALUES (%s, %s, %s, %s)
ON CONFLICT (request_key) DO UPDATE SET batch_id = excluded.batch_id, input_file = excluded.input_file,
    created_at = now()
"""
DROP_REQUEST = "DELETE FROM llm_batch_requests WHERE request_key = %s"


class BatchPending(Exception):
    """The batch is still running: the drain retries the task after its backoff."""


def payload_for(
    profile: str, data: str | dict[str, Any], *, user_id: int | None, session_id: str | None
) -> dict[str, Any]:
    """Check the profile and input now (so a bad request fails at once), and build the task payload."""
    compiled = get_profile(profile)
    if compiled.profile.plan is not None or not compiled.profile.batch:
        raise NonRetryable(f"profile {profile!r} does not allow batch (low priority) generation")
    compiled.variables_for(data)
    return {"profile": profile, "input": data, "user_id": user_id, "session_id": session_id}


def enqueue_generation(
    conn: psycopg.Connection[Any],
    profile: str,
    data: str | dict[str, Any],
    *,
    user_id: int | None,
    session_id: str | None,
    idempotency_key: str | None = None,
) -> Any:
    from shared.compute import queue

    payload = payload_for(profile, data, user_id=user_id, session_id=session_id)
    return queue.enqueue(
        conn,
        kind=KIND,
        payload=payload,
        priority="low",
        idempotency_key=idempotency_key,
        owner_user_id=user_id,
    )


def run_batch_task(payload: dict[str, Any]) -> dict[str, Any]:
    from shared.genlayers.service import Context, get_generator
    from shared.providers.llm import get_llm
    from shared.providers.llm_openai import OpenAILLM

    gen = get_generator()
    cfg = gen.config()
    compiled = get_profile(str(payload.get("profile")), cfg)
    ctx = Context(user_id=payload.get("user_id"), session_id=payload.get("session_id"))
    request, _ = gen.prepare(compiled, compiled.variables_for(payload.get("input") or ""), ctx)
    provider = compiled.candidates[0][0]
    llm = get_llm(provider, cfg.logic.providers[provider])
    if not isinstance(llm, OpenAILLM) or cfg.logic.providers[provider].type != "openai":
        raise NonRetryable(f"provider {provider!r} has no Batch API (type openai only)")
    body = llm._chat_kwargs(request)
    key = hashlib.sha256(json.dumps([provider, body], sort_keys=True).encode()).hexdigest()

    with gen.connection() as conn:
        row = conn.execute(GET_REQUEST, (key,)).fetchone()
    if row is None:
        line = {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}
        upload = llm.client.files.create(
            file=("genlayers-batch.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch"
        )
        batch = llm.client.batches.create(
            input_file_id=upload.id,
            endpoint=ENDPOINT,
            completion_window="24h",
            metadata={"profile": compiled.name},
        )
        with gen.connection() as conn:
            conn.execute(PUT_REQUEST, (key, provider, batch.id, upload.id))
        raise BatchPending(f"submitted as batch {batch.id}")

    batch_id = row["batch_id"] if isinstance(row, dict) else row[0]
    batch = llm.client.batches.retrieve(batch_id)
    if batch.status in IN_FLIGHT:
        raise BatchPending(f"batch {batch_id} is {batch.status}")
    if batch.status != "completed" or not batch.output_file_id:
        with gen.connection() as conn:
            conn.execute(DROP_REQUEST, (key,))
        raise RuntimeError(
            f"batch {batch_id} ended {batch.status}; it is submitted again on the next attempt"
        )
    text = llm.client.files.content(batch.output_file_id).text
    found: dict[str, Any] | None = None
    for raw in text.splitlines():
        item: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        if item.get("custom_id") == key:
            found = item
    with gen.connection() as conn:
        conn.execute(DROP_REQUEST, (key,))
    response = (found or {}).get("response") or {}
    if found is None or response.get("status_code") != 200:
        raise RuntimeError(
            f"batch {batch_id} has no successful reply for this request: {(found or {}).get('error')}"
        )
    result = llm.chat_result(response["body"], request)
    price = cost_usd(
        cfg.logic.genlayers.prices,
        provider=provider,
        model=result.model,
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        cached_tokens=result.usage.cached_tokens,
    )
    with gen.connection() as conn:
        cost = ledger.record_usage(
            conn,
            user_id=ctx.user_id,
            session_id=ctx.session_id,
            feature=compiled.profile.feature,
            domain=compiled.domain,
            provider=provider,
            model=result.model,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            cached_tokens=result.usage.cached_tokens,
            cost_usd=None if price is None else price * cfg.logic.genlayers.batch_price_factor,
            latency_ms=0,
            meta={"profile": compiled.name, "batch_id": batch_id, "finish_reason": result.finish_reason},
        )
    value, problems, _ = check(result.text, None, compiled.output_validator())
    if result.finish_reason != "stop" or problems:
        reason = problems[0] if problems else f"finish reason {result.finish_reason}"
        raise NonRetryable(f"batch output is not usable: {reason}")
    return {
        "output": value,
        "batch_id": batch_id,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "cached_tokens": result.usage.cached_tokens,
            "cost_usd": round(cost, 8),
        },
    }


# Batches take minutes to hours: many attempts (the drain's backoff spaces them up to its maximum).
register_executor(
    KIND, run_batch_task, settings=ComputeKind(route="inline", max_attempts=100, lease_seconds=120)
)
