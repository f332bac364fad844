"""The drain on real Postgres against a fake RunPod (/run, /status) and fake webhook receivers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from shared.compute import NonRetryable, register_executor
from shared.compute import queue as q
from shared.compute.callbacks import SIGNATURE_HEADER, verify_signature
from shared.compute.drain import run_tick
from shared.compute.kinds import unregister_executor
from shared.db.connection import Database
from tests.fakes.compute_env import use_logic_yaml
from tests.fakes.http import FakeServer, Fault, Request, Response
from tests.fakes.runpod_jobs import FakeRunPod
from tests.fakes.together import fake_vector, unit

LOGIC = """
providers:
  rp:
    type: runpod
    base_url: {rp}
    api_key_env: RUNPOD_API_KEY
    timeout_seconds: 5
    options: {{endpoint_id: ep-test}}
  rp_missing:
    type: runpod
    api_key_env: RUNPOD_API_KEY
    options: {{endpoint_id_env: HYBRID_TEST_NO_SUCH_ENDPOINT}}
compute:
  kinds:
    embed: {{route: runpod, runpod_provider: rp, batch_size: 4, max_attempts: 3}}
    rerank: {{route: runpod, runpod_provider: rp, batch_size: 4}}
    offline_embed: {{route: runpod, runpod_provider: rp_missing}}
    classify: {{route: pull}}
    echo: {{route: inline, batch_size: 5, lease_seconds: 30}}
  retry_backoff_base_seconds: 0
  retry_backoff_max_seconds: 0
  drain_runpod_lease_seconds: 60
"""


@pytest.fixture()
def rp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeRunPod]:
    fake = FakeRunPod(polls_before_done=1).start()
    monkeypatch.setenv("RUNPOD_API_KEY", "runpod-test-key")
    monkeypatch.setenv("COMPUTE_CALLBACK_SECRET", "cb-secret")
    use_logic_yaml(monkeypatch, tmp_path, LOGIC.format(rp=fake.base_url))
    yield fake
    fake.stop()
    from shared.config import store

    store.set_store(None)


@pytest.fixture()
def db(db_url: str) -> Iterator[Database]:
    with psycopg.connect(db_url) as conn:
        conn.execute("TRUNCATE compute_tasks, compute_runpod_jobs RESTART IDENTITY CASCADE")
    database = Database(db_url, pool_size=4)
    yield database
    database.close()


def enqueue(db: Database, kind: str, payload: dict[str, Any], **kw: Any) -> q.Task:
    with db.connection() as conn:
        return q.enqueue(conn, kind=kind, payload=payload, **kw)


def task(db: Database, task_id: int) -> q.Task:
    with db.connection() as conn:
        t = q.get_task(conn, task_id)
    assert t is not None
    return t


def test_runpod_kinds_are_batched_collected_later_and_split_back(db: Database, rp: FakeRunPod) -> None:
    texts = [["a"], ["b", "c"], ["d"], ["e", "f", "g"], ["h"], ["i", "j"]]
    embeds = [enqueue(db, "embed", {"texts": t}) for t in texts]
    pulled = enqueue(db, "classify", {"text": "left alone"})
    offline = enqueue(db, "offline_embed", {"texts": ["x"]})

    first = run_tick(db, max_seconds=20)
    assert first["runpod"]["dispatched_jobs"] == 2 and first["runpod"]["dispatched_tasks"] == 6
    runs = rp.server.calls("/v2/ep-test/run")
    assert [r.json()["input"]["texts"] for r in runs] == [
        ["a", "b", "c", "d", "e", "f", "g"],
        ["h", "i", "j"],
    ]
    assert all(task(db, t.id).status == "processing" for t in embeds)
    assert task(db, pulled.id).status == "pending" and task(db, offline.id).status == "pending"
    assert first["left_to_pull_workers"] == ["offline_embed"]

    second = run_tick(db, max_seconds=20)  # the jobs are still running: leases are kept
    assert second["runpod"]["completed"] == 0 and second["runpod"]["dispatched_jobs"] == 0
    third = run_tick(db, max_seconds=20)
    assert third["runpod"]["completed"] == 6 and third["runpod"]["collected_jobs"] == 2
    for t, words in zip(embeds, texts, strict=True):
        done = task(db, t.id)
        assert done.status == "completed" and done.attempts == 1
        assert done.result["embeddings"] == [unit(fake_vector(w)) for w in words]
        assert done.result["model"] == "BAAI/bge-m3"
    assert task(db, pulled.id).status == "pending"
    assert third["depth"] == {"classify": 1, "offline_embed": 1}
    assert third["oldest_pending_age_seconds"] >= 0


def test_failed_job_retries_and_bad_input_dies_at_dispatch(db: Database, rp: FakeRunPod) -> None:
    good = enqueue(db, "embed", {"texts": ["ok"]})
    bad = enqueue(db, "embed", {"texts": []})
    rp.fail_jobs = 1
    run_tick(db, max_seconds=20)
    assert task(db, bad.id).status == "dead" and "texts" in (task(db, bad.id).error or "")
    run_tick(db, max_seconds=20)
    summary = run_tick(db, max_seconds=20)  # collects FAILED, the task goes to failed (backoff 0)
    assert summary["runpod"]["failed"] == 1
    failed = task(db, good.id)
    assert failed.status in ("failed", "processing") and "CUDA out of memory" in (failed.error or "")
    for _ in range(4):
        run_tick(db, max_seconds=20)
    done = task(db, good.id)
    assert done.status == "completed" and done.attempts == 2


def test_runpod_down_gives_tasks_back(db: Database, rp: FakeRunPod) -> None:
    t = enqueue(db, "rerank", {"query": "q", "documents": ["q a", "b"]})
    rp.server.fail_always("/v2/ep-test/run", Fault(status=503))
    summary = run_tick(db, max_seconds=20)
    assert summary["runpod"]["errors"] == 1 and summary["runpod"]["dispatched_jobs"] == 0
    back = task(db, t.id)
    assert back.status == "pending" and back.attempts == 0
    rp.server.fail_always("/v2/ep-test/run", None)
    for _ in range(3):
        run_tick(db, max_seconds=20)
    done = task(db, t.id)
    assert done.status == "completed" and done.result["results"][0]["index"] == 0
    assert rp.server.calls("/v2/ep-test/run")[-1].json()["input"] == {
        "task": "rerank",
        "query": "q",
        "documents": ["q a", "b"],
    }


def test_overlapping_ticks_send_every_task_once(db: Database, rp: FakeRunPod) -> None:
    ids = [enqueue(db, "embed", {"texts": [f"t{i}"]}).id for i in range(40)]
    summaries: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: summaries.append(run_tick(db, max_seconds=20))) for _ in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    sent = Counter(x for r in rp.server.calls("/v2/ep-test/run") for x in r.json()["input"]["texts"])
    assert sorted(sent) == sorted(f"t{i}" for i in range(40)) and set(sent.values()) == {1}
    assert sum(s["runpod"]["dispatched_tasks"] for s in summaries) == 40
    for _ in range(2):
        threads = [
            threading.Thread(target=lambda: summaries.append(run_tick(db, max_seconds=20))) for _ in range(2)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    assert all(task(db, i).status == "completed" for i in ids)
    assert sum(s["runpod"]["completed"] for s in summaries) == 40  # each written once
    assert len(rp.server.calls("/v2/ep-test/run")) == 10


def test_inline_executors_and_the_tick_bound(db: Database, rp: FakeRunPod) -> None:
    def echo(payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("mode") == "bad":
            raise NonRetryable("this input can never work")
        if payload.get("mode") == "flaky":
            raise RuntimeError("try again")
        time.sleep(payload.get("sleep", 0))
        return {"echo": payload.get("x")}

    register_executor("echo", echo)
    try:
        ok = enqueue(db, "echo", {"x": 1})
        bad = enqueue(db, "echo", {"mode": "bad"})
        flaky = enqueue(db, "echo", {"mode": "flaky"}, max_attempts=2)
        summary = run_tick(db, max_seconds=20)
        assert summary["inline"]["echo"]["completed"] == 1
        assert task(db, ok.id).result == {"echo": 1}
        assert task(db, bad.id).status == "dead"
        assert task(db, flaky.id).status in ("failed", "dead")
        run_tick(db, max_seconds=20)
        assert task(db, flaky.id).status == "dead" and task(db, flaky.id).attempts == 2

        slow = [enqueue(db, "echo", {"x": i, "sleep": 0.2}).id for i in range(30)]
        started = time.monotonic()
        bounded = run_tick(db, max_seconds=3.0)  # 1 s of work after the safety margin
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, elapsed
        done = bounded["inline"]["echo"]["completed"]
        assert 2 <= done < 30
        statuses = Counter(task(db, i).status for i in slow)
        assert statuses["completed"] == done and statuses["pending"] == 30 - done  # nothing lost
    finally:
        unregister_executor("echo")


def test_completion_webhooks_are_signed_and_retried(db: Database, rp: FakeRunPod) -> None:
    receiver = FakeServer()
    got: list[Request] = []

    def hook(req: Request) -> Response:
        got.append(req)
        return Response(204, b"")

    receiver.route("POST", "/hook", hook)
    receiver.start()
    register_executor("echo", lambda p: {"echo": p["x"]})
    try:
        ok = enqueue(db, "echo", {"x": 7}, callback_url=f"{receiver.url}/hook")
        flaky = enqueue(db, "echo", {"x": 8}, callback_url=f"{receiver.url}/flaky")
        receiver.fail_always("/flaky", Fault(status=500))
        summary = run_tick(db, max_seconds=20)
        assert summary["callbacks"] == {"delivered": 1, "retrying": 1, "failed": 0}
        (req,) = got
        assert req.json()["id"] == ok.id and req.json()["result"] == {"echo": 7}
        assert req.json()["status"] == "completed"
        assert verify_signature(req.body, req.headers[SIGNATURE_HEADER], "cb-secret")
        assert not verify_signature(req.body + b" ", req.headers[SIGNATURE_HEADER], "cb-secret")
        assert not verify_signature(req.body, req.headers[SIGNATURE_HEADER], "other-secret")
        with psycopg.connect(db.url, row_factory=dict_row) as conn:
            row = conn.execute(
                "SELECT callback_status, callback_attempts, callback_next_at > now() AS later, "
                "callback_error "
                "FROM compute_tasks WHERE id = %s",
                (flaky.id,),
            ).fetchone()
        assert row == {
            "callback_status": "pending",
            "callback_attempts": 1,
            "later": True,
            "callback_error": "HTTP 500",
        }
        assert task(db, ok.id).callback_status == "delivered"
        again = run_tick(db, max_seconds=20)  # not due yet: backoff
        assert again["callbacks"]["retrying"] == 0 and len(receiver.calls("/flaky")) == 1
    finally:
        unregister_executor("echo")
        receiver.stop()


def test_a_job_stuck_in_runpod_is_abandoned_and_its_tasks_retried(db: Database, rp: FakeRunPod) -> None:
    rp.polls_before_done = 1000  # never finishes
    t = enqueue(db, "embed", {"texts": ["stuck"]})
    run_tick(db, max_seconds=20)
    assert task(db, t.id).status == "processing"
    with db.connection() as conn:
        conn.execute("UPDATE compute_runpod_jobs SET submitted_at = now() - interval '2 hours'")
    summary = run_tick(db, max_seconds=20)
    assert summary["runpod"]["failed"] == 1
    stuck = task(db, t.id)
    assert "still IN_PROGRESS" in (stuck.error or "") and stuck.attempts in (1, 2)
    assert len(rp.server.calls()) and any(r.path.startswith("/v2/ep-test/cancel/") for r in rp.server.calls())
    assert stuck.status in ("failed", "processing")  # retried (backoff 0): possibly re-dispatched already


def test_only_ticks_that_did_something_are_worth_a_log_line() -> None:
    from shared.compute.cli import did_work

    idle = {
        "expired": 0,
        "errors": [],
        "runpod": {"dispatched_jobs": 0, "completed": 0},
        "inline": {"media.tts": {"completed": 0, "failed": 0}},
        "callbacks": {"delivered": 0},
    }
    assert not did_work(idle)
    assert did_work({**idle, "inline": {"media.tts": {"completed": 1, "failed": 0}}})
    assert did_work({**idle, "runpod": {"dispatched_jobs": 2, "completed": 0}})
    assert did_work({**idle, "callbacks": {"delivered": 1}})
    assert did_work({**idle, "expired": 3})
