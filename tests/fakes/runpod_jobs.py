"""A fake RunPod serverless endpoint: ``/v2/{endpoint}/run``, ``/status/{id}``, ``/runsync``, ``/cancel/{id}``
with RunPod's wire format (``{"id", "status", "output" | "error"}``), served by ``FakeServer``.

Jobs are computed by ``worker(input) -> output`` (default: the gpu_handlers embed/rerank contract with
deterministic vectors). A job stays ``IN_QUEUE`` / ``IN_PROGRESS`` for ``polls_before_done`` status
calls, so a collector must come back on a later tick. ``fail_jobs`` makes the next jobs end FAILED.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from tests.fakes.http import FakeServer, Request, Response
from tests.fakes.together import DIM, fake_vector, unit


def default_worker(job: dict[str, Any]) -> dict[str, Any]:
    task = job.get("task")
    if task == "embed":
        texts = job["texts"]
        return {
            "model": "BAAI/bge-m3",
            "dimension": DIM,
            "embeddings": [unit(fake_vector(t)) for t in texts],
            "truncated": [False] * len(texts),
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }
    if task == "rerank":
        docs = job["documents"]
        q = set(job["query"].lower().split())
        scores = [len(q & set(d.lower().split())) / (len(q) or 1) for d in docs]
        order = sorted(range(len(docs)), key=lambda i: scores[i], reverse=True)[
            : job.get("top_n") or len(docs)
        ]
        return {
            "model": "BAAI/bge-reranker-v2-m3",
            "results": [{"index": i, "score": scores[i]} for i in order],
        }
    raise ValueError(f"task: unknown task {task!r}")


class FakeRunPod:
    def __init__(
        self,
        endpoint_id: str = "ep-test",
        *,
        api_key: str = "runpod-test-key",
        worker: Callable[[dict[str, Any]], Any] = default_worker,
        polls_before_done: int = 1,
    ) -> None:
        self.endpoint_id, self.api_key, self.worker = endpoint_id, api_key, worker
        self.polls_before_done = polls_before_done
        self.jobs: dict[str, dict[str, Any]] = {}
        self.fail_jobs = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = FakeServer()
        base = f"/v2/{endpoint_id}"
        self.server.route("POST", f"{base}/run", self._run)
        self.server.route("POST", f"{base}/runsync", self._runsync)
        self.server.route("GET", f"{base}/status/*", self._status)
        self.server.route("POST", f"{base}/cancel/*", self._cancel)

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v2"

    def start(self) -> FakeRunPod:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def _denied(self, req: Request) -> Response | None:
        if req.headers.get("Authorization", req.headers.get("authorization")) != f"Bearer {self.api_key}":
            return Response(401, {"error": "Unauthorized"})
        return None

    def _execute(self, job_input: Any) -> tuple[str, Any, Any]:
        with self._lock:
            if self.fail_jobs > 0:
                self.fail_jobs -= 1
                return "FAILED", None, '{"error_type": "RuntimeError", "error_message": "CUDA out of memory"}'
        try:
            return "COMPLETED", self.worker(job_input), None
        except Exception as exc:
            return "FAILED", None, f'{{"error_type": "JobInputError", "error_message": "{exc}"}}'

    def _run(self, req: Request) -> Response:
        denied = self._denied(req)
        if denied:
            return denied
        body = req.json()
        job_id = f"job-{next(self._ids)}"
        status, output, error = self._execute(body.get("input"))
        with self._lock:
            self.jobs[job_id] = {
                "input": body.get("input"),
                "final": status,
                "output": output,
                "error": error,
                "polls": 0,
            }
        return Response(200, {"id": job_id, "status": "IN_QUEUE"})

    def _runsync(self, req: Request) -> Response:
        denied = self._denied(req)
        if denied:
            return denied
        status, output, error = self._execute(req.json().get("input"))
        body: dict[str, Any] = {"id": f"sync-{next(self._ids)}", "status": status}
        body["output" if status == "COMPLETED" else "error"] = output if status == "COMPLETED" else error
        return Response(200, body)

    def _status(self, req: Request) -> Response:
        denied = self._denied(req)
        if denied:
            return denied
        job_id = req.path.rsplit("/", 1)[-1]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return Response(404, {"error": "job not found"})
            job["polls"] += 1
            if job["polls"] <= self.polls_before_done:
                return Response(200, {"id": job_id, "status": "IN_PROGRESS"})
            body: dict[str, Any] = {"id": job_id, "status": job["final"]}
            if job["final"] == "COMPLETED":
                body["output"] = job["output"]
            else:
                body["error"] = job["error"]
            return Response(200, body)

    def _cancel(self, req: Request) -> Response:
        job_id = req.path.rsplit("/", 1)[-1]
        with self._lock:
            if job_id in self.jobs:
                self.jobs[job_id]["final"] = "CANCELLED"
        return Response(200, {"id": job_id, "status": "CANCELLED"})
