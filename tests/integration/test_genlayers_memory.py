"""Profiles with memory retrieval: real memory37 ingestion and hybrid search (a small deterministic
embedder instead of MiniLM, to stay fast), chunks injected with their ids, citations checked."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from shared.genlayers.service import Context, Generator
from shared.providers.embeddings import Embedder
from shared.providers.resilience import FallbackChain
from tests.fakes.openai_chat import FakeOpenAI, Reply, user_messages, write_config

CITED = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "citations": {"type": "array", "items": {"type": "string"}}},
    "required": ["answer", "citations"],
    "additionalProperties": False,
}
DOCS = [
    {
        "id": "grapple",
        "title": "Grappling",
        "text": "A grapple uses an athletics check against the target.",
        "tags": [],
        "lang": "en",
        "meta": {},
    },
    {
        "id": "cover",
        "title": "Cover",
        "text": "Half cover gives a +2 bonus to armor class and dexterity saves.",
        "tags": [],
        "lang": "en",
        "meta": {},
    },
]


class HashEmbedder(Embedder):
    """Bag of words hashed into 64 dimensions, L2-normalised: deterministic and instant."""

    model = "test-hash-64"
    dimension = 64

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            v = [0.0] * self.dimension
            for word in re.findall(r"\w+", text.lower()):
                v[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    oa = FakeOpenAI()
    oa.server.start()
    yield oa
    oa.server.stop()


@pytest.fixture()
def gen(
    fake: FakeOpenAI, tmp_path: Path, db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> Generator:
    from shared.db.connection import get_database
    from shared.memory37.etl import ingest_path
    from shared.memory37.search import search_memory

    fake.reset()
    d = write_config(
        tmp_path / "cfg",
        providers={"fake": {"type": "openai", "base_url": fake.base_url, "api_key_env": "OPENAI_API_KEY"}},
        profiles={
            "rules": {
                "provider": "fake",
                "model": "gpt-fake",
                "output_schema": CITED,
                "retries": 1,
                "memory": {"domains": ["srd"], "top_k": 2, "citations_field": "citations"},
            }
        },
    )
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(d))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key-000000000000")
    embedder = HashEmbedder()
    source = tmp_path / "srd.jsonl"
    source.write_text("\n".join(json.dumps(d) for d in DOCS), encoding="utf-8")
    ingest_path(get_database(), domain="srd", source=source, embedder=embedder)
    search = functools.partial(search_memory, embedder=embedder, rerank=False)
    return Generator(chain=FallbackChain(), memory_search=search)


def system_ids(body: dict[str, Any]) -> list[str]:
    system = next(m["content"] for m in body["messages"] if m["role"] == "system")
    return re.findall(r"^\[(\w+)\] ", system, flags=re.MULTILINE)


def test_top_chunks_are_injected_with_ids_and_citations_are_checked(gen: Generator, fake: FakeOpenAI) -> None:
    fake.push(Reply.json({"answer": "athletics", "citations": ["999999"]}))  # an id it was not given

    def cite_first(body: dict[str, Any]) -> Reply:
        return Reply.json({"answer": "athletics", "citations": system_ids(body)[:1]})

    fake.default = cite_first
    res = gen.generate("rules", "how does a grapple work?", Context(session_id="mem"))
    first, second = fake.calls()
    ids = system_ids(first.json())
    assert ids and [s["id"] for s in res.sources] == ids
    assert res.sources[0]["doc_id"] == "grapple" and "athletics" in res.sources[0]["text"]
    assert res.output["citations"] == ids[:1]
    hint = user_messages(second)[-1]
    assert "$.citations" in hint and "999999" in hint and "properties" not in hint
