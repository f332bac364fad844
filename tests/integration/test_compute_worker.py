"""The reference pull worker over real HTTP, its SIGTERM behaviour, and the compute CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from shared.cli.main import main as hybrid
from shared.compute import queue as q
from shared.compute import workers as w
from shared.compute.worker import PullWorker
from tests.fakes.compute_executors import echo
from tests.fakes.http import wait_until
from tests.fakes.live_app import live_app

ROOT = Path(__file__).resolve().parents[2]


def _conn(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, row_factory=dict_row)


@pytest.fixture()
def server(app_env: str) -> Iterator[str]:
    with _conn(app_env) as conn:
        conn.execute("TRUNCATE compute_tasks, compute_workers RESTART IDENTITY CASCADE")
    with live_app() as url:
        yield url


def _fill(url: str, m: int, **payload: Any) -> list[int]:
    with _conn(url) as conn:
        return [q.enqueue(conn, kind="classify", payload={"n": i, **payload}).id for i in range(m)]


def test_worker_threads_over_http_complete_every_task_once(server: str, app_env: str) -> None:
    ids = _fill(app_env, 120)
    with _conn(app_env) as conn:
        token = w.add_worker(conn, "pool", kinds=["classify"], rate_limit_per_minute=100_000)[1]
    workers = [
        PullWorker(
            base_url=server,
            token=token,
            kind="classify",
            batch=5,
            executor=echo,
            poll_interval=0.05,
            name=f"t{i}",
        )
        for i in range(6)
    ]
    threads = [threading.Thread(target=wk.run, kwargs={"exit_when_idle": True}) for wk in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(wk.stats.completed for wk in workers) == 120
    assert sum(wk.stats.rejected for wk in workers) == 0
    with _conn(app_env) as conn:
        rows = conn.execute("SELECT id, status, result FROM compute_tasks").fetchall()
    assert Counter(r["status"] for r in rows) == {"completed": 120}
    assert sorted(r["result"]["n"] for r in rows) == list(range(120))
    assert {r["id"] for r in rows} == set(ids)


def test_bad_input_is_reported_not_retried(server: str, app_env: str) -> None:
    (tid,) = _fill(app_env, 1, bad=True)
    with _conn(app_env) as conn:
        token = w.add_worker(conn, "one")[1]
    wk = PullWorker(base_url=server, token=token, kind="classify", executor=echo, poll_interval=0.05)
    stats = wk.run(exit_when_idle=True)
    assert stats.failed == 1
    with _conn(app_env) as conn:
        t = q.get_task(conn, tid)
    assert t is not None and t.status == "dead" and "bad input" in (t.error or "")


def test_sigterm_finishes_the_task_in_hand_and_releases_the_rest(server: str, app_env: str) -> None:
    ids = _fill(app_env, 3, sleep=1.5)
    with _conn(app_env) as conn:
        token = w.add_worker(conn, "kaggle")[1]
    argv = [str(Path(sys.executable).parent / "hybrid"), "worker", "--kind", "classify", "--url", server]
    argv += ["--batch", "3", "--lease-seconds", "30", "--poll-interval", "0.1"]
    argv += ["--executor", "tests.fakes.compute_executors:slow"]
    proc = subprocess.Popen(
        argv,
        env=os.environ | {"HYBRID_WORKER_TOKEN": token, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def claimed() -> bool:
            with _conn(app_env) as conn:
                row = conn.execute(
                    "SELECT count(*) AS n FROM compute_tasks WHERE status = 'processing'"
                ).fetchone()
            return bool(row and row["n"] == 3)

        assert wait_until(claimed, timeout=30, interval=0.05), (
            proc.stderr.read() if proc.poll() is not None else ""
        )
        time.sleep(0.3)  # the first task is running
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["completed"] == 1 and summary["released"] == 2
    with _conn(app_env) as conn:
        rows = {r["id"]: r for r in conn.execute("SELECT id, status, attempts FROM compute_tasks").fetchall()}
    assert rows[ids[0]]["status"] == "completed"
    assert [(rows[i]["status"], rows[i]["attempts"]) for i in ids[1:]] == [("pending", 0), ("pending", 0)]


# --- CLI -----------------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = hybrid(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_tasks_and_workers(app_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    with _conn(app_env) as conn:
        conn.execute("TRUNCATE compute_tasks, compute_workers RESTART IDENTITY CASCADE")
    code, out, _ = _run(
        capsys, "tasks", "enqueue", "--kind", "classify", "--payload", '{"text": "hi"}', "--key", "k-1"
    )
    first = json.loads(out)
    assert code == 0 and first["id"] and first["status"] == "pending" and first["kind"] == "classify"
    code, out, _ = _run(
        capsys, "tasks", "enqueue", "--kind", "classify", "--payload", '{"text": "other"}', "--key", "k-1"
    )
    assert code == 0 and json.loads(out)["id"] == first["id"]
    code, out, _ = _run(
        capsys, "tasks", "enqueue", "--kind", "score", "--payload", "{}", "--priority", "high"
    )
    assert code == 0 and json.loads(out)["priority"] == "high"

    code, _, err = _run(capsys, "tasks", "enqueue", "--kind", "nope", "--payload", "{}")
    assert code == 2 and "unknown task kind" in err
    code, _, err = _run(capsys, "tasks", "enqueue", "--kind", "classify", "--payload", "{not json")
    assert code == 2 and "not valid JSON" in err

    code, out, _ = _run(capsys, "tasks", "stats")
    stats = json.loads(out)
    assert code == 0 and stats["by_status"] == {"pending": 2} and stats["by_kind"]["score"] == {"pending": 1}
    assert stats["oldest_pending_age_seconds"] >= 0

    code, out, err = _run(capsys, "workers", "add", "gpu-box", "--kinds", "classify,score")
    token = out.strip()
    assert (
        code == 0 and token.startswith("hwk_") and len(out.strip().splitlines()) == 1 and "shown once" in err
    )
    with _conn(app_env) as conn:
        stored = conn.execute(
            "SELECT token_hash, kinds FROM compute_workers WHERE name = 'gpu-box'"
        ).fetchone()
    assert (
        stored is not None
        and stored["token_hash"] == w.hash_token(token)
        and stored["kinds"] == ["classify", "score"]
    )
    code, out, _ = _run(capsys, "workers", "list")
    assert code == 0 and token not in out and json.loads(out)[0]["name"] == "gpu-box"
    code, _, _ = _run(capsys, "workers", "revoke", "gpu-box")
    assert code == 0
    code, _, err = _run(capsys, "workers", "revoke", "gpu-box")
    assert code == 2

    with _conn(app_env) as conn:
        (t,) = q.claim(conn, kinds=["classify"], limit=1, lease_seconds=30, worker_id="x")
        q.fail(conn, t.id, t.lease_token or "", "boom", retryable=False)
    code, out, _ = _run(capsys, "tasks", "requeue", str(t.id))
    assert code == 0 and json.loads(out)["status"] == "pending"
    code, _, err = _run(capsys, "tasks", "requeue", str(t.id))
    assert code == 2 and "only dead" in err

    code, out, _ = _run(capsys, "drain", "--once", "--max-seconds", "10")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["depth"] == {"classify": 1, "score": 1}
    assert "embed" in summary["left_to_pull_workers"]
    assert not [e for e in summary["errors"] if e.startswith(("collect", "dispatch", "callbacks"))]


def test_reference_worker_runs_the_gpu_engine(
    server: str, app_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpu_handlers.embedding import engine
    from shared.compute.worker import engine_executor
    from tests.fakes.gpu_models import minilm_path

    monkeypatch.setenv("EMBED_MODEL", str(minilm_path()))
    monkeypatch.setenv("RERANK_MODEL", "none")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine.reset_engine()
    with _conn(app_env) as conn:
        good = q.enqueue(conn, kind="embed", payload={"texts": ["a red dragon", "a sword"]}).id
        bad = q.enqueue(conn, kind="embed", payload={"texts": []}).id
        token = w.add_worker(conn, "home-gpu", kinds=["embed"])[1]
    try:
        wk = PullWorker(
            base_url=server, token=token, kind="embed", executor=engine_executor, poll_interval=0.05
        )
        stats = wk.run(exit_when_idle=True)
    finally:
        engine.reset_engine()
    assert stats.completed == 1 and stats.failed == 1
    with _conn(app_env) as conn:
        done, dead = q.get_task(conn, good), q.get_task(conn, bad)
    assert done is not None and done.status == "completed"
    vectors = done.result["embeddings"]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4
    assert dead is not None and dead.status == "dead" and "texts" in (dead.error or "")
