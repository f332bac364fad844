"""compute_tasks on real PostgreSQL: claim order, leases, results, retries, and concurrent workers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from shared.compute import queue as q
from shared.config.models import ComputeKind, ComputeSection

SECTION = ComputeSection(
    kinds={
        "classify": ComputeKind(route="pull", max_attempts=3, max_payload_bytes=1024),
        "score": ComputeKind(route="pull", max_attempts=2),
    },
    retry_backoff_base_seconds=0.0,
    retry_backoff_max_seconds=0.0,
)


@contextmanager
def tx(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:  # commits on success
        yield conn


def enqueue(url: str, **kw: Any) -> q.Task:
    kw.setdefault("kind", "classify")
    kw.setdefault("payload", {"text": "x"})
    with tx(url) as conn:
        return q.enqueue(conn, section=SECTION, **kw)


def claim(url: str, kind: str = "classify", limit: int = 10, lease: float = 30.0, worker: str = "w"):
    with tx(url) as conn:
        return q.claim(conn, kinds=[kind], limit=limit, lease_seconds=lease, worker_id=worker)


def row_snapshot(url: str) -> list[tuple[Any, ...]]:
    with tx(url) as conn:
        return [tuple(r.values()) for r in conn.execute("SELECT * FROM compute_tasks ORDER BY id").fetchall()]


@pytest.fixture()
def url(db_url: str) -> str:
    with tx(db_url) as conn:
        conn.execute("TRUNCATE compute_tasks RESTART IDENTITY CASCADE")
    return db_url


def test_enqueue_is_idempotent_by_key_and_validates(url: str) -> None:
    a = enqueue(url, payload={"text": "a"}, idempotency_key="k1")
    b = enqueue(url, payload={"text": "different"}, idempotency_key="k1")
    assert a.id == b.id and b.payload == {"text": "a"} and b.status == "pending"
    before = row_snapshot(url)
    with pytest.raises(q.UnknownKind):
        enqueue(url, kind="nope")
    with pytest.raises(q.PayloadTooLarge):
        enqueue(url, payload={"text": "x" * 2000})
    with pytest.raises(q.InvalidPayload):
        enqueue(url, priority="urgent")
    assert row_snapshot(url) == before


def test_claim_orders_by_priority_then_age_and_sets_a_lease(url: str) -> None:
    low1 = enqueue(url, payload={"n": 1})
    low2 = enqueue(url, payload={"n": 2})
    high = enqueue(url, payload={"n": 3}, priority="high")
    got = claim(url, limit=2, lease=30)
    assert [t.id for t in got] == [high.id, low1.id]
    assert all(t.status == "processing" and t.lease_token and t.attempts == 1 for t in got)
    assert got[0].lease_token != got[1].lease_token
    rest = claim(url, limit=10)
    assert [t.id for t in rest] == [low2.id]
    assert claim(url, limit=10) == []


def test_complete_is_idempotent_and_conflicts_on_a_different_result(url: str) -> None:
    enqueue(url)
    (t,) = claim(url)
    with tx(url) as conn:
        done = q.complete(conn, t.id, t.lease_token, {"label": "a", "score": 0.25})
    assert done.status == "completed" and done.result == {"label": "a", "score": 0.25}
    with tx(url) as conn:
        again = q.complete(conn, t.id, t.lease_token, {"label": "a", "score": 0.25})
    assert again.status == "completed" and again.finished_at == done.finished_at
    before = row_snapshot(url)
    with pytest.raises(q.ResultConflict), tx(url) as conn:
        q.complete(conn, t.id, t.lease_token, {"label": "b"})
    with pytest.raises(q.LeaseMismatch), tx(url) as conn:
        q.complete(conn, t.id, "00000000-0000-0000-0000-000000000000", {"label": "a", "score": 0.25})
    with pytest.raises(q.LeaseMismatch), tx(url) as conn:
        q.complete(conn, t.id, "not-a-token", {"label": "a"})
    with pytest.raises(q.TaskNotFound), tx(url) as conn:
        q.complete(conn, 999_999, t.lease_token, {})
    assert row_snapshot(url) == before


def test_late_result_after_expiry_is_rejected_and_the_task_redelivered(url: str) -> None:
    enqueue(url)
    (first,) = claim(url, lease=1, worker="slow")
    time.sleep(1.2)
    with pytest.raises(q.LeaseExpired), tx(url) as conn:
        q.complete(conn, first.id, first.lease_token, {"late": True})
    (second,) = claim(url, lease=30, worker="fast")  # the claim returns expired leases first
    assert second.id == first.id and second.attempts == 2 and second.worker_id == "fast"
    with pytest.raises(q.LeaseMismatch), tx(url) as conn:
        q.complete(conn, first.id, first.lease_token, {"late": True})
    with tx(url) as conn:
        assert q.complete(conn, second.id, second.lease_token, {"ok": 1}).result == {"ok": 1}


def test_heartbeat_extends_and_release_gives_back_without_counting(url: str) -> None:
    enqueue(url)
    (t,) = claim(url, lease=1)
    with tx(url) as conn:
        beat = q.heartbeat(conn, t.id, t.lease_token, 30)
    assert beat.lease_until is not None and t.lease_until is not None and beat.lease_until > t.lease_until
    time.sleep(1.1)  # the original lease would have run out; the extended one has not
    with tx(url) as conn:
        assert q.expire_leases(conn) == []
        released = q.release(conn, t.id, t.lease_token)
    assert released.status == "pending" and released.attempts == 0
    (again,) = claim(url)
    assert again.id == t.id and again.attempts == 1


def test_failure_backs_off_then_dies_and_requeue_revives(url: str) -> None:
    enqueue(url, kind="score")  # max_attempts 2
    (t,) = claim(url, kind="score")
    with tx(url) as conn:
        failed = q.fail(conn, t.id, t.lease_token, "GPU fell over", section=SECTION)
    assert failed.status == "failed" and failed.error == "GPU fell over"
    (t2,) = claim(url, kind="score")
    assert t2.attempts == 2
    with tx(url) as conn:
        dead = q.fail(conn, t2.id, t2.lease_token, "again", section=SECTION)
    assert dead.status == "dead" and dead.finished_at is not None
    assert claim(url, kind="score") == []
    with pytest.raises(q.InvalidState), tx(url) as conn:
        q.cancel(conn, t.id)
    with tx(url) as conn:
        back = q.requeue(conn, t.id)
    assert back.status == "pending" and back.attempts == 0
    with tx(url) as conn:
        assert q.cancel(conn, t.id).status == "cancelled"


def test_backoff_delays_the_retry(url: str) -> None:
    slow = ComputeSection(kinds=SECTION.kinds, retry_backoff_base_seconds=60, retry_backoff_max_seconds=60)
    enqueue(url)
    (t,) = claim(url)
    with tx(url) as conn:
        failed = q.fail(conn, t.id, t.lease_token, "later", section=slow)
    assert failed.not_before is not None and failed.not_before > failed.updated_at
    assert claim(url) == []  # not before its backoff
    with tx(url) as conn:
        nonretry = q.enqueue(conn, kind="classify", payload={}, section=SECTION)
    (n,) = claim(url)
    assert n.id == nonretry.id
    with tx(url) as conn:
        assert q.fail(conn, n.id, n.lease_token, "bad input", retryable=False, section=slow).status == "dead"


def test_stats_counts_by_status_and_kind(url: str) -> None:
    enqueue(url)
    enqueue(url)
    enqueue(url, kind="score")
    claim(url, limit=1)
    with tx(url) as conn:
        s = q.stats(conn)
    assert s["by_status"] == {"pending": 2, "processing": 1}
    assert s["by_kind"]["classify"] == {"pending": 1, "processing": 1}
    assert s["pending"] == 2 and s["oldest_pending_age_seconds"] >= 0


# --- concurrency ---------------------------------------------------------------------------------


def _drain_worker(url: str, name: str, batch: int) -> list[int]:
    done: list[int] = []
    idle = 0
    while idle < 3:
        with tx(url) as conn:
            tasks = q.claim(conn, kinds=["classify"], limit=batch, lease_seconds=30, worker_id=name)
        if not tasks:
            idle += 1
            time.sleep(0.02)
            continue
        idle = 0
        for t in tasks:
            with tx(url) as conn:
                q.complete(conn, t.id, t.lease_token, {"by": name, "n": t.payload["n"]})
            done.append(t.id)
    return done


def _process_worker(url: str, name: str, batch: int, out: Any) -> None:
    out.put(_drain_worker(url, name, batch))


def _fill(url: str, m: int) -> set[int]:
    with tx(url) as conn:
        return {q.enqueue(conn, kind="classify", payload={"n": i}, section=SECTION).id for i in range(m)}


def _assert_exactly_once(url: str, ids: set[int], completed: list[int]) -> None:
    counts = Counter(completed)
    assert set(counts) == ids, "a task was lost"
    assert max(counts.values()) == 1, "a task was completed twice"
    with tx(url) as conn:
        rows = conn.execute("SELECT status, count(*) AS n FROM compute_tasks GROUP BY status").fetchall()
    assert {r["status"]: r["n"] for r in rows} == {"completed": len(ids)}


def test_threads_complete_every_task_exactly_once(url: str) -> None:
    ids = _fill(url, 300)
    results: list[list[int]] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(_drain_worker(url, f"t{i}", 7))) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8
    _assert_exactly_once(url, ids, [i for r in results for i in r])
    assert sum(1 for r in results if r) >= 2  # the work really was shared


def test_processes_complete_every_task_exactly_once(url: str) -> None:
    ids = _fill(url, 300)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(url, f"p{i}", 5, out)) for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    _assert_exactly_once(url, ids, [i for r in results for i in r])


KILLED_WORKER = """
import sys, time, psycopg
from psycopg.rows import dict_row
from shared.compute import queue as q
with psycopg.connect(sys.argv[1], row_factory=dict_row) as conn:
    tasks = q.claim(conn, kinds=["classify"], limit=2, lease_seconds=1, worker_id="doomed")
print(",".join(str(t.id) for t in tasks), flush=True)
time.sleep(60)  # "processing" until killed
"""


def test_a_killed_worker_s_tasks_are_redelivered_after_lease_expiry(url: str) -> None:
    ids = _fill(url, 2)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, url], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        assert {int(x) for x in line.split(",")} == ids
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert claim(url, lease=30, worker="heir") == []  # still leased to the dead worker
    time.sleep(1.1)
    heirs = claim(url, lease=30, worker="heir")
    assert {t.id for t in heirs} == ids and all(t.attempts == 2 for t in heirs)
    for t in heirs:
        with tx(url) as conn:
            q.complete(conn, t.id, t.lease_token, {"ok": True})
    _assert_exactly_once(url, ids, [t.id for t in heirs])


def test_complete_many_in_one_statement_reports_each_item(url: str) -> None:
    for i in range(4):
        enqueue(url, payload={"n": i})
    a, b, c, d = claim(url, limit=4)
    with tx(url) as conn:
        q.complete(conn, d.id, d.lease_token, {"n": 3})
        out = q.complete_many(
            conn,
            [
                (a.id, a.lease_token, {"n": 0}),
                (b.id, "00000000-0000-4000-8000-000000000000", {"n": 1}),
                (c.id, "garbage", {"n": 2}),
                (d.id, d.lease_token, {"n": 3}),  # a repeat: idempotent
                (d.id, d.lease_token, {"n": 99}),  # a different result: conflict
            ],
        )
    assert out[0] is None and out[3] is None  # completed; a repeat with the same result is idempotent
    assert isinstance(out[1], q.LeaseMismatch) and isinstance(out[2], q.LeaseMismatch)
    assert isinstance(out[4], q.ResultConflict)
    with tx(url) as conn:
        first, second, fourth = (q.get_task(conn, t.id) for t in (a, b, d))
    assert first is not None and first.status == "completed" and first.result == {"n": 0}
    assert second is not None and second.status == "processing"
    assert fourth is not None and fourth.result == {"n": 3}


def test_claim_time_expiry_runs_at_most_once_a_second_unless_forced(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = enqueue(url)
    assert [t.id for t in claim(url, lease=0.2)] == [task.id]
    time.sleep(0.3)  # the lease has run out
    monkeypatch.setattr(q, "_last_expiry", time.monotonic())  # an expiry ran a moment ago
    assert claim(url) == []  # upkeep not due yet: the expired task waits for the next expiry
    with tx(url) as conn:
        forced = q.claim(conn, kinds=["classify"], limit=10, lease_seconds=30, worker_id="w2", expire=True)
    assert [t.id for t in forced] == [task.id]
    monkeypatch.setattr(q, "_last_expiry", time.monotonic() - q.EXPIRE_EVERY_SECONDS)
    time.sleep(0.01)
    assert q._expiry_due() and not q._expiry_due()  # due once, then not again within the interval


def test_claim_walks_the_claimable_index_instead_of_sorting_the_backlog(url: str) -> None:
    with tx(url) as conn:
        conn.execute(
            "INSERT INTO compute_tasks (kind, priority, payload, max_attempts) "
            "SELECT 'classify', 'low', '{}'::jsonb, 3 FROM generate_series(1, 5000)"
        )
        conn.execute("ANALYZE compute_tasks")
    with tx(url) as conn:
        params = {"kinds": ["classify", "score"], "limit": 10, "lease": 30, "worker": "w"}
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute("EXPLAIN " + q.CLAIM_SQL, params).fetchall())
        conn.rollback()
    assert "compute_tasks_claimable" in plan and "Seq Scan on compute_tasks" not in plan, plan
