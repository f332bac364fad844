"""The gpu_handlers embedding engine in process, on real small models (CPU).

The embedder is the packaged all-MiniLM-L6-v2 (loaded through the same code that loads BAAI/bge-m3);
the reranker is a tiny random-weight BERT cross-encoder: these tests prove wiring, not quality.
"""

from __future__ import annotations

import base64
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gpu_handlers.embedding import engine as eng
from gpu_handlers.embedding.engine import EmbeddingEngine, JobInputError, Limits
from tests.fakes.gpu_models import build_test_models

TEXTS = ["Драконы дышат огнём.", "Fireball deals 8d6 fire damage.", "hello", "the goblin hides " * 30]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_test_models(tmp_path_factory.mktemp("gpu-models"))


@pytest.fixture(scope="module")
def engine(models: dict[str, str]) -> EmbeddingEngine:
    return EmbeddingEngine(models["minilm_sparse"], models["reranker"], device="cpu")


@pytest.fixture(scope="module")
def plain_engine(models: dict[str, str]) -> EmbeddingEngine:
    return EmbeddingEngine(models["minilm"], "none", device="cpu")


@pytest.fixture(scope="module")
def reference(models: dict[str, str], engine: EmbeddingEngine) -> Any:
    """sentence-transformers with bge-m3's pooling (CLS + normalise) on the same weights."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as st_models

    st = SentenceTransformer(
        modules=[
            st_models.Transformer(models["minilm"]),
            st_models.Pooling(384, "cls"),
            st_models.Normalize(),
        ],
        device="cpu",
    )
    st.max_seq_length = engine.max_length
    return st


def test_dense_is_cls_pooled_and_normalised_like_sentence_transformers(
    engine: EmbeddingEngine, reference: Any
) -> None:
    out = engine.run_job({"task": "embed", "texts": TEXTS})
    vectors = np.array(out["embeddings"])
    assert vectors.shape == (len(TEXTS), 384) and out["dimension"] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, reference.encode(TEXTS), atol=2e-5)
    assert "sparse" not in out
    assert out["usage"]["prompt_tokens"] == out["usage"]["total_tokens"] > len(TEXTS) * 2


def test_dense_matches_a_manual_cls_forward_pass(engine: EmbeddingEngine) -> None:
    enc = engine.tokenizer(["a lonely tavern"], return_tensors="pt")
    with torch.inference_mode():
        cls = engine.model(**enc).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=-1)[0].tolist()
    got = engine.run_job({"task": "embed", "texts": ["a lonely tavern"]})["embeddings"][0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_truncation_flags_and_cut_at_max_length(engine: EmbeddingEngine, reference: Any) -> None:
    long_text = "word " * 1000
    out = engine.run_job({"task": "embed", "texts": ["short one", long_text]})
    assert out["truncated"] == [False, True]
    assert engine.max_length == 256  # from the model's sentence_bert_config.json
    assert out["usage"]["prompt_tokens"] == 4 + 256
    np.testing.assert_allclose(out["embeddings"][1], reference.encode([long_text])[0], atol=2e-5)


def test_token_budget_batches_sort_by_length_and_respect_the_cap() -> None:
    lengths = [5, 100, 7, 60, 60, 3, 100]
    batches = eng._token_budget_batches(lengths, max_tokens=200, max_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 200 and len(batch) <= 3
    assert batches[0] == [1, 6]  # longest first, 2 x 100 fills the budget
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)
    assert eng._token_budget_batches([500], max_tokens=100, max_size=8) == [[0]]  # one text may exceed


def test_small_token_budget_gives_the_same_vectors(models: dict[str, str], engine: EmbeddingEngine) -> None:
    tiny = EmbeddingEngine(models["minilm"], "none", device="cpu", limits=Limits(max_batch_tokens=40))
    a = np.array(engine.embed(TEXTS)["embeddings"])
    b = np.array(tiny.embed(TEXTS)["embeddings"])
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_sparse_lexical_weights_follow_bge_m3(engine: EmbeddingEngine) -> None:
    text = "dragon dragon fire"
    out = engine.run_job({"task": "embed", "texts": [text, "fire"], "return_sparse": True})
    assert len(out["sparse"]) == 2 and len(out["embeddings"]) == 2
    enc = engine.tokenizer([text], return_tensors="pt")
    with torch.inference_mode():
        hidden = engine.model(**enc).last_hidden_state
        weights = torch.relu(engine.sparse_head(hidden)).squeeze(-1)[0].tolist()
    ids = enc["input_ids"][0].tolist()
    expected: dict[str, float] = {}
    for token_id, weight in zip(ids, weights, strict=True):
        if token_id in (engine.tokenizer.cls_token_id, engine.tokenizer.sep_token_id) or weight <= 0:
            continue
        expected[str(token_id)] = max(expected.get(str(token_id), 0.0), weight)
    got = out["sparse"][0]
    assert got.keys() == expected.keys() and got
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-4)
    assert str(engine.tokenizer.cls_token_id) not in got and str(engine.tokenizer.sep_token_id) not in got
    # "dragon" occurs twice but has one entry (the max over its occurrences)
    dragon = str(engine.tokenizer.convert_tokens_to_ids("dragon"))
    assert dragon in got and ids.count(int(dragon)) == 2


def test_model_without_sparse_head_refuses_sparse(plain_engine: EmbeddingEngine) -> None:
    assert plain_engine.sparse_head is None
    with pytest.raises(JobInputError, match=r"return_sparse: .*sparse_linear\.pt"):
        plain_engine.run_job({"task": "embed", "texts": ["x"], "return_sparse": True})
    assert len(plain_engine.run_job({"task": "embed", "texts": ["x"]})["embeddings"]) == 1


def test_cpu_always_runs_fp32(models: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED_DTYPE", "fp16")
    e = EmbeddingEngine(models["minilm"], "none", device="cpu")
    assert e.dtype == torch.float32 and next(e.model.parameters()).dtype == torch.float32


def test_rerank_sorted_top_n_documents_and_raw_scores(engine: EmbeddingEngine) -> None:
    docs = ["a red dragon", "a goblin in a cave", "taxes", "dragons breathe fire", "the sea"]
    job = {"task": "rerank", "query": "fire dragon", "documents": docs}
    full = engine.run_job(job)
    scores = [r["score"] for r in full["results"]]
    assert sorted(r["index"] for r in full["results"]) == list(range(5))
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert "document" not in full["results"][0] and full["normalized"] is True
    # raw logits straight from the model, in the documents' order
    tok, model = engine.rerank_tokenizer, engine.rerank_model
    with torch.inference_mode():
        logits = model(**tok(["fire dragon"] * 5, docs, padding=True, return_tensors="pt")).logits[:, 0]
    raw = engine.run_job({**job, "normalize": False})
    for r in raw["results"]:
        assert math.isclose(r["score"], float(logits[r["index"]]), rel_tol=1e-4, abs_tol=1e-5)
        normalised = next(x for x in full["results"] if x["index"] == r["index"])["score"]
        assert math.isclose(normalised, 1 / (1 + math.exp(-r["score"])), rel_tol=1e-5)
    top = engine.run_job({**job, "top_n": 2, "return_documents": True})
    assert [r["index"] for r in top["results"]] == [r["index"] for r in full["results"][:2]]
    assert [r["document"] for r in top["results"]] == [docs[r["index"]] for r in top["results"]]


def test_rerank_truncates_long_pairs(engine: EmbeddingEngine) -> None:
    out = engine.run_job({"task": "rerank", "query": "q", "documents": ["short", "long " * 2000]})
    flags = {r["index"]: r["truncated"] for r in out["results"]}
    assert flags == {0: False, 1: True}


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"task": "embed", "texts": []}, "texts: no texts"),
        ({"task": "embed"}, "texts: required"),
        ({"task": "embed", "texts": ["ok", ""]}, r"texts\[1\]: empty string"),
        ({"task": "embed", "texts": ["ok", "   "]}, r"texts\[1\]: empty string"),
        ({"task": "embed", "texts": ["ok", 5]}, r"texts\[1\]: must be a string, got int"),
        ({"task": "embed", "texts": {"a": 1}}, "texts: must be a list"),
        ({"task": "embed", "texts": "one string"}, "texts: must be a list of strings, got str"),
        ({"task": "embed", "texts": ["x"] * 10_000}, "texts: 10000 items, the limit is 2048"),
        ({"task": "embed", "texts": ["x" * 1_000_000]}, r"texts\[0\]: 1000000 characters"),
        ({"task": "embed", "texts": ["x"], "return_sparse": "yes"}, "return_sparse: must be true or false"),
        ({"task": "summarise", "texts": ["x"]}, "task: unknown task 'summarise'"),
        ({"texts": ["x"]}, "task: required"),
        ({"task": "rerank", "documents": ["a"]}, "query: required"),
        ({"task": "rerank", "query": "", "documents": ["a"]}, "query: empty string"),
        ({"task": "rerank", "query": "q"}, "documents: required"),
        ({"task": "rerank", "query": "q", "documents": ["a", None]}, r"documents\[1\]: must be a string"),
        ({"task": "rerank", "query": "q", "documents": ["a"], "top_n": 0}, "top_n: must be a positive"),
        ({"openai_route": "/v1/chat/completions"}, "openai_route: unsupported route"),
        ({"openai_route": "/v1/embeddings"}, "openai_input: required"),
        ({"openai_route": "/v1/embeddings", "openai_input": {"input": [1, 2]}}, "openai_input.input: token"),
    ],
)
def test_bad_input_names_the_field(engine: EmbeddingEngine, job: dict[str, Any], field: str) -> None:
    with pytest.raises(JobInputError, match=field):
        engine.run_job(job)


def test_not_an_object_is_refused(engine: EmbeddingEngine) -> None:
    with pytest.raises(JobInputError, match="input: must be a JSON object"):
        engine.run_job(["texts"])


def test_openai_embeddings_shapes_validate_against_the_openai_sdk(engine: EmbeddingEngine) -> None:
    from openai.types import CreateEmbeddingResponse, Model

    name = engine.embed_model_name
    out = engine.run_job(
        {"openai_route": "/v1/embeddings", "openai_input": {"model": name, "input": TEXTS[:2]}}
    )
    parsed = CreateEmbeddingResponse.model_validate(out)
    assert [d.index for d in parsed.data] == [0, 1] and parsed.model == name
    assert parsed.usage.prompt_tokens == parsed.usage.total_tokens > 0
    np.testing.assert_allclose(parsed.data[0].embedding, engine.embed(TEXTS[:1])["embeddings"][0], atol=1e-6)

    b64 = engine.run_job(
        {"openai_route": "/v1/embeddings", "openai_input": {"input": "hello", "encoding_format": "base64"}}
    )
    raw = base64.b64decode(b64["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    np.testing.assert_allclose(decoded, engine.embed(["hello"])["embeddings"][0], atol=1e-6)

    with pytest.raises(JobInputError, match="openai_input.dimensions"):
        engine.run_job({"openai_route": "/v1/embeddings", "openai_input": {"input": "x", "dimensions": 8}})
    with pytest.raises(JobInputError, match="openai_input.model"):
        engine.run_job({"openai_route": "/v1/embeddings", "openai_input": {"input": "x", "model": "gpt"}})

    models = engine.run_job({"openai_route": "/v1/models"})
    assert models["object"] == "list"
    ids = [Model.model_validate(m).id for m in models["data"]]
    assert ids == [name, engine.rerank_model_name]


def test_rerank_unavailable_without_a_rerank_model(plain_engine: EmbeddingEngine) -> None:
    with pytest.raises(JobInputError, match="task: rerank is not available"):
        plain_engine.run_job({"task": "rerank", "query": "q", "documents": ["a"]})


def test_get_engine_reads_the_environment_once(
    models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBED_MODEL", models["minilm"])
    monkeypatch.setenv("RERANK_MODEL", "none")
    monkeypatch.setenv("EMBED_MAX_TEXTS", "3")
    eng.reset_engine()
    try:
        first = eng.get_engine()
        assert first is eng.get_engine()
        assert first.embed_model_name == models["minilm"] and first.rerank_model is None
        assert len(eng.run_job({"task": "embed", "texts": ["a", "b", "c"]})["embeddings"]) == 3
        with pytest.raises(JobInputError, match="texts: 4 items, the limit is 3"):
            eng.run_job({"task": "embed", "texts": ["a", "b", "c", "d"]})
    finally:
        eng.reset_engine()


def test_missing_model_path_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        EmbeddingEngine(str(tmp_path / "nope"), "none", device="cpu")


def test_runpod_smoke_test_definition_runs_on_the_engine(engine: EmbeddingEngine) -> None:
    """Every job in .runpod/tests.json is valid input (the model name is the production one)."""
    import json

    spec = json.loads((eng.Path(eng.__file__).parent / ".runpod" / "tests.json").read_text())
    assert spec["config"]["gpuCount"] == 1 and {e["key"] for e in spec["config"]["env"]} >= {
        "EMBED_MODEL",
        "RERANK_MODEL",
    }
    for test in spec["tests"]:
        job = dict(test["input"])
        if "openai_input" in job:
            job["openai_input"] = {k: v for k, v in job["openai_input"].items() if k != "model"}
        out = engine.run_job(job)
        assert out.get("embeddings") or out.get("results") or out.get("data"), test["name"]


def test_prefetch_loads_and_checks_the_configured_models(
    models: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpu_handlers.embedding import prefetch

    monkeypatch.setenv("EMBED_MODEL", models["minilm_sparse"])
    monkeypatch.setenv("RERANK_MODEL", models["reranker"])
    prefetch.main()
    out = capsys.readouterr().out
    assert "ok: " in out and "sparse=yes" in out and "dim=384" in out
