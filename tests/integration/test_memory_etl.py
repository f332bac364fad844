"""memory37 ETL against the real embedded PostgreSQL, with a fast deterministic embedder."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from shared.memory37.etl import IngestError, ingest_path
from shared.memory37.search import ModelNotIndexed, search_memory
from shared.providers.embeddings import EmbeddingError
from tests.fakes.embedder import HashEmbedder


@pytest.fixture()
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("TRUNCATE memory_documents, memory_models CASCADE")
        yield c


def write_corpus(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        paragraphs = [
            f"Chapter {i} paragraph {p}. The marsh hides secret {i * 10 + p} of the tides." for p in range(40)
        ]
        (root / f"doc{i}.md").write_text(f"# Doc {i}\n\n" + "\n\n".join(paragraphs), "utf-8")


def count(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_reingest_embeds_nothing_and_a_change_reembeds_only_changed_chunks(conn, tmp_path: Path) -> None:
    src = tmp_path / "lore"
    write_corpus(src)
    emb = HashEmbedder()
    first = ingest_path(conn, domain="lore", source=src, embedder=emb)
    assert (first.documents, first.written, first.skipped, first.errors) == (6, 6, 0, [])
    assert first.embedded == first.chunks == count(conn, "SELECT count(*) FROM memory_chunks") > 6
    assert first.index_created and count(conn, "SELECT count(*) FROM memory_embeddings") == first.chunks

    again = ingest_path(conn, domain="lore", source=src, embedder=emb)
    assert (again.embedded, again.skipped, again.written, again.chunks) == (0, 6, 0, first.chunks)

    doc = src / "doc2.md"
    doc.write_text(
        doc.read_text("utf-8").replace("paragraph 39.", "paragraph thirty-nine, rewritten eleven."), "utf-8"
    )
    changed = ingest_path(conn, domain="lore", source=src, embedder=emb)
    assert changed.written == 1 and changed.skipped == 5
    assert 1 <= changed.embedded < first.chunks // 6  # only the chunks whose text changed
    assert count(conn, "SELECT count(*) FROM memory_embeddings") == count(
        conn, "SELECT count(*) FROM memory_chunks"
    )
    hits = search_memory(
        conn, user_id=None, domains=["lore"], query="eleven rewritten", embedder=emb, top_k=3
    )
    assert hits[0].doc_id == "doc2.md" and "rewritten" in hits[0].text


def test_prune_removes_documents_gone_from_the_source(conn, tmp_path: Path) -> None:
    src = tmp_path / "lore"
    write_corpus(src)
    emb = HashEmbedder()
    ingest_path(conn, domain="lore", source=src, embedder=emb)
    (src / "doc5.md").unlink()
    kept = ingest_path(conn, domain="lore", source=src, embedder=emb)
    assert kept.deleted == 0 and count(conn, "SELECT count(*) FROM memory_documents") == 6
    pruned = ingest_path(conn, domain="lore", source=src, embedder=emb, prune=True)
    assert pruned.deleted == 1 and count(conn, "SELECT count(*) FROM memory_documents") == 5
    assert (
        count(
            conn,
            "SELECT count(*) FROM memory_chunks c LEFT JOIN memory_documents d ON d.id = c.document_id "
            "WHERE d.id IS NULL",
        )
        == 0
    )


def test_bad_files_and_lines_are_reported_and_nothing_ingested_is_lost(conn, tmp_path: Path) -> None:
    src = tmp_path / "mixed"
    src.mkdir()
    (src / "good.md").write_text("# Good\n\nA good page about eels.", "utf-8")
    (src / "broken.txt").write_bytes(b"\xff\xfe\x00 not utf-8")
    (src / "items.jsonl").write_text(
        json.dumps(
            {"id": "i1", "title": "One", "text": "first item", "tags": ["a"], "lang": "en", "meta": {}}
        )
        + "\n{oops\n"
        + json.dumps(
            {"id": "i2", "title": "Two", "text": "second item", "tags": [], "lang": "en", "meta": {}}
        ),
        "utf-8",
    )
    emb = HashEmbedder()
    s = ingest_path(conn, domain="lore", source=src, embedder=emb)
    assert s.documents == 3
    assert sorted((Path(e["file"]).name, e["line"]) for e in s.errors) == [
        ("broken.txt", None),
        ("items.jsonl", 2),
    ]
    # a later run where the JSONL file is unreadable with --prune keeps what came from it
    (src / "items.jsonl").write_bytes(b"\xff")
    s2 = ingest_path(conn, domain="lore", source=src, embedder=emb, prune=True)
    assert s2.deleted == 0 and count(conn, "SELECT count(*) FROM memory_documents") == 3


class FailingEmbedder(HashEmbedder):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls > self.fail_after:
            raise EmbeddingError("provider went away")
        return super().embed(texts)


def test_a_crash_mid_ingest_leaves_no_half_document_and_the_next_run_finishes(conn, tmp_path: Path) -> None:
    src = tmp_path / "lore"
    write_corpus(src)
    with pytest.raises(EmbeddingError):
        ingest_path(conn, domain="lore", source=src, embedder=FailingEmbedder(fail_after=1), group_chunks=10)
    docs = count(conn, "SELECT count(*) FROM memory_documents")
    assert 0 < docs < 6
    # every visible document is complete: all its chunks, each with a vector
    assert (
        count(
            conn,
            """SELECT count(*) FROM memory_chunks c LEFT JOIN memory_embeddings e ON e.chunk_id = c.id
                          WHERE e.chunk_id IS NULL""",
        )
        == 0
    )
    emb = HashEmbedder()
    s = ingest_path(conn, domain="lore", source=src, embedder=emb)
    assert s.skipped == docs and s.written == 6 - docs and s.embedded > 0
    assert count(conn, "SELECT count(*) FROM memory_documents") == 6


def test_two_models_coexist_and_a_model_without_vectors_is_a_clear_error(conn, tmp_path: Path) -> None:
    src = tmp_path / "lore"
    write_corpus(src)
    a, b = HashEmbedder("model-a", 64), HashEmbedder("model-b", 32)
    sa = ingest_path(conn, domain="lore", source=src, embedder=a)
    sb = ingest_path(conn, domain="lore", source=src, embedder=b)
    assert sb.embedded == sa.embedded and sb.written == 6  # same chunks, second model's vectors
    rows = conn.execute(
        "SELECT model, count(*) FROM memory_embeddings GROUP BY model ORDER BY model"
    ).fetchall()
    assert rows == [("model-a", sa.chunks), ("model-b", sa.chunks)]
    indexes = [
        r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'memory_emb_hnsw_%'")
    ]
    assert any("vector(64)" in d and "model-a" in d and "hnsw" in d for d in indexes)
    assert any("vector(32)" in d and "model-b" in d for d in indexes)
    for emb in (a, b):
        assert search_memory(conn, user_id=None, domains=["lore"], query="secret tides", embedder=emb)
    with pytest.raises(ModelNotIndexed, match="model-c"):
        search_memory(conn, user_id=None, domains=["lore"], query="tides", embedder=HashEmbedder("model-c"))
    with pytest.raises(IngestError, match="dimension"):
        (src / "new.md").write_text("# New\n\nA new page.", "utf-8")
        ingest_path(conn, domain="lore", source=src, embedder=HashEmbedder("model-a", 16))


def test_scope_and_domain_errors(conn, tmp_path: Path) -> None:
    src = tmp_path / "lore"
    write_corpus(src)
    with pytest.raises(IngestError, match="unknown domain"):
        ingest_path(conn, domain="nope", source=src, embedder=HashEmbedder())
    with pytest.raises(IngestError, match="campaign"):
        ingest_path(conn, domain="episodes", source=src, embedder=HashEmbedder())
    with pytest.raises(IngestError, match="does not exist"):
        ingest_path(conn, domain="episodes", source=src, embedder=HashEmbedder(), campaign_id=999)


def test_a_single_jsonl_file_is_ingested_and_pruned_by_line_ids(conn, tmp_path: Path) -> None:
    f = tmp_path / "items.jsonl"
    rows = [
        {
            "id": f"i{i}",
            "title": f"Item {i}",
            "text": f"item number {i} of the salt trade",
            "tags": ["t"],
            "lang": "en",
            "meta": {"date": f"2024-01-0{i + 1}"},
        }
        for i in range(4)
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    (tmp_path / "items.jsonl.bak").write_text(f.read_text("utf-8"), "utf-8")
    emb = HashEmbedder()
    ingest_path(
        conn, domain="lore", source=tmp_path / "items.jsonl.bak", embedder=emb, source_label="s3://b/k.bak"
    )
    s = ingest_path(conn, domain="lore", source=f, embedder=emb, source_label="s3://b/k")
    assert (s.documents, s.written, s.errors) == (4, 4, [])
    f.write_text("\n".join(json.dumps(r) for r in rows[:2]), "utf-8")
    pruned = ingest_path(conn, domain="lore", source=f, embedder=emb, prune=True, source_label="s3://b/k")
    assert pruned.deleted == 2 and pruned.skipped == 2
    left = conn.execute(
        "SELECT source, source_id, doc_date::date::text FROM memory_documents ORDER BY 1, 2"
    ).fetchall()
    assert [r[:2] for r in left] == [("s3://b/k", "i0"), ("s3://b/k", "i1")]
    assert left[0][2] == "2024-01-01"
