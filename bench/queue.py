"""Queue throughput and online-router overhead, in a scratch embedded PostgreSQL.

    .venv/bin/python bench/queue.py                    # 3000 tasks per run, batch 10, 1/4/16 workers
    .venv/bin/python bench/queue.py --tasks 1000       # quicker

Claim + complete throughput (tasks/s) with 1, 4 and 16 concurrent workers:
  * ``sql``      — ``shared.compute.queue.claim`` + ``complete_many`` (one autocommit connection per worker
                   thread: two round trips and two commits per batch, like PgQueuer's);
  * ``http``     — the worker API (``GET /internal/workers/tasks`` + ``POST .../result`` per task) served by
                   uvicorn in a subprocess, one httpx client per worker thread;
  * ``pgqueuer`` — PgQueuer's ``dequeue`` + ``log_jobs`` (asyncio, one psycopg connection per worker), on
                   the same database with the same batch size (median of ``--repeat`` interleaved runs).
Online router overhead: p50 of ``OnlineRouter.run("embed")`` minus p50 of calling the same adapter
directly, against a fake ``intelligence_api`` on 127.0.0.1, and against a no-op in-process provider.

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import sys

# This file is named like the standard library's ``queue``: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0]) and not p.endswith("/bench")]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.compute import queue  # noqa: E402
from shared.db import embedded  # noqa: E402
from shared.db.migrate import migrate  # noqa: E402

KIND = "classify"
FILL_SQL = """
INSERT INTO compute_tasks (kind, payload)
SELECT %s, jsonb_build_object('n', g) FROM generate_series(1, %s) AS g
"""


def fill(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE compute_tasks RESTART IDENTITY CASCADE")
        conn.execute(FILL_SQL, (KIND, n))
        conn.execute("ANALYZE compute_tasks")


def run_threads(workers: int, target: Callable[[int], int]) -> tuple[int, float]:
    done = [0] * workers
    barrier = threading.Barrier(workers + 1)

    def body(i: int) -> None:
        barrier.wait()
        done[i] = target(i)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return sum(done), time.perf_counter() - started


# --- our queue through SQL ----------------------------------------------------------------------
def sql_path(url: str, workers: int, batch: int) -> tuple[int, float]:
    conns = [psycopg.connect(url, autocommit=True, row_factory=dict_row) for _ in range(workers)]

    def work(i: int) -> int:
        conn, n = conns[i], 0
        while True:  # autocommit: every statement is its own transaction, as PgQueuer's are
            tasks = queue.claim(conn, kinds=[KIND], limit=batch, lease_seconds=60, worker_id=f"w{i}")
            if not tasks:
                return n
            outcomes = queue.complete_many(conn, [(t.id, t.lease_token or "", {"ok": True}) for t in tasks])
            assert all(o is None for o in outcomes), outcomes
            n += len(tasks)

    try:
        return run_threads(workers, work)
    finally:
        for c in conns:
            c.close()


# --- our queue through the HTTP API -------------------------------------------------------------
def http_path(base: str, token: str, workers: int, batch: int) -> tuple[int, float]:
    clients = [
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        for _ in range(workers)
    ]

    def work(i: int) -> int:
        client, n = clients[i], 0
        while True:
            resp = client.get(
                "/internal/workers/tasks", params={"kind": KIND, "limit": batch, "lease_seconds": 60}
            )
            resp.raise_for_status()
            tasks = resp.json()["tasks"]
            if not tasks:
                return n
            for t in tasks:
                r = client.post(
                    f"/internal/workers/tasks/{t['id']}/result",
                    json={"lease_token": t["lease_token"], "result": {"ok": True}},
                )
                r.raise_for_status()
            n += len(tasks)

    try:
        return run_threads(workers, work)
    finally:
        for c in clients:
            c.close()


def start_api(url: str, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | {"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": "20"}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "shared.api.app:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(
        "the API server did not start: " + (proc.stderr.read().decode() if proc.stderr else "")
    )


# --- PgQueuer -----------------------------------------------------------------------------------
async def _pgq_install(url: str) -> None:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        q = Queries(PsycopgDriver(conn))
        if not await q.schema_is_installed():
            await q.install()
    finally:
        await conn.close()


async def _pgq_fill(url: str, n: int) -> None:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import Queries

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        q = Queries(PsycopgDriver(conn))
        await q.clear_queue()
        await q.clear_queue_log()
        for start in range(0, n, 1000):
            size = min(1000, n - start)
            await q.enqueue(
                [KIND] * size, [json.dumps({"n": start + i}).encode() for i in range(size)], [0] * size
            )
    finally:
        await conn.close()


async def _pgq_run(url: str, workers: int, batch: int) -> tuple[int, float]:
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.queries import EntrypointExecutionParameter, Queries

    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(workers)]
    entry = {KIND: EntrypointExecutionParameter(concurrency_limit=0)}

    async def work(conn: psycopg.AsyncConnection[Any]) -> int:
        q = Queries(PsycopgDriver(conn))
        qm_id: Any = uuid.uuid4()
        n = 0
        while True:
            jobs = await q.dequeue(
                batch_size=batch,
                entrypoints=entry,  # type: ignore[arg-type]
                queue_manager_id=qm_id,
                global_concurrency_limit=None,
                heartbeat_timeout=timedelta(seconds=60),
            )
            if not jobs:
                return n
            await q.log_jobs([(job, "successful", None) for job in jobs])
            n += len(jobs)

    try:
        started = time.perf_counter()
        done = await asyncio.gather(*(work(c) for c in conns))
        return sum(done), time.perf_counter() - started
    finally:
        for c in conns:
            await c.close()


def pgq_path(url: str, n: int, workers: int, batch: int) -> tuple[int, float]:
    asyncio.run(_pgq_fill(url, n))
    return asyncio.run(_pgq_run(url, workers, batch))


# --- online router overhead ---------------------------------------------------------------------
def router_overhead(calls: int) -> dict[str, float]:
    from tests.fakes.together import intelligence_server

    fake = intelligence_server(api_key="bench-key")
    # http.server writes headers and body in two sends: without TCP_NODELAY, Nagle + delayed ACK add 40 ms
    fake.httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    fake.start()
    folder = Path(tempfile.mkdtemp(prefix="hybrid-bench-cfg-"))
    (folder / "profiles.yaml").write_text("profiles: {}\n")
    (folder / "logic.yaml").write_text(
        "providers:\n"
        f"  intel: {{type: intelligence_api, base_url: '{fake.url}/v1', api_key_env: BENCH_INTEL_KEY,"
        " model: m}\n"
        "compute:\n  online:\n    embed: {providers: [intel], budget_seconds: 2.0}\n"
    )
    os.environ["HYBRID_CONFIG_DIR"] = str(folder)
    os.environ["BENCH_INTEL_KEY"] = "bench-key"
    from shared.compute.online import OnlineRouter
    from shared.config import store
    from shared.providers.factory import build_embedder
    from shared.providers.resilience import FallbackChain

    store.set_store(None)
    router = OnlineRouter(FallbackChain())
    embedder = build_embedder("intel")
    payload = {"texts": ["a short query about dragons"]}
    noop_router = OnlineRouter(FallbackChain(), calls={"embed": lambda name, p, t: {"embeddings": [[1.0]]}})

    def noop_direct() -> dict[str, Any]:
        return {"embeddings": [[1.0]]}

    direct_ms, routed_ms, noop_direct_ms, noop_routed_ms = [], [], [], []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):  # Powertools flushes EMF lines to stdout every 100 metrics
        for _ in range(50):  # warm up connections and caches
            router.run("embed", payload)
            embedder.embed(payload["texts"])
        for _ in range(calls):
            t0 = time.perf_counter()
            embedder.embed(payload["texts"], timeout=2.0)  # type: ignore[call-arg]
            t1 = time.perf_counter()
            router.run("embed", payload)
            t2 = time.perf_counter()
            noop_direct()
            t3 = time.perf_counter()
            noop_router.run("embed", payload)
            t4 = time.perf_counter()
            direct_ms.append((t1 - t0) * 1000)
            routed_ms.append((t2 - t1) * 1000)
            noop_direct_ms.append((t3 - t2) * 1000)
            noop_routed_ms.append((t4 - t3) * 1000)
            sink.seek(0)
            sink.truncate()
    fake.stop()
    p50 = statistics.median
    return {
        "direct_p50_ms": round(p50(direct_ms), 3),
        "routed_p50_ms": round(p50(routed_ms), 3),
        "overhead_p50_ms": round(p50(routed_ms) - p50(direct_ms), 3),
        "noop_direct_p50_ms": round(p50(noop_direct_ms), 4),
        "noop_routed_p50_ms": round(p50(noop_routed_ms), 4),
        "overhead_noop_p50_ms": round(p50(noop_routed_ms) - p50(noop_direct_ms), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument(
        "--http-tasks", type=int, default=1000, help="tasks per HTTP run (one request per result)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per SQL / PgQueuer figure (median)")
    parser.add_argument("--router-calls", type=int, default=2000)
    parser.add_argument("--verbose", action="store_true", help="print every run")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]

    work = Path(tempfile.mkdtemp(prefix="hybrid-bench-queue-"))
    server = embedded.start(work / "pgdata", cleanup_mode="delete")
    results: dict[str, Any] = {
        "tasks_per_run": args.tasks,
        "http_tasks_per_run": args.http_tasks,
        "batch": args.batch,
        "repeat": args.repeat,
        "throughput": {},
    }
    api = None
    try:
        url = str(server.get_uri("postgres"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_queue")
        url = str(server.get_uri("bench_queue"))
        migrate(url)
        asyncio.run(_pgq_install(url))  # PgQueuer's tables live in the same database
        from shared.compute.workers import add_worker

        with psycopg.connect(url) as conn:
            _, token = add_worker(conn, "bench", rate_limit_per_minute=10_000_000)
        port = 18000 + os.getpid() % 1000
        api = start_api(url, port)

        for workers in counts:
            rates: dict[str, list[float]] = {"sql": [], "http": [], "pgqueuer": []}
            for rep in range(args.repeat):  # interleaved, alternating order: drift hits both alike
                order = ["sql", "pgqueuer"] if rep % 2 == 0 else ["pgqueuer", "sql"]
                for path in order:
                    if path == "sql":
                        fill(url, args.tasks)
                        done, secs = sql_path(url, workers, args.batch)
                    else:
                        done, secs = pgq_path(url, args.tasks, workers, args.batch)
                    assert done == args.tasks, (path, done, args.tasks)
                    rates[path].append(done / secs)
                    if args.verbose:
                        print(f"  {workers} {path} {done / secs:.1f}/s", flush=True)
            fill(url, args.http_tasks)
            done, secs = http_path(f"http://127.0.0.1:{port}", token, workers, args.batch)
            assert done == args.http_tasks, (done, args.http_tasks)
            rates["http"].append(done / secs)
            row = {k: round(statistics.median(v), 1) for k, v in rates.items()}
            results["throughput"][str(workers)] = row
            print(
                f"{workers:>2} workers  sql {row['sql']:>8.1f}/s  http {row['http']:>7.1f}/s  "
                f"pgqueuer {row['pgqueuer']:>8.1f}/s",
                flush=True,
            )
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        server.cleanup()

    results["router"] = router_overhead(args.router_calls)
    r = results["router"]
    print(
        f"router: direct p50 {r['direct_p50_ms']} ms, routed p50 {r['routed_p50_ms']} ms, "
        f"overhead {r['overhead_p50_ms']} ms (no-op provider: {r['overhead_noop_p50_ms']} ms)",
        flush=True,
    )
    sql_vs_pgq = {w: v["sql"] / v["pgqueuer"] for w, v in results["throughput"].items()}
    results["sql_over_pgqueuer"] = {w: round(x, 2) for w, x in sql_vs_pgq.items()}
    results["targets"] = {
        "sql_at_least_pgqueuer": all(x >= 1.0 for x in sql_vs_pgq.values()),
        "router_overhead_under_2ms": r["overhead_p50_ms"] < 2.0,
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
