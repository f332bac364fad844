"""Embedding/rerank adapters and the factory: the real openai client against a fake OpenAI server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from shared.config.models import ProviderSettings
from shared.memory37.etl import ingest_path
from shared.memory37.search import search_memory
from shared.providers import factory
from shared.providers.embed_openai import OpenAIEmbedder
from shared.providers.embeddings import EmbeddingError
from shared.providers.rerank_local import LocalReranker
from tests.fakes.http import FakeServer, Fault
from tests.fakes.openai_embeddings import FakeOpenAIEmbeddings, fake_vector


@pytest.fixture()
def fake_openai() -> Iterator[FakeOpenAIEmbeddings]:
    with FakeServer() as server:
        yield FakeOpenAIEmbeddings(server, default_dimensions=48)


def test_openai_embedder_uses_base64_by_default_and_normalises(fake_openai: FakeOpenAIEmbeddings) -> None:
    emb = OpenAIEmbedder(
        "text-embedding-3-small", api_key="sk-test", base_url=fake_openai.base_url, batch_size=2
    )
    vectors = emb.embed(["alpha beta", "gamma", "delta epsilon"])
    assert len(vectors) == 3 and emb.dimension == 48
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[1] == pytest.approx(fake_vector("gamma", 48), abs=1e-6)
    calls = fake_openai.calls()
    assert len(calls) == 2 and calls[0].json()["encoding_format"] == "base64"  # the SDK's default
    assert calls[0].json()["input"] == ["alpha beta", "gamma"]


def test_openai_dimensions_and_errors(fake_openai: FakeOpenAIEmbeddings) -> None:
    emb = OpenAIEmbedder("m", api_key="sk-test", base_url=fake_openai.base_url, dimensions=16, max_retries=0)
    assert len(emb.embed_query("x")) == 16 and fake_openai.calls()[0].json()["dimensions"] == 16
    bad = OpenAIEmbedder("m", api_key="wrong", base_url=fake_openai.base_url, max_retries=0)
    with pytest.raises(Exception) as info:
        bad.embed(["x"])
    assert getattr(info.value, "status_code", None) == 401
    fake_openai.server.fail_next("/v1/embeddings", Fault(status=503))
    with pytest.raises(Exception) as info:
        emb.embed(["x"])
    assert getattr(info.value, "status_code", None) == 503


def test_ingest_and_search_through_the_openai_adapter(
    db_url: str, fake_openai: FakeOpenAIEmbeddings, tmp_path: Path
) -> None:
    (tmp_path / "a.md").write_text("# Tides\n\nThe tide floods the flats twice a day.", "utf-8")
    (tmp_path / "b.md").write_text("# Salt\n\nSalt is sold in sealed barrels.", "utf-8")
    emb = OpenAIEmbedder("fake-openai-48", api_key="sk-test", base_url=fake_openai.base_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        s = ingest_path(conn, domain="srd", source=tmp_path, embedder=emb)
        assert s.embedded == 2 and s.errors == []
        hits = search_memory(conn, user_id=None, domains=["srd"], query="tide floods", top_k=1, embedder=emb)
        assert hits[0].doc_id == "a.md"


def test_factory_builds_configured_types_once(
    reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.clear_cache()
    local = factory.build_embedder()
    assert type(local).__name__ == "LocalEmbedder" and local.model == "all-MiniLM-L6-v2"
    assert local is factory.build_embedder("local")  # cached: a model loads once per process
    assert local.dimension == 384  # known without loading the model
    assert factory.build_reranker() is None  # none configured: fusion only
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        factory.build_embedder("openai")
    with pytest.raises(EmbeddingError, match="not configured"):
        factory.build_embedder("nope")
    factory.clear_cache()


class FakeCrossEncoder:
    def predict(self, pairs, **kwargs):  # type: ignore[no-untyped-def]
        return [len(set(q.split()) & set(d.split())) * 2.0 - 1.0 for q, d in pairs]


def test_local_reranker_orders_by_sigmoid_score() -> None:
    rr = LocalReranker("fake", cross_encoder=FakeCrossEncoder())
    out = rr.rerank("red dragon", ["blue sky", "red dragon sleeps", "a red door"], top_n=2)
    assert [r.index for r in out] == [1, 2]
    assert 0 < out[1].score < out[0].score < 1
    settings = ProviderSettings(type="local", model="/nonexistent/model")
    with pytest.raises(Exception, match="cannot load cross-encoder"):
        LocalReranker.from_settings("x", settings).rerank("q", ["d"])
