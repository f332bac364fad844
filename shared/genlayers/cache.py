"""Response cache in PostgreSQL for profiles that allow it (``cache: shared|user`` with a TTL).

The key hashes everything that shapes the reply: provider, model, api, system prompt and messages,
schema, temperature and max tokens (plus the user for ``cache: user``). Hits and misses are counted
here (process-wide) and emitted as metrics, so the hit ratio shows in CloudWatch and in tests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

from shared.providers.llm import LLMRequest

if TYPE_CHECKING:
    import psycopg

GET = """
UPDATE llm_response_cache SET hits = hits + 1
WHERE cache_key = %(key)s AND expires_at > now()
RETURNING output, usage, provider, model
"""
PUT = """
INSERT INTO llm_response_cache (cache_key, profile, provider, model, output, usage, expires_at)
VALUES (%(key)s, %(profile)s, %(provider)s, %(model)s, %(output)s, %(usage)s,
        now() + make_interval(secs => %(ttl)s))
ON CONFLICT (cache_key) DO UPDATE
SET output = excluded.output, usage = excluded.usage, provider = excluded.provider,
    model = excluded.model, created_at = now(), expires_at = excluded.expires_at, hits = 0
"""
PRUNE = "DELETE FROM llm_response_cache WHERE expires_at <= now()"


def cache_key(provider: str, request: LLMRequest, *, user_id: int | None = None) -> str:
    material = {
        "provider": provider,
        "model": request.model,
        "api": request.api,
        "system": request.system,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.schema,
        "strict": request.strict,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "user": user_id,
    }
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class HitCounter:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def record(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1
        try:
            from shared.observability.metrics import MetricUnit, add_metric

            add_metric("GenerationCacheHit" if hit else "GenerationCacheMiss", 1, MetricUnit.Count)
        except Exception:  # noqa: S110 - metrics never break a call
            pass

    @property
    def ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


counter = HitCounter()


def get(conn: psycopg.Connection[Any], key: str) -> dict[str, Any] | None:
    row = conn.execute(GET, {"key": key}).fetchone()
    counter.record(row is not None)
    if row is None:
        return None
    return (
        dict(row)
        if isinstance(row, dict)
        else dict(zip(("output", "usage", "provider", "model"), row, strict=True))
    )


def put(
    conn: psycopg.Connection[Any],
    key: str,
    *,
    profile: str,
    provider: str,
    model: str,
    output: Any,
    usage: dict[str, Any],
    ttl_seconds: int,
) -> None:
    conn.execute(
        PUT,
        {
            "key": key,
            "profile": profile,
            "provider": provider,
            "model": model,
            "output": json.dumps(output, ensure_ascii=False),
            "usage": json.dumps(usage),
            "ttl": float(ttl_seconds),
        },
    )


def prune(conn: psycopg.Connection[Any]) -> int:
    return conn.execute(PRUNE).rowcount
