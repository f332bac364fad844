"""Generation stack overhead and cache-hit latency.

1. Overhead per call, excluding provider time: ``Generator.generate`` on an uncached profile against a
   fake OpenAI server on 127.0.0.1 that answers instantly, through the real openai SDK. Provider time
   is each call's ``latency_ms`` (SDK + HTTP round trip); what is left is ours: profile lookup, input
   checks, the limits query, schema validation, the ledger insert, metrics. Target p50 < 5 ms.
2. A cache hit end to end: ``POST /v1/generate`` through the local HTTP server (uvicorn with
   ``create_app``) with a bearer token, on a cached profile. Target p50 < 10 ms.

Uses ``DATABASE_URL`` when set, else a throwaway embedded PostgreSQL. Prints figures, then one JSON
object on the last line.

    .venv/bin/python bench/generate.py [--calls 300]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/ itself must not shadow the standard library (bench/queue.py vs. queue)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["answer", "score"],
    "additionalProperties": False,
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def database(tmp: Path) -> tuple[str, object | None]:
    import psycopg

    from shared.db import embedded
    from shared.db.migrate import migrate

    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        migrate(url)
        return url, None
    server = embedded.start(tmp / "pgdata", cleanup_mode="delete")
    with psycopg.connect(str(server.get_uri("postgres")), autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench_generate")
    url = str(server.get_uri("bench_generate"))
    migrate(url)
    return url, server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    from tests.fakes.openai_chat import FakeOpenAI, Reply, write_config

    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    fake = FakeOpenAI(default=Reply.json({"answer": "ok", "score": 1}))
    fake.server.start()
    base = {"provider": "fake", "model": "gpt-fake", "output_schema": "answer.json", "retries": 1}
    cfg = write_config(
        tmp / "configs",
        providers={"fake": {"type": "openai", "base_url": fake.base_url, "api_key_env": "OPENAI_API_KEY"}},
        profiles={
            "uncached": {**base, "feature": "bench"},
            "cached": {**base, "cache": "shared", "cache_ttl_seconds": 3600, "feature": "bench"},
        },
        genlayers={
            "limits": {"user": {"tokens_per_day": 10**12}, "session": {"tokens_per_day": 10**12}},
            "prices": {"fake": {"*": {"prompt": 0.15, "completion": 0.6}}},
        },
        schemas={"answer.json": SCHEMA},
    )
    url, server = database(tmp)
    os.environ.update(
        {
            "HYBRID_CONFIG_DIR": str(cfg),
            "DATABASE_URL": url,
            "OPENAI_API_KEY": "sk-bench-fake-key-0000000000",
            "HYBRID_LOCAL_DIR": str(tmp / "local"),
            "HYBRID_ENV": "local",
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "4",
        }
    )
    from shared.auth.service import get_token_service
    from shared.auth.users import ensure_user
    from shared.db.connection import get_database
    from shared.genlayers.service import Context, Generator
    from shared.providers.resilience import FallbackChain

    with get_database().connection() as conn:
        user_id = ensure_user(conn, 4242)

    # --- 1. overhead per call, excluding provider time --------------------------------
    gen = Generator(chain=FallbackChain())
    ctx = Context(user_id=user_id, session_id="bench")
    overhead, total, provider = [], [], []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):  # EMF metric flushes
        for i in range(args.calls + 20):
            t0 = time.perf_counter()
            res = gen.generate("uncached", f"question {i}", ctx)
            dt = (time.perf_counter() - t0) * 1000
            p = sum(c.latency_ms for c in res.calls)
            if i >= 20:  # warm-up: imports, connections, compiled schemas
                total.append(dt)
                provider.append(p)
                overhead.append(dt - p)

    # --- 2. cache hit through the local HTTP server ----------------------------------
    import httpx

    from tests.fakes.live_app import live_app

    token, _ = get_token_service().issue(user_id=user_id, telegram_id=4242)
    body = {"profile": "cached", "input": "what is a d20?"}
    hits: list[float] = []
    auth = {"Authorization": f"Bearer {token}"}
    with (
        live_app() as base,
        httpx.Client(base_url=base, headers=auth) as c,
        contextlib.redirect_stdout(sink),
    ):
        first = c.post("/v1/generate", json=body)
        assert first.status_code == 200, first.text
        for i in range(args.calls + 20):
            t0 = time.perf_counter()
            r = c.post("/v1/generate", json=body)
            dt = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200 and r.json()["cached"] is True, r.text
            if i >= 20:
                hits.append(dt)
    provider_calls = len(fake.calls())
    fake.server.stop()
    get_database().close()
    if server is not None:
        server.cleanup()  # type: ignore[attr-defined]

    result = {
        "calls": args.calls,
        "overhead_ms_p50": round(statistics.median(overhead), 3),
        "overhead_ms_p95": round(pct(overhead, 0.95), 3),
        "provider_ms_p50": round(statistics.median(provider), 3),
        "uncached_total_ms_p50": round(statistics.median(total), 3),
        "cache_hit_http_ms_p50": round(statistics.median(hits), 3),
        "cache_hit_http_ms_p95": round(pct(hits, 0.95), 3),
        "provider_calls_during_cache_phase": provider_calls - (args.calls + 20) - 1,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "overhead_target_met": statistics.median(overhead) < 5.0,
        "cache_hit_target_met": statistics.median(hits) < 10.0,
    }
    print(
        f"stack overhead per call (excl. provider): p50 {result['overhead_ms_p50']} ms, "
        f"p95 {result['overhead_ms_p95']} ms  (target p50 < 5 ms)"
    )
    print(f"provider time (SDK + loopback HTTP to the instant fake): p50 {result['provider_ms_p50']} ms")
    print(
        f"cache hit, POST /v1/generate over HTTP: p50 {result['cache_hit_http_ms_p50']} ms, "
        f"p95 {result['cache_hit_http_ms_p95']} ms  (target p50 < 10 ms)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
