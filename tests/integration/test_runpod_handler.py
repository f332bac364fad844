"""The real RunPod handler run through the runpod SDK's own local modes, as subprocesses.

* ``--test_input``: one job, the way ``python gpu_handlers/embedding/handler.py --test_input ...`` runs.
* ``--rp_serve_api --rp_api_host 127.0.0.1``: the SDK's local API server (``/runsync``, ``/run``,
  ``/status/{id}``), started once for this module; our RunPodClient and the RunPod embedder/reranker
  adapters talk to it over HTTP, and the openai client talks to it through a small fake of RunPod's
  ``/openai/v1`` gateway (the SDK's local server has no openai route).

Models: the packaged MiniLM with a small sparse head beside a copy, and a tiny random-weight
cross-encoder (wiring, not quality).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gpu_handlers.embedding.engine import EmbeddingEngine
from shared.providers.embed_runpod import RunPodEmbedder
from shared.providers.embeddings import EmbeddingError
from shared.providers.rerank_runpod import RunPodReranker
from shared.providers.runpod_client import RunPodClient, RunPodJobFailed
from tests.fakes.gpu_models import build_test_models
from tests.fakes.http import FakeServer, Request, Response, free_port

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "gpu_handlers" / "embedding" / "handler.py"
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EMBED_MODEL", "RERANK_MODEL")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_test_models(tmp_path_factory.mktemp("gpu-models"))


@pytest.fixture(scope="module")
def engine(models: dict[str, str]) -> EmbeddingEngine:
    """The same engine in this process, to compare what came over the wire."""
    return EmbeddingEngine(models["minilm_sparse"], models["reranker"], device="cpu")


@pytest.fixture(scope="module")
def server(models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("rp-log") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HANDLER),
                "--rp_serve_api",
                "--rp_api_host",
                "127.0.0.1",
                "--rp_api_port",
                str(port),
                "--rp_log_level",
                "WARN",
            ],
            env=_env(EMBED_MODEL=models["minilm_sparse"], RERANK_MODEL=models["reranker"]),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"handler server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"handler server did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server: str) -> RunPodClient:
    return RunPodClient("", base_url=server, timeout=60, poll_interval=0.05)


# ------------------------------------------------------------------ --test_input
def test_test_input_mode_runs_the_checked_in_job_with_defaults() -> None:
    """The issue's command, with no model settings: bge-m3 is not cached here, so the worker
    falls back to the packaged MiniLM (development only) and says so."""
    job = (ROOT / "gpu_handlers" / "embedding" / "test_input.json").read_text()
    done = subprocess.run(
        [sys.executable, str(HANDLER), "--test_input", job],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "completed successfully" in output and "'dimension': 384" in output
    assert "using the packaged" in output


def test_test_input_mode_fails_bad_input_naming_the_field(models: dict[str, str]) -> None:
    job = json.dumps({"input": {"task": "rerank", "documents": ["a"]}})
    done = subprocess.run(
        [sys.executable, str(HANDLER), "--test_input", job],
        env=_env(EMBED_MODEL=models["minilm"], RERANK_MODEL=models["reranker"]),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert "query: required for task rerank" in done.stdout + done.stderr


# ------------------------------------------------------------------ local API server
def test_runsync_embed_dense_and_sparse_over_http(client: RunPodClient, engine: EmbeddingEngine) -> None:
    texts = ["Драконы дышат огнём.", "the goblin hides in the cave", "word " * 600]
    out = client.runsync({"task": "embed", "texts": texts, "return_sparse": True}, timeout=60)
    local = engine.embed(texts, return_sparse=True)
    np.testing.assert_allclose(out["embeddings"], local["embeddings"], atol=1e-5)
    assert out["truncated"] == [False, False, True]
    assert [set(s) for s in out["sparse"]] == [set(s) for s in local["sparse"]]
    assert all(out["sparse"]) and out["model"] == engine.embed_model_name


BAD_JOBS = [
    ({"task": "embed", "texts": ["ok", ""]}, r"texts\[1\]: empty string"),
    ({"task": "embed", "texts": ["ok", 3]}, r"texts\[1\]: must be a string"),
    ({"task": "embed", "texts": ["x"] * 10_000}, "texts: 10000 items"),
    ({"task": "embed", "texts": ["x" * 1_000_000]}, r"texts\[0\]: 1000000 characters"),
    ({"task": "translate", "texts": ["x"]}, "task: unknown task 'translate'"),
    ({"task": "rerank", "documents": ["a"]}, "query: required"),
]


@pytest.mark.parametrize(("job", "message"), BAD_JOBS)
def test_bad_jobs_fail_naming_the_field_and_the_worker_keeps_serving(
    client: RunPodClient, job: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunPodJobFailed, match=message) as info:
        client.runsync(job, timeout=60)
    assert info.value.status == "FAILED"
    good = client.runsync({"task": "embed", "texts": ["still alive"]}, timeout=60)
    assert len(good["embeddings"]) == 1


SPARSE_JOB = {"task": "embed", "texts": ["x"], "return_sparse": True}


def test_sparse_refused_by_a_model_without_a_head(models: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(HANDLER), "--test_input", json.dumps({"input": SPARSE_JOB})],
        env=_env(EMBED_MODEL=models["minilm"], RERANK_MODEL="none"),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert (
        "return_sparse: model" in done.stdout + done.stderr
        and "sparse_linear.pt" in done.stdout + done.stderr
    )


def test_run_then_status(client: RunPodClient, engine: EmbeddingEngine) -> None:
    job_id = client.run({"task": "rerank", "query": "fire", "documents": ["a", "b", "c"], "top_n": 2})
    assert job_id.startswith("test-")
    out = client.wait(job_id, timeout=60)
    assert [r["index"] for r in out["results"]] == [
        r["index"] for r in engine.rerank("fire", ["a", "b", "c"], top_n=2)["results"]
    ]


def test_embedder_and_reranker_adapters_against_the_worker(
    server: str, models: dict[str, str], engine: EmbeddingEngine
) -> None:
    embedder = RunPodEmbedder(
        base_url=server, model=models["minilm_sparse"], timeout_seconds=60, options={"batch_size": 2}
    )
    texts = ["one ring", "two towers", "return of the king"]
    vectors = embedder.embed(texts)
    np.testing.assert_allclose(vectors, engine.embed(texts)["embeddings"], atol=1e-5)
    assert embedder.dimension == 384
    np.testing.assert_allclose(embedder.embed_query("one ring"), vectors[0], atol=1e-6)
    [(_dense, lexical)] = embedder.embed_sparse(["one ring"])
    assert lexical and all(isinstance(k, int) and v > 0 for k, v in lexical.items())

    job_id = embedder.submit(texts)
    np.testing.assert_allclose(embedder.collect(job_id, expected=3, timeout=60), vectors, atol=1e-6)

    with pytest.raises(EmbeddingError, match=r"FAILED: texts\[0\]: empty string"):
        embedder.embed([""])

    reranker = RunPodReranker(base_url=server, timeout_seconds=60)
    docs = ["dragons", "taxes", "fire breath", "the sea"]
    expected = engine.rerank("fire dragon", docs)["results"]
    got = reranker.rerank("fire dragon", docs, top_n=3)
    assert [r.index for r in got] == [r["index"] for r in expected[:3]]
    assert all(abs(a.score - b["score"]) < 1e-5 for a, b in zip(got, expected, strict=False))
    job_id = reranker.submit("fire dragon", docs)
    assert [r.index for r in reranker.collect(job_id, documents=4, timeout=60)] == [
        r["index"] for r in expected
    ]


# ------------------------------------------------------------------ OpenAI-compatible route
@pytest.fixture(scope="module")
def openai_gateway(server: str) -> Iterator[str]:
    """A fake of RunPod's ``/openai/v1`` gateway: wraps the request into an openai_route job on the
    worker's /runsync and answers with the job output (400 with the job error when it FAILED)."""

    def forward(route: str) -> Any:
        def handle(req: Request) -> Response:
            job: dict[str, Any] = {"openai_route": route}
            if req.body:
                job["openai_input"] = req.json()
            answer = httpx.post(server + "/runsync", json={"input": job}, timeout=60).json()
            if answer["status"] != "COMPLETED":
                return Response(
                    400, {"error": {"message": answer.get("error"), "type": "invalid_request_error"}}
                )
            return Response(200, answer["output"])

        return handle

    with FakeServer() as gw:
        gw.route("POST", "/openai/v1/embeddings", forward("/v1/embeddings"))
        gw.route("GET", "/openai/v1/models", forward("/v1/models"))
        yield gw.url + "/openai/v1"


def test_openai_client_through_the_openai_route(openai_gateway: str, engine: EmbeddingEngine) -> None:
    import openai

    oa = openai.OpenAI(base_url=openai_gateway, api_key="rpa_not_a_real_key_000000", max_retries=0)
    texts = ["hello there", "general kenobi"]
    response = oa.embeddings.create(model=engine.embed_model_name, input=texts)  # SDK default: base64
    assert [d.index for d in response.data] == [0, 1]
    np.testing.assert_allclose(
        [d.embedding for d in response.data], engine.embed(texts)["embeddings"], atol=1e-6
    )
    assert response.usage.prompt_tokens == engine.embed(texts)["usage"]["prompt_tokens"]
    floats = oa.embeddings.create(model=engine.embed_model_name, input="hello there", encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, response.data[0].embedding, atol=1e-6)
    assert [m.id for m in oa.models.list().data] == [engine.embed_model_name, engine.rerank_model_name]
    with pytest.raises(openai.BadRequestError, match=r"openai_input.input\[0\]: empty string"):
        oa.embeddings.create(model=engine.embed_model_name, input=[""])
