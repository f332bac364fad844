"""Search at scale: ~100k chunks (384-d) in a scratch embedded PostgreSQL.

    .venv/bin/python bench/search.py                  # 100k chunks, 200 queries
    .venv/bin/python bench/search.py --chunks 20000   # quicker

The corpus is generated: documents about 400 topics, written from a Zipf-distributed vocabulary of
invented words mixed with each topic's own words and English function words. The "fast embedder" is a
bag-of-words model: each word has a fixed vector near its topic's centre (general words are spread out),
a text's vector is the normalised sum — so vectors cluster by topic the way real embeddings do, neighbours
mean something, and embedding costs microseconds: the database path is what is measured.

Prints: ingest throughput (the real ``ingest_path``: parse JSONL, chunk, COPY, generated tsvector columns,
GIN), HNSW build time, p50/p95 latency of dense, keyword and hybrid search (``search_memory``) with and
without a ~1 % filter, HNSW recall@10 against exact search, and whether filtered queries return k hits.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: the repository root is importable, and bench/ itself is not on the path (its
# modules must not shadow the standard library, e.g. bench/queue.py).
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from shared.db import embedded  # noqa: E402
from shared.db.migrate import migrate  # noqa: E402
from shared.memory37.etl import ensure_hnsw_index, ingest_path  # noqa: E402
from shared.memory37.search import search_memory  # noqa: E402
from shared.providers.embeddings import Embedder  # noqa: E402

DIM = 384
FUNCTION_WORDS = [
    *("the", "of", "and", "in", "to", "a", "is", "that", "for", "on"),
    *("with", "as", "by", "at", "from", "which", "its", "their", "this"),
]
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ar", "en", "il", "or", "us")]


def make_words(rng: np.random.Generator, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(2, 4))
        words.add("".join(SYLLABLES[int(i)] for i in rng.integers(0, len(SYLLABLES), k)))
    return sorted(words)


class BagOfWordsEmbedder(Embedder):
    """Deterministic, clustered and fast: a text's vector is the normalised sum of its words' vectors."""

    model = "bench-bow-384"
    dimension = DIM

    def __init__(self, word_vectors: dict[str, np.ndarray], weights: dict[str, float]) -> None:
        words = sorted(word_vectors)
        self.index = {w: i for i, w in enumerate(words)}
        self.matrix = np.stack([word_vectors[w] * weights[w] for w in words]).astype(np.float32)
        self.calls = 0

    def _one(self, text: str) -> list[float]:
        words = (t.strip(".,;:!?\"'()›") for t in text.lower().split())
        idx = [self.index[w] for w in words if w in self.index]
        acc = self.matrix[idx].sum(axis=0) if idx else np.eye(1, DIM, dtype=np.float32)[0]
        return (acc / float(np.linalg.norm(acc))).tolist()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [self._one(t) for t in texts]


class Corpus:
    def __init__(self, seed: int, topics: int = 400, vocab: int = 20000, topic_words: int = 60) -> None:
        self.rng = np.random.default_rng(seed)
        words = make_words(self.rng, vocab + topics * topic_words)
        self.rng.shuffle(words)  # type: ignore[arg-type]
        self.general = words[:vocab]
        self.topic_words = [
            words[vocab + t * topic_words : vocab + (t + 1) * topic_words] for t in range(topics)
        ]
        ranks = np.arange(1, vocab + 1)
        self.general_p = (1 / ranks**1.05) / np.sum(1 / ranks**1.05)
        self.general_cdf = np.cumsum(self.general_p)
        # Topic centres, grouped under 40 themes (hierarchical clusters, like real embeddings).
        themes = _unit(self.rng.standard_normal((40, DIM)))
        centres = _unit(themes[np.arange(topics) % 40] + 0.8 * _unit(self.rng.standard_normal((topics, DIM))))
        vectors: dict[str, np.ndarray] = {}
        weights: dict[str, float] = {}
        for t, tw in enumerate(self.topic_words):
            noise = _unit(self.rng.standard_normal((len(tw), DIM)))
            for w, v in zip(tw, _unit(centres[t] + 0.9 * noise), strict=True):
                vectors[w], weights[w] = v.astype(np.float32), 1.0
        noise = _unit(self.rng.standard_normal((vocab, DIM)))
        for i, w in enumerate(self.general):
            vectors[w], weights[w] = noise[i].astype(np.float32), 0.35
        self.embedder = BagOfWordsEmbedder(vectors, weights)
        self.topics = topics

    def sentence(self, topic: int) -> str:
        n = int(self.rng.integers(8, 16))
        kinds = self.rng.random(n)
        topical = self.rng.zipf(1.3, n) % len(self.topic_words[topic])
        general = np.searchsorted(self.general_cdf, self.rng.random(n))
        function = self.rng.integers(0, len(FUNCTION_WORDS), n)
        out = [
            FUNCTION_WORDS[function[j]]
            if kinds[j] < 0.35
            else self.topic_words[topic][topical[j]]
            if kinds[j] < 0.7
            else self.general[min(int(general[j]), len(self.general) - 1)]
            for j in range(n)
        ]
        return " ".join(out).capitalize() + "."

    def document(self, i: int, rare: bool, very_rare: bool) -> dict[str, object]:
        topic = int(self.rng.integers(0, self.topics))
        paragraphs = []
        for _ in range(int(self.rng.integers(3, 6))):
            paragraphs.append(" ".join(self.sentence(topic) for _ in range(int(self.rng.integers(3, 6)))))
        tags = [f"topic-{topic}"] + (["rare"] if rare else []) + (["very-rare"] if very_rare else [])
        title = " ".join(self.topic_words[topic][:2]).title() + f" {i}"
        return {"id": f"doc-{i}", "title": title, "text": "\n\n".join(paragraphs), "tags": tags, "lang": "en"}

    def query(self) -> str:
        topic = int(self.rng.integers(0, self.topics))
        picks = [self.topic_words[topic][int(self.rng.zipf(1.3)) % 60] for _ in range(3)]
        general = self.general[
            min(int(np.searchsorted(self.general_cdf, self.rng.random())), len(self.general) - 1)
        ]
        return f"what is the {picks[0]} of {picks[1]} and {general} {picks[2]}?"


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000, help="target number of chunks")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="leave the scratch database folder")
    args = ap.parse_args()

    corpus = Corpus(args.seed)
    work = Path(tempfile.mkdtemp(prefix="hybrid-bench-"))
    t = time.perf_counter()
    # Documents are generated until their chunks (the lore domain's chunking) reach the target.
    from shared.config.store import get_config
    from shared.memory37.chunking import chunk_document

    chunking = get_config().logic.memory.domains["lore"].chunking
    n_docs = n_chunks = 0
    with (work / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        while n_chunks < args.chunks:
            rare = corpus.rng.random() < 0.01
            very_rare = n_docs in (3, 500, 1000)
            doc = corpus.document(n_docs, rare, very_rare)
            n_chunks += len(chunk_document(str(doc["title"]), str(doc["text"]), chunking))
            fh.write(json.dumps(doc) + "\n")
            n_docs += 1
    print(f"generated {n_docs} documents in {time.perf_counter() - t:.1f} s", flush=True)

    server = embedded.start(work / "pgdata", cleanup_mode=None if args.keep else "delete")
    url = str(server.get_uri("postgres"))
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS bench")
        c.execute("CREATE DATABASE bench")
    url = str(server.get_uri("bench"))
    if args.keep:
        print("database:", url, flush=True)
    migrate(url)

    t = time.perf_counter()
    summary = ingest_path(
        url,
        domain="lore",
        source=work / "corpus.jsonl",
        embedder=corpus.embedder,
        build_index=False,
        group_chunks=4096,
        progress=True,
    )
    ingest_s = time.perf_counter() - t
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("VACUUM ANALYZE")
        t = time.perf_counter()
        ensure_hnsw_index(conn, corpus.embedder.model)
        hnsw_s = time.perf_counter() - t
        conn.execute("ANALYZE memory_embeddings")
        n_rare = conn.execute(
            "SELECT count(*) FROM memory_chunks c JOIN memory_documents d ON d.id = c.document_id "
            "WHERE d.tags && ARRAY['rare']"
        ).fetchone()[0]  # type: ignore[index]
        n_very_rare = conn.execute(
            "SELECT count(*) FROM memory_chunks c JOIN memory_documents d ON d.id = c.document_id "
            "WHERE d.tags && ARRAY['very-rare']"
        ).fetchone()[0]  # type: ignore[index]

        queries = [corpus.query() for _ in range(args.queries)]
        rare_filter = {"tags_any": ["rare"]}
        very_rare_filter = {"tags_any": ["very-rare"]}
        results: dict[str, list[float]] = {}

        def run(label: str, mode: str, filters: dict[str, list[str]] | None) -> list[list[int]]:
            lat, out = [], []
            for q in queries:
                t0 = time.perf_counter()
                hits = search_memory(
                    conn,
                    user_id=None,
                    domains=["lore"],
                    query=q,
                    top_k=10,
                    filters=filters,
                    embedder=corpus.embedder,
                    rerank=False,
                    mode=mode,  # type: ignore[arg-type]
                )
                lat.append((time.perf_counter() - t0) * 1000)
                out.append([h.chunk_id for h in hits])
            results[label] = lat
            return out

        for _ in range(2):  # warm the caches
            run("warmup", "hybrid", None)
        short = 0
        for mode in ("dense", "keyword", "hybrid"):
            run(f"{mode}", mode, None)
            filtered = run(f"{mode} + 1% filter", mode, rare_filter)
            if mode != "keyword":  # keyword hits need a matching word; the vector side always has k
                short += sum(1 for hits in filtered if len(hits) < 10)
        filtered = run("hybrid + 0.03% filter", "hybrid", very_rare_filter)
        short += sum(1 for hits in filtered if len(hits) < min(10, n_very_rare))

        # HNSW recall@10 against exact search (the same SQL with an order the index cannot serve).
        recall = []
        for q in queries[:100]:
            vec = "[" + ",".join(f"{x:.7g}" for x in corpus.embedder.embed_query(q)) + "]"
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.ef_search = {get_config().logic.memory.dense.ef_search}")
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                ann = [
                    r[0]
                    for r in conn.execute(
                        "SELECT chunk_id FROM memory_embeddings WHERE model = 'bench-bow-384' "
                        "ORDER BY embedding::vector(384) <=> %s::vector(384) LIMIT 10",
                        (vec,),
                    ).fetchall()
                ]
                exact = [
                    r[0]
                    for r in conn.execute(
                        "SELECT chunk_id FROM memory_embeddings WHERE model = 'bench-bow-384' "
                        "ORDER BY (embedding::vector(384) <=> %s::vector(384)) + 0 LIMIT 10",
                        (vec,),
                    ).fetchall()
                ]
            recall.append(len(set(ann) & set(exact)) / 10)
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT chunk_id FROM memory_embeddings WHERE model = 'bench-bow-384' "
                "ORDER BY embedding::vector(384) <=> %s::vector(384) LIMIT 10",
                ("[" + ",".join(["0.05"] * 384) + "]",),
            ).fetchall()
        )

    chunks = summary.chunks
    print()
    print(
        f"corpus: {summary.documents} documents, {chunks} chunks, {DIM}-d, "
        f"1% filter = {n_rare} chunks, 0.03% filter = {n_very_rare} chunks"
    )
    print(
        f"ingest: {ingest_s:.1f} s = {chunks / ingest_s:.0f} chunks/s "
        f"(parse, chunk, embed (fast embedder), COPY, tsvector + GIN)"
    )
    dc = get_config().logic.memory.dense
    print(f"HNSW build (m={dc.hnsw_m}, ef_construction={dc.hnsw_ef_construction}): {hnsw_s:.1f} s")
    print("HNSW index used by the dense query:", "yes" if "hnsw" in plan.lower() else "NO\n" + plan)
    print(f"HNSW recall@10 vs exact (ef_search={dc.ef_search}, 100 queries): {statistics.mean(recall):.3f}")
    print(
        f"filtered queries (1% and {n_very_rare} chunks) returning fewer than min(10, matching) hits: {short}"
        f" of {len(queries) * 3}"
    )
    print()
    print(f"{'search (top 10, ' + str(len(queries)) + ' queries)':<34}{'p50 ms':>9}{'p95 ms':>9}")
    for label, lat in results.items():
        if label == "warmup":
            continue
        print(f"{label:<34}{pct(lat, 50):>9.1f}{pct(lat, 95):>9.1f}")
    if not args.keep:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
