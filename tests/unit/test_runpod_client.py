"""RunPodClient and the RunPod adapters against a fake of RunPod's REST API (real HTTP on 127.0.0.1).

The fake speaks RunPod's wire format (``/{endpoint}/runsync``, ``/run``, ``GET /status/{id}``,
``/cancel/{id}``, bearer key); faults check timeouts, error classification and FAILED jobs. The same
client runs against the runpod SDK's own local API server in tests/integration/test_runpod_handler.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.config.models import ProviderSettings
from shared.providers import factory
from shared.providers.embed_runpod import RunPodEmbedder, RunPodEmbeddingError
from shared.providers.embeddings import EmbeddingError
from shared.providers.rerank import RerankError
from shared.providers.rerank_runpod import RunPodReranker, RunPodRerankError
from shared.providers.resilience import FailureKind, classify
from shared.providers.runpod_client import RunPodClient, RunPodJob, RunPodJobFailed, RunPodTimeout
from tests.fakes.http import FakeServer, Fault, Request, Response

EP = "ep123"
KEY = "rpa_TESTKEY0123456789abcdef"


class FakeRunPod:
    """Jobs answer from ``outputs`` (a list consumed in order); ``pending`` polls before completion."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.pending_polls = 0
        self.outcome: dict[str, Any] = {"status": "COMPLETED", "output": {"ok": True}}
        self.jobs: dict[str, int] = {}
        server.route("POST", f"/{EP}/runsync", self._runsync)
        server.route("POST", f"/{EP}/run", self._run)
        server.route("GET", f"/{EP}/status/*", self._status)
        server.route("POST", f"/{EP}/cancel/*", self._cancel)

    def _runsync(self, req: Request) -> Response:
        job_id = f"sync-{len(self.jobs)}"
        self.jobs[job_id] = self.pending_polls
        if self.pending_polls:
            return Response(200, {"id": job_id, "status": "IN_PROGRESS"})
        return Response(200, {"id": job_id, **self.outcome})

    def _run(self, req: Request) -> Response:
        job_id = f"async-{len(self.jobs)}"
        self.jobs[job_id] = self.pending_polls
        return Response(200, {"id": job_id, "status": "IN_QUEUE"})

    def _status(self, req: Request) -> Response:
        job_id = req.path.rsplit("/", 1)[-1]
        if job_id not in self.jobs:
            return Response(404, {"error": "job not found"})
        if self.jobs[job_id] > 0:
            self.jobs[job_id] -= 1
            return Response(200, {"id": job_id, "status": "IN_PROGRESS"})
        return Response(200, {"id": job_id, **self.outcome})

    def _cancel(self, req: Request) -> Response:
        return Response(200, {"id": req.path.rsplit("/", 1)[-1], "status": "CANCELLED"})


@pytest.fixture()
def rp() -> Iterator[FakeRunPod]:
    with FakeServer() as server:
        yield FakeRunPod(server)


def client(rp: FakeRunPod, **kw: Any) -> RunPodClient:
    return RunPodClient(EP, api_key=KEY, base_url=rp.server.url, poll_interval=0.02, **kw)


def test_runsync_returns_output_and_speaks_runpod_wire_format(rp: FakeRunPod) -> None:
    c = client(rp)
    assert c.runsync({"task": "embed", "texts": ["a"]}) == {"ok": True}
    [call] = rp.server.calls(f"/{EP}/runsync")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.json() == {"input": {"task": "embed", "texts": ["a"]}}
    assert KEY not in repr(c) and EP in repr(c)


def test_runsync_failed_job_raises_with_the_workers_message(rp: FakeRunPod) -> None:
    sdk_error = json.dumps({"error_type": "<class 'ValueError'>", "error_message": "texts[2]: empty string"})
    rp.outcome = {"status": "FAILED", "error": sdk_error}
    with pytest.raises(RunPodJobFailed, match=r"FAILED: texts\[2\]: empty string") as info:
        client(rp).runsync({"task": "embed"})
    assert info.value.message == "texts[2]: empty string"
    rp.outcome = {"status": "FAILED", "error": "query: required for task rerank"}
    with pytest.raises(RunPodJobFailed, match="query: required"):
        client(rp).runsync({"task": "rerank"})


def test_runsync_polls_status_when_the_job_outlives_the_sync_wait(rp: FakeRunPod) -> None:
    rp.pending_polls = 3
    assert client(rp).runsync({"x": 1}, timeout=5) == {"ok": True}
    assert len(rp.server.calls()) == 1 + 4  # runsync, 3 x IN_PROGRESS, COMPLETED


def test_runsync_honours_the_budget_while_pending(rp: FakeRunPod) -> None:
    rp.pending_polls = 10_000
    started = time.monotonic()
    with pytest.raises(RunPodTimeout):
        client(rp).runsync({"x": 1}, timeout=0.3)
    assert time.monotonic() - started < 1.0


def test_runsync_honours_the_budget_on_a_hanging_server(rp: FakeRunPod) -> None:
    rp.server.fail_next(f"/{EP}/runsync", Fault(delay=3))
    started = time.monotonic()
    with pytest.raises(RunPodTimeout) as info:
        client(rp, timeout=30).runsync({"x": 1}, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert classify("runpod", info.value).kind is FailureKind.TRANSIENT


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, FailureKind.TRANSIENT),
        (503, FailureKind.TRANSIENT),
        (429, FailureKind.RATE_LIMITED),
        (401, FailureKind.AUTH),
        (400, FailureKind.CLIENT),
    ],
)
def test_http_errors_keep_their_status_for_classify(rp: FakeRunPod, status: int, kind: FailureKind) -> None:
    rp.server.fail_next(f"/{EP}/runsync", Fault(status=status, headers={"retry-after": "7"}))
    with pytest.raises(httpx.HTTPStatusError) as info:
        client(rp).runsync({"x": 1})
    assert info.value.response.status_code == status
    err = classify("runpod", info.value)
    assert err.kind is kind and err.status == status
    if status == 429:
        assert err.retry_after == 7


def test_run_status_wait_and_cancel(rp: FakeRunPod) -> None:
    c = client(rp)
    rp.pending_polls = 2
    job_id = c.run({"task": "embed"}, webhook="https://example.invalid/hook")
    assert rp.server.calls(f"/{EP}/run")[0].json()["webhook"] == "https://example.invalid/hook"
    first = c.status(job_id)
    assert first == RunPodJob(job_id, "IN_PROGRESS") and not first.done
    assert c.wait(job_id, timeout=5) == {"ok": True}
    c.cancel(job_id)
    assert rp.server.calls(f"/{EP}/cancel/{job_id}")[0].method == "POST"
    with pytest.raises(httpx.HTTPStatusError) as info:
        c.status("missing")
    assert info.value.response.status_code == 404


def test_status_falls_back_to_post_for_the_sdk_dev_server() -> None:
    with FakeServer() as server:
        server.route(
            "POST", "/status/*", lambda r: Response(200, {"id": "j1", "status": "COMPLETED", "output": 1})
        )
        server.route("GET", "/status/*", lambda r: Response(405, {"detail": "Method Not Allowed"}))
        c = RunPodClient("", base_url=server.url)
        assert c.status("j1").output == 1 and c.status("j1").status == "COMPLETED"
        assert [r.method for r in server.calls()] == ["GET", "POST", "POST"]
        assert "Authorization" not in server.calls()[0].headers


def test_base_url_forms() -> None:
    assert RunPodClient("abc").endpoint_url == "https://api.runpod.ai/v2/abc"
    assert RunPodClient("abc", base_url="http://h/v2/{endpoint_id}/").endpoint_url == "http://h/v2/abc"
    assert RunPodClient("", base_url="http://127.0.0.1:9/").endpoint_url == "http://127.0.0.1:9"


# ------------------------------------------------------------------ adapters
def embed_output(n: int, model: str = "fake/three-d") -> dict[str, Any]:
    return {"model": model, "dimension": 3, "embeddings": [[3.0, 4.0, 0.0]] * n, "truncated": [False] * n}


def test_embedder_batches_normalises_and_checks_the_model(rp: FakeRunPod) -> None:
    e = RunPodEmbedder(
        base_url=rp.server.url,
        api_key=KEY,
        model="fake/three-d",
        options={"endpoint_id": EP, "batch_size": 2},
    )
    rp.outcome = {"status": "COMPLETED", "output": embed_output(2)}
    rp.server.route(
        "POST",
        f"/{EP}/runsync",
        lambda r: Response(
            200, {"id": "s", "status": "COMPLETED", "output": embed_output(len(r.json()["input"]["texts"]))}
        ),
    )
    assert e.embed(["a", "b", "c"]) == [[0.6, 0.8, 0.0]] * 3
    assert [len(c.json()["input"]["texts"]) for c in rp.server.calls(f"/{EP}/runsync")] == [2, 1]
    assert e.dimension == 3 and e.model == "fake/three-d"
    other = RunPodEmbedder(
        base_url=rp.server.url, api_key=KEY, model="other/model", options={"endpoint_id": EP}
    )
    with pytest.raises(RunPodEmbeddingError, match="serves 'fake/three-d'"):
        other.embed(["a"])


def test_embedder_errors_classify(rp: FakeRunPod) -> None:
    e = RunPodEmbedder(base_url=rp.server.url, api_key=KEY, options={"endpoint_id": EP})
    for status, kind in (
        (503, FailureKind.TRANSIENT),
        (429, FailureKind.RATE_LIMITED),
        (401, FailureKind.AUTH),
    ):
        rp.server.fail_next(f"/{EP}/runsync", Fault(status=status))
        with pytest.raises(EmbeddingError) as info:
            e.embed(["a"])
        assert classify("runpod_embed", info.value).kind is kind
    rp.outcome = {"status": "FAILED", "error": json.dumps({"error_message": "texts[0]: empty string"})}
    with pytest.raises(EmbeddingError, match=r"FAILED: texts\[0\]: empty string"):
        e.embed([""])
    rp.server.fail_next(f"/{EP}/runsync", Fault(delay=2))
    started = time.monotonic()
    with pytest.raises(EmbeddingError, match="timed out"):
        e.embed(["a"], timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_reranker_parses_and_validates(rp: FakeRunPod) -> None:
    r = RunPodReranker(base_url=rp.server.url, api_key=KEY, options={"endpoint_id": EP})
    results = [{"index": 1, "score": 0.9}, {"index": 0, "score": 0.2}]
    rp.outcome = {"status": "COMPLETED", "output": {"results": results}}
    got = r.rerank("q", ["a", "b"])
    assert [(x.index, x.score) for x in got] == [(1, 0.9), (0, 0.2)]
    assert rp.server.calls(f"/{EP}/runsync")[0].json()["input"] == {
        "task": "rerank",
        "query": "q",
        "documents": ["a", "b"],
    }
    rp.outcome = {"status": "COMPLETED", "output": {"results": [{"index": 5, "score": 1}]}}
    with pytest.raises(RerankError, match="out of range"):
        r.rerank("q", ["a", "b"], top_n=1)
    rp.server.fail_next(f"/{EP}/runsync", Fault(status=500))
    with pytest.raises(RunPodRerankError) as info:
        r.rerank("q", ["a"])
    assert info.value.status_code == 500 and classify("x", info.value).kind is FailureKind.TRANSIENT
    assert r.rerank("q", []) == []


def test_missing_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_EMBED_ENDPOINT_ID", raising=False)
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    with pytest.raises(EmbeddingError, match="RUNPOD_EMBED_ENDPOINT_ID is not set"):
        RunPodEmbedder()
    monkeypatch.setenv("RUNPOD_EMBED_ENDPOINT_ID", "abc")
    with pytest.raises(RerankError, match="RUNPOD_API_KEY is not set"):
        RunPodReranker()
    monkeypatch.setenv("MY_KEY", KEY)
    settings = ProviderSettings(
        type="runpod",
        api_key_env="MY_KEY",
        timeout_seconds=3,
        options={"endpoint_id_env": "RUNPOD_EMBED_ENDPOINT_ID"},
    )
    built = RunPodEmbedder.from_settings("runpod_embed", settings)
    assert built.client.endpoint_url == "https://api.runpod.ai/v2/abc" and built.timeout_seconds == 3
    assert RunPodReranker.from_settings("runpod_embed", settings).model == "BAAI/bge-reranker-v2-m3"


def test_factory_knows_the_runpod_type() -> None:
    assert factory._load_class(factory.EMBEDDER_TYPES["runpod"]) is RunPodEmbedder
    assert factory._load_class(factory.RERANKER_TYPES["runpod"]) is RunPodReranker


def test_factory_builds_runpod_embed_from_logic_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_EMBED_ENDPOINT_ID", "ep-from-env")
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    factory.clear_cache()
    try:
        embedder = factory.build_embedder("runpod_embed")
        reranker = factory.build_reranker("runpod_embed")
    finally:
        factory.clear_cache()
    assert isinstance(embedder, RunPodEmbedder) and isinstance(reranker, RunPodReranker)
    assert embedder.client.endpoint_url == "https://api.runpod.ai/v2/ep-from-env"
    assert embedder.model == "BAAI/bge-m3" and embedder.dimension == 1024
    assert KEY not in repr(embedder) and KEY not in repr(reranker)
