"""The reference pull worker (``hybrid worker --kind embed``) for Kaggle notebooks and home GPUs.

It claims a batch over ``GET /internal/workers/tasks``, runs each task with the gpu_handlers engine
(``gpu_handlers.embedding.engine.run_job``, imported only when the first task runs) or any
``module:function`` given with ``--executor``, heartbeats while a task runs, and posts the result.

On SIGTERM / SIGINT it stops claiming, lets the task in hand finish within ``grace_seconds`` (then
releases it if it could not), and releases every claimed task it has not started, so nothing waits
for a lease to run out.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.observability.logging import get_logger

Executor = Callable[[str, dict[str, Any]], Any]


def engine_executor(kind: str, payload: dict[str, Any]) -> Any:
    """Run a task on the GPU handler's engine (the same job contract as the RunPod handler)."""
    from gpu_handlers.embedding.engine import run_job  # heavy (torch): only in the worker process

    job = dict(payload) if "openai_route" in payload else {"task": kind, **payload}
    return run_job(job)


def load_executor(spec: str | None) -> Executor:
    """``module:function`` taking ``(kind, payload)``; default: the gpu_handlers engine."""
    if not spec:
        return engine_executor
    module, _, attr = spec.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise ValueError(f"{spec} is not callable")
    return fn


def _retryable(exc: BaseException) -> bool:
    """Bad input (the engine's JobInputError is a ValueError) will fail the same way again."""
    return not isinstance(exc, ValueError | TypeError)


@dataclass
class WorkerStats:
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    released: int = 0
    rejected: int = 0  # results the API refused (lease expired / conflict)
    errors: list[str] = field(default_factory=list)


class PullWorker:
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        kind: str,
        batch: int = 4,
        lease_seconds: int = 60,
        executor: Executor = engine_executor,
        client: httpx.Client | None = None,
        poll_interval: float = 2.0,
        grace_seconds: float = 20.0,
        name: str = "worker",
    ) -> None:
        self.kind, self.batch, self.lease_seconds = kind, batch, lease_seconds
        self.executor, self.poll_interval, self.grace_seconds = executor, poll_interval, grace_seconds
        self.name = name
        headers = {"Authorization": f"Bearer {token}"}
        if client is None:
            self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=30.0)
        else:
            self.client = client
            self.client.headers.update(headers)
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self.log = get_logger()

    # -- control ----------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, *, max_tasks: int | None = None, exit_when_idle: bool = False) -> WorkerStats:
        while not self.stopping:
            if max_tasks is not None and self.stats.completed + self.stats.failed >= max_tasks:
                break
            tasks = self._claim()
            if tasks is None:  # refused or unreachable: wait, then try again
                self._stop.wait(self.poll_interval)
                continue
            if not tasks:
                if exit_when_idle:
                    break
                self._stop.wait(self.poll_interval)
                continue
            self.stats.claimed += len(tasks)
            for i, task in enumerate(tasks):
                if self.stopping:
                    for rest in tasks[i:]:
                        self._release(rest)
                    break
                self._process(task)
        return self.stats

    def _claim(self) -> list[dict[str, Any]] | None:
        params: dict[str, str | int] = {
            "kind": self.kind,
            "limit": self.batch,
            "lease_seconds": self.lease_seconds,
        }
        try:
            resp = self.client.get("/internal/workers/tasks", params=params)
        except httpx.HTTPError as exc:
            self._note(f"claim: {type(exc).__name__}: {exc}")
            return None
        if resp.status_code == 429:
            wait = float(resp.headers.get("retry-after", self.poll_interval))
            self._stop.wait(min(wait, 60.0))
            return None
        if resp.status_code != 200:
            self._note(f"claim: HTTP {resp.status_code}: {resp.text[:200]}")
            if resp.status_code in (401, 403, 422):  # wrong token / kind: retrying cannot help
                self.stop()
            return None
        return list(resp.json()["tasks"])

    def _process(self, task: dict[str, Any]) -> None:
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self.executor(self.kind, task["payload"])
            except BaseException as exc:  # reported to the API, never lost
                outcome["error"] = exc

        runner = threading.Thread(target=work, name=f"task-{task['id']}", daemon=True)
        runner.start()
        beat_every = max(self.lease_seconds / 3, 0.2)
        last_beat = time.monotonic()
        stop_deadline: float | None = None
        while runner.is_alive():
            runner.join(timeout=0.05)
            if not runner.is_alive():
                break
            now = time.monotonic()
            if self.stopping and stop_deadline is None:
                stop_deadline = now + self.grace_seconds
            if stop_deadline is not None and now >= stop_deadline:
                self._release(task)  # could not finish in the grace period: hand it back
                return
            if now - last_beat >= beat_every:
                self._heartbeat(task)
                last_beat = now
        if "error" in outcome:
            exc = outcome["error"]
            body = {
                "lease_token": task["lease_token"],
                "error": f"{type(exc).__name__}: {exc}"[:4000] or "failed",
                "retryable": _retryable(exc),
            }
            self._post_result(task, body, failed=True)
        else:
            self._post_result(task, {"lease_token": task["lease_token"], "result": outcome.get("result")})

    def _heartbeat(self, task: dict[str, Any]) -> None:
        try:
            self.client.post(
                f"/internal/workers/tasks/{task['id']}/heartbeat",
                json={"lease_token": task["lease_token"], "lease_seconds": self.lease_seconds},
            )
        except httpx.HTTPError as exc:
            self._note(f"heartbeat {task['id']}: {exc}")

    def _post_result(self, task: dict[str, Any], body: dict[str, Any], *, failed: bool = False) -> None:
        for attempt in range(5):  # the network may blink; the API makes a repeat harmless
            try:
                resp = self.client.post(f"/internal/workers/tasks/{task['id']}/result", json=body)
            except httpx.HTTPError as exc:
                self._note(f"result {task['id']}: {exc}")
                time.sleep(min(2**attempt * 0.2, 5))
                continue
            if resp.status_code == 200:
                if failed:
                    self.stats.failed += 1
                else:
                    self.stats.completed += 1
                return
            if resp.status_code >= 500 or resp.status_code == 429:
                time.sleep(min(2**attempt * 0.2, 5))
                continue
            self.stats.rejected += 1
            self._note(f"result {task['id']} refused: HTTP {resp.status_code}: {resp.text[:200]}")
            return

    def _release(self, task: dict[str, Any]) -> None:
        try:
            resp = self.client.post(
                f"/internal/workers/tasks/{task['id']}/release", json={"lease_token": task["lease_token"]}
            )
            if resp.status_code == 200:
                self.stats.released += 1
        except httpx.HTTPError as exc:
            self._note(f"release {task['id']}: {exc}")

    def _note(self, message: str) -> None:
        self.stats.errors.append(message)
        del self.stats.errors[:-20]
        self.log.warning("pull worker", extra={"worker": self.name, "detail": message})
