"""ETL: sources → chunks → embeddings → PostgreSQL.

``ingest_path`` is what ``hybrid ingest`` runs and what the S3 indexer Lambda calls for one uploaded file.

- Documents are grouped; each group is written in one transaction (document rows, chunks by COPY,
  vectors by COPY), so a crash leaves no half-written document visible and the next run redoes the group.
- A document whose content hash is unchanged, and whose chunks all have vectors of the embedder's model,
  is skipped: re-ingesting unchanged sources embeds nothing.
- A changed document keeps the chunks whose text is unchanged (and their vectors), deletes the ones that
  are gone and embeds only new chunk texts; a vector already stored for the same chunk text anywhere in
  the corpus is copied instead of recomputed.
- Switching the embedder to another model adds that model's vectors beside the old ones.
- Unreadable files and bad JSONL lines are reported with file and line; the rest is ingested.
- ``prune`` deletes the documents that came from this source earlier but are gone from it now (never
  those of a file that failed to read).
- When a model's first load finishes, its partial HNSW index is created.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.config.models import MemoryDomain, MemorySection
from shared.memory37.chunking import Chunk, chunk_document
from shared.memory37.domains import detect_lang, get_domain, memory_config, ts_config_for
from shared.memory37.parsers import SourceDocument, SourceError, iter_files, parse_file
from shared.providers.embeddings import Embedder, EmbeddingError

if TYPE_CHECKING:
    import psycopg

ProgressFn = Callable[[int, int, "IngestSummary"], None]


class IngestError(RuntimeError):
    """The ingest cannot run at all (unknown domain, missing scope, model dimension mismatch)."""


@dataclass
class IngestSummary:
    domain: str
    model: str = ""
    files: int = 0
    documents: int = 0  # documents read from the source
    chunks: int = 0  # chunks those documents have now
    embedded: int = 0  # vectors computed by the embedder in this run
    reused: int = 0  # vectors copied from an identical chunk already stored
    written: int = 0  # documents created or changed
    chunks_written: int = 0  # chunk rows added
    skipped: int = 0  # documents unchanged (nothing written, nothing embedded)
    deleted: int = 0  # documents pruned
    errors: list[dict[str, Any]] = field(default_factory=list)
    index_created: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scope:
    visibility: str
    owner_user_id: int | None = None
    campaign_id: int | None = None


# --- SQL ---------------------------------------------------------------------------------------------
SCOPE_MATCH = """domain = %(domain)s AND visibility = %(visibility)s
    AND owner_user_id IS NOT DISTINCT FROM %(owner_user_id)s
    AND campaign_id IS NOT DISTINCT FROM %(campaign_id)s"""

EXISTING_DOCUMENTS = f"""
SELECT id, source_id, content_hash, source, doc_date FROM memory_documents
WHERE {SCOPE_MATCH} AND source_id = ANY(%(source_ids)s)
"""

EXISTING_CHUNKS = """
SELECT c.id, c.document_id, c.content_hash, (e.chunk_id IS NOT NULL) AS has_vector
FROM memory_chunks c
LEFT JOIN memory_embeddings e ON e.chunk_id = c.id AND e.model = %(model)s
WHERE c.document_id = ANY(%(document_ids)s)
ORDER BY c.document_id, c.position
"""

REUSABLE_VECTORS = """
SELECT DISTINCT ON (c.content_hash) c.content_hash, vector_send(e.embedding)
FROM memory_chunks c JOIN memory_embeddings e ON e.chunk_id = c.id AND e.model = %(model)s
WHERE c.content_hash = ANY(%(hashes)s)
"""

# All documents of a group in one statement (a JSON array of records → rows).
UPSERT_DOCUMENTS = """
INSERT INTO memory_documents (domain, source, source_id, title, lang, ts_config, tags, meta, visibility,
                              owner_user_id, campaign_id, content_hash, doc_date)
SELECT %(domain)s, u.source, u.source_id, u.title, u.lang, u.ts_config::regconfig,
       ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.meta, %(visibility)s, %(owner_user_id)s,
       %(campaign_id)s, u.content_hash, coalesce(u.doc_date, now())
FROM jsonb_to_recordset(%(docs)s) AS u(source text, source_id text, title text, lang text, ts_config text,
                                       tags jsonb, meta jsonb, content_hash text, doc_date timestamptz)
ON CONFLICT ON CONSTRAINT memory_documents_identity DO UPDATE SET
    source = EXCLUDED.source, title = EXCLUDED.title, lang = EXCLUDED.lang, ts_config = EXCLUDED.ts_config,
    tags = EXCLUDED.tags, meta = EXCLUDED.meta, content_hash = EXCLUDED.content_hash,
    doc_date = EXCLUDED.doc_date, updated_at = now()
RETURNING id, source_id
"""

DELETE_CHUNKS = "DELETE FROM memory_chunks WHERE id = ANY(%(ids)s)"

MOVE_CHUNKS = """
UPDATE memory_chunks c SET position = u.position, ts_config = %(ts_config)s::regconfig
FROM unnest(%(ids)s::bigint[], %(positions)s::int[]) AS u(id, position)
WHERE c.id = u.id AND (c.position <> u.position OR c.ts_config <> %(ts_config)s::regconfig)
"""

COPY_CHUNKS = (
    "COPY memory_chunks (document_id, position, heading, text, token_count, content_hash, ts_config) "
    "FROM STDIN"
)
NEW_CHUNK_IDS = """
SELECT id, document_id, position FROM memory_chunks
WHERE document_id = ANY(%(document_ids)s) AND position = ANY(%(positions)s)
"""
COPY_EMBEDDINGS = (
    "COPY memory_embeddings (chunk_id, model, document_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
)

REGISTER_MODEL = """
INSERT INTO memory_models (model, dimension) VALUES (%(model)s, %(dimension)s)
ON CONFLICT (model) DO NOTHING
"""
MODEL_ROW = "SELECT dimension, index_name FROM memory_models WHERE model = %(model)s"

PRUNE = f"""
DELETE FROM memory_documents
WHERE {SCOPE_MATCH}
  AND (source = %(root)s OR (%(prefix)s::text IS NOT NULL AND starts_with(source, %(prefix)s)))
  AND NOT (source_id = ANY(%(seen)s))
  AND NOT (source = ANY(%(failed)s))
RETURNING id
"""

CAMPAIGN_EXISTS = "SELECT 1 FROM memory_campaigns WHERE id = %(campaign_id)s"
USER_EXISTS = "SELECT 1 FROM users WHERE id = %(owner_user_id)s"

INGEST_LOCK = "SELECT pg_advisory_xact_lock(hashtext('memory37:ingest:' || %(domain)s))"


# --- connections -------------------------------------------------------------------------------------
@contextmanager
def _connection(target: Any) -> Iterator[psycopg.Connection[Any]]:
    """A connection for the whole ingest: a psycopg connection as is, a Database's pooled one, or a URL."""
    import psycopg

    from shared.db.connection import Database

    if isinstance(target, psycopg.Connection):
        yield target
    elif isinstance(target, Database):
        with target.pool.connection(timeout=target.connect_timeout) as conn:
            conn.commit()
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False
    elif isinstance(target, str):
        with psycopg.connect(target, autocommit=True, prepare_threshold=None) as conn:
            yield conn
    else:
        raise TypeError(
            f"ingest needs a psycopg connection, a Database or a URL, not {type(target).__name__}"
        )


def _fetch(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


# --- helpers -----------------------------------------------------------------------------------------
def vector_bytes(vector: Sequence[float]) -> bytes:
    """pgvector's binary form (what ``vector_send`` returns): dimension, 0, big-endian float32s."""
    return struct.pack(f">HH{len(vector)}f", len(vector), 0, *vector)


def document_hash(doc: SourceDocument, lang: str, settings: MemoryDomain) -> str:
    payload = json.dumps(
        {
            "title": doc.title,
            "text": doc.text,
            "markdown": doc.markdown,
            "lang": lang,
            "tags": doc.tags,
            "meta": doc.meta,
            "date": doc.date.isoformat() if doc.date else None,
            "chunking": settings.chunking.model_dump(),
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def hnsw_index_name(model: str, dimension: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:24]
    digest = hashlib.sha1(model.encode("utf-8")).hexdigest()[:8]  # noqa: S324 - a name, not security
    return f"memory_emb_hnsw_{slug}_{dimension}_{digest}"


@dataclass
class _Prepared:
    doc: SourceDocument
    lang: str
    ts_config: str
    content_hash: str
    chunks: list[Chunk]


class _Progress:
    def __init__(self, enabled: bool, callback: ProgressFn | None, label: str) -> None:
        self.tty = enabled and sys.stderr.isatty()
        self.callback, self.label = callback, label
        self._last = 0.0

    def update(self, done: int, total: int, summary: IngestSummary, *, final: bool = False) -> None:
        if self.callback is not None:
            self.callback(done, total, summary)
        if not self.tty:
            return
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / total) if total else width
        bar = "█" * filled + "·" * (width - filled)
        sys.stderr.write(
            f"\r{self.label} [{bar}] {done}/{total} documents · {summary.embedded} embedded"
            f" · {summary.skipped} unchanged"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


# --- the ingest --------------------------------------------------------------------------------------
def ingest_path(
    conn_or_db: Any,
    *,
    domain: str,
    source: Path | str,
    lang: str | None = None,
    prune: bool = False,
    embedder: Embedder | None = None,
    progress: bool = False,
    visibility: str | None = None,
    owner_user_id: int | None = None,
    campaign_id: int | None = None,
    source_label: str | None = None,
    group_chunks: int = 1024,
    build_index: bool = True,
    on_progress: ProgressFn | None = None,
) -> IngestSummary:
    """Ingest a file or a folder into ``domain``; returns what was done.

    ``visibility`` (default: the domain's) with ``owner_user_id`` for ``user`` and ``campaign_id`` for
    ``campaign`` documents. ``source_label`` replaces the local path in the recorded ``source`` (the S3
    indexer passes ``s3://bucket/key`` for the file it downloaded).
    """
    started = time.monotonic()
    cfg = memory_config()
    try:
        dom = get_domain(domain, cfg)
    except ValueError as exc:
        raise IngestError(str(exc)) from exc
    scope = _scope(dom, visibility, owner_user_id, campaign_id)
    if embedder is None:
        from shared.providers.factory import build_embedder

        embedder = build_embedder()
    root = Path(source)
    if not root.exists():
        raise IngestError(f"source {root} does not exist")
    label_root = source_label or str(root.resolve())
    summary = IngestSummary(domain=domain, model=embedder.model)

    def label_of(path: Path) -> str:
        if root.is_file():
            return label_root
        return label_root.rstrip("/") + "/" + path.relative_to(root).as_posix()

    files = iter_files(root)
    summary.files = len(files)
    docs: list[_Prepared] = []
    failed_sources: set[str] = set()
    seen: dict[str, str] = {}
    for path in files:
        label = label_of(path)
        for item in parse_file(path, root):
            if isinstance(item, SourceError):
                failed_sources.add(label)
                summary.errors.append(SourceError(label, item.line, item.error).to_dict())
                continue
            item.source = label
            if item.source_id in seen:
                where = f"line {item.line}" if item.line else "file"
                summary.errors.append(
                    SourceError(
                        label,
                        item.line,
                        f"duplicate id {item.source_id!r} ({where}); also in {seen[item.source_id]}",
                    ).to_dict()
                )
                continue
            seen[item.source_id] = label
            docs.append(_prepare(item, lang, dom, cfg))
    summary.documents = len(docs)

    bar = _Progress(progress, on_progress, f"ingest {domain}")
    with _connection(conn_or_db) as conn:
        _check_scope(conn, scope)
        done = 0
        for group in _groups(docs, group_chunks):
            _write_group(conn, group, domain, scope, embedder, cfg, summary)
            done += len(group)
            bar.update(done, len(docs), summary)
        if prune:
            summary.deleted = _prune(
                conn, domain, scope, label_root, root.is_file(), set(seen), failed_sources
            )
        if build_index and (summary.embedded or summary.reused):
            summary.index_created = ensure_hnsw_index(conn, embedder.model, cfg)
        if summary.chunks_written or summary.deleted:
            refresh_lexeme_stats(conn, min_changed=summary.chunks_written + summary.deleted)
        if summary.chunks_written >= 5000:
            with conn.transaction():
                conn.execute("ANALYZE memory_documents, memory_chunks, memory_embeddings")
    bar.update(len(docs), len(docs), summary, final=True)
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _scope(dom: MemoryDomain, visibility: str | None, owner: int | None, campaign: int | None) -> Scope:
    vis = visibility or dom.visibility
    if vis == "shared":
        if owner is not None or campaign is not None:
            raise IngestError("shared documents have no owner or campaign (use --visibility user/campaign)")
        return Scope("shared")
    if vis == "user":
        if owner is None or campaign is not None:
            raise IngestError("user-owned documents need an owner user id (--user ID) and no campaign")
        return Scope("user", owner_user_id=owner)
    if vis == "campaign":
        if campaign is None:
            raise IngestError("campaign documents need a campaign id (--campaign ID)")
        return Scope("campaign", owner_user_id=owner, campaign_id=campaign)
    raise IngestError(f"visibility {vis!r} is not one of shared, user, campaign")


def _check_scope(conn: psycopg.Connection[Any], scope: Scope) -> None:
    params = {"campaign_id": scope.campaign_id, "owner_user_id": scope.owner_user_id}
    if scope.campaign_id is not None and not _fetch(conn, CAMPAIGN_EXISTS, params):
        raise IngestError(f"campaign {scope.campaign_id} does not exist")
    if scope.owner_user_id is not None and not _fetch(conn, USER_EXISTS, params):
        raise IngestError(f"user {scope.owner_user_id} does not exist")


def _prepare(doc: SourceDocument, lang: str | None, dom: MemoryDomain, cfg: MemorySection) -> _Prepared:
    chosen = (doc.lang or lang or detect_lang(doc.text, dom.default_lang, cfg)).lower()
    chunks = chunk_document(doc.title, doc.text, dom.chunking, markdown=doc.markdown)
    return _Prepared(doc, chosen, ts_config_for(chosen, cfg), document_hash(doc, chosen, dom), chunks)


def _groups(docs: list[_Prepared], group_chunks: int) -> Iterator[list[_Prepared]]:
    group: list[_Prepared] = []
    size = 0
    for d in docs:
        group.append(d)
        size += max(1, len(d.chunks))
        if size >= group_chunks:
            yield group
            group, size = [], 0
    if group:
        yield group


def _write_group(
    conn: psycopg.Connection[Any],
    group: list[_Prepared],
    domain: str,
    scope: Scope,
    embedder: Embedder,
    cfg: MemorySection,
    summary: IngestSummary,
) -> None:
    from psycopg.types.json import Jsonb

    base = {
        "domain": domain,
        "visibility": scope.visibility,
        "owner_user_id": scope.owner_user_id,
        "campaign_id": scope.campaign_id,
        "model": embedder.model,
    }
    with conn.transaction():
        conn.execute(INGEST_LOCK, {"domain": domain})
        existing = {
            sid: (doc_id, chash, src, when)
            for doc_id, sid, chash, src, when in _fetch(
                conn, EXISTING_DOCUMENTS, base | {"source_ids": [p.doc.source_id for p in group]}
            )
        }
        old_chunks: dict[int, list[tuple[int, str, bool]]] = defaultdict(list)
        if existing:
            for cid, doc_id, chash, has_vec in _fetch(
                conn, EXISTING_CHUNKS, base | {"document_ids": [v[0] for v in existing.values()]}
            ):
                old_chunks[doc_id].append((cid, chash, has_vec))

        # Plan each document: unchanged, or which chunks to keep / delete / add / (re)embed.
        plans: list[tuple[_Prepared, list[int | None], list[int]]] = []
        need_vectors: set[str] = set()
        for p in group:
            summary.chunks += len(p.chunks)
            old = existing.get(p.doc.source_id)
            olds = old_chunks.get(old[0], []) if old else []
            if (
                old
                and old[1] == p.content_hash
                and len(olds) == len(p.chunks)
                and all(hv for _, _, hv in olds)
            ):
                summary.skipped += 1
                if old[2] != p.doc.source:
                    conn.execute(
                        "UPDATE memory_documents SET source = %s WHERE id = %s", (p.doc.source, old[0])
                    )
                continue
            by_hash: dict[str, list[tuple[int, bool]]] = defaultdict(list)
            for cid, chash, hv in olds:
                by_hash[chash].append((cid, hv))
            keep: list[int | None] = []
            for ch in p.chunks:
                bucket = by_hash.get(ch.content_hash)
                if bucket:
                    cid, hv = bucket.pop(0)
                    keep.append(cid)
                    if not hv:
                        need_vectors.add(ch.content_hash)
                else:
                    keep.append(None)
                    need_vectors.add(ch.content_hash)
            stale = [cid for lst in by_hash.values() for cid, _ in lst]
            plans.append((p, keep, stale))
        if not plans:
            return

        texts = {ch.content_hash: ch.embed_text for p, _, _ in plans for ch in p.chunks}
        vectors = _vectors_for(conn, {h: texts[h] for h in sorted(need_vectors)}, embedder, cfg, summary)

        records = []
        for p, _, _ in plans:
            old = existing.get(p.doc.source_id)
            when = p.doc.date or (old[3] if old else None)  # an undated document keeps its first date
            records.append(
                {
                    "source": p.doc.source,
                    "source_id": p.doc.source_id,
                    "title": p.doc.title,
                    "lang": p.lang,
                    "ts_config": p.ts_config,
                    "tags": p.doc.tags,
                    "meta": p.doc.meta,
                    "content_hash": p.content_hash,
                    "doc_date": when.isoformat() if when else None,
                }
            )
        ids_by_source = {
            sid: int(doc_id)
            for doc_id, sid in _fetch(conn, UPSERT_DOCUMENTS, base | {"docs": Jsonb(records)})
        }
        new_rows: list[tuple[Any, ...]] = []
        doc_ids: list[int] = []
        for p, keep, stale in plans:
            doc_id = ids_by_source[p.doc.source_id]
            doc_ids.append(doc_id)
            if stale:
                conn.execute(DELETE_CHUNKS, {"ids": stale})
            kept = [(cid, ch.position) for cid, ch in zip(keep, p.chunks, strict=True) if cid is not None]
            if kept:
                conn.execute(
                    MOVE_CHUNKS,
                    {
                        "ids": [k for k, _ in kept],
                        "positions": [pos for _, pos in kept],
                        "ts_config": p.ts_config,
                    },
                )
            for cid, ch in zip(keep, p.chunks, strict=True):
                if cid is None:
                    new_rows.append(
                        (
                            doc_id,
                            ch.position,
                            ch.heading,
                            ch.text,
                            ch.token_count,
                            ch.content_hash,
                            p.ts_config,
                        )
                    )
            summary.written += 1

        with conn.cursor() as cur:
            if new_rows:
                with cur.copy(COPY_CHUNKS) as copy:
                    for r in new_rows:
                        copy.write_row(r)
                summary.chunks_written += len(new_rows)
            # Every chunk of the written documents that lacks this model's vector gets one now.
            missing = _fetch(
                conn,
                """SELECT c.id, c.document_id, c.content_hash FROM memory_chunks c
                   LEFT JOIN memory_embeddings e ON e.chunk_id = c.id AND e.model = %(model)s
                   WHERE c.document_id = ANY(%(document_ids)s) AND e.chunk_id IS NULL""",
                base | {"document_ids": doc_ids},
            )
            with cur.copy(COPY_EMBEDDINGS) as copy:
                copy.set_types(["int8", "text", "int8", "bytea"])  # the vector goes as its binary form
                for cid, doc_id, chash in missing:
                    vec = vectors.get(chash)
                    if vec is None:  # pragma: no cover - planning and writing disagree: fail the group
                        raise IngestError(f"no vector planned for chunk {cid}")
                    copy.write_row((cid, embedder.model, doc_id, vec))


def _vectors_for(
    conn: psycopg.Connection[Any],
    texts: dict[str, str],
    embedder: Embedder,
    cfg: MemorySection,
    summary: IngestSummary,
) -> dict[str, bytes]:
    """Binary vector per chunk hash: copied from an identical stored chunk, else embedded now."""
    out: dict[str, bytes] = {}
    if not texts:
        return out
    for chash, vec in _fetch(conn, REUSABLE_VECTORS, {"model": embedder.model, "hashes": list(texts)}):
        out[chash] = bytes(vec)
    summary.reused += len(out)
    todo = [h for h in texts if h not in out]
    expected = _model_dimension(conn, embedder.model)
    batch = cfg.embed_batch_size
    for start in range(0, len(todo), batch):
        hashes = todo[start : start + batch]
        vectors = embedder.embed([texts[h] for h in hashes])
        if len(vectors) != len(hashes):
            raise EmbeddingError(f"{embedder.model}: asked for {len(hashes)} vectors, got {len(vectors)}")
        for h, v in zip(hashes, vectors, strict=True):
            if expected is None:
                expected = len(v)
                _register_model(conn, embedder.model, expected)
            if len(v) != expected:
                raise IngestError(
                    f"model {embedder.model!r} is recorded with dimension {expected} but produced {len(v)}"
                )
            out[h] = vector_bytes(v)
        summary.embedded += len(hashes)
    return out


def _model_dimension(conn: psycopg.Connection[Any], model: str) -> int | None:
    rows = _fetch(conn, MODEL_ROW, {"model": model})
    return int(rows[0][0]) if rows else None


def _register_model(conn: psycopg.Connection[Any], model: str, dimension: int) -> None:
    conn.execute(REGISTER_MODEL, {"model": model, "dimension": dimension})
    found = _model_dimension(conn, model)
    if found != dimension:
        raise IngestError(f"model {model!r} is recorded with dimension {found}, not {dimension}")


def ensure_hnsw_index(
    conn: psycopg.Connection[Any], model: str, cfg: MemorySection | None = None
) -> str | None:
    """Create the model's partial HNSW index if it does not exist yet; returns its name when created."""
    from psycopg import sql

    cfg = cfg or memory_config()
    rows = _fetch(conn, MODEL_ROW, {"model": model})
    if not rows:
        return None
    dimension, recorded = int(rows[0][0]), rows[0][1]
    name = hnsw_index_name(model, dimension)
    present = _fetch(conn, "SELECT to_regclass(%(name)s) IS NOT NULL", {"name": name})[0][0]
    if recorded == name and present:
        return None
    with conn.transaction():
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {name} ON memory_embeddings "
                "USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
                "WITH (m = {m}, ef_construction = {ef}) "
                "WHERE model = {model}"
            ).format(
                name=sql.Identifier(name),
                dim=sql.Literal(dimension),
                m=sql.Literal(cfg.dense.hnsw_m),
                ef=sql.Literal(cfg.dense.hnsw_ef_construction),
                model=sql.Literal(model),
            )
        )
        conn.execute(
            "UPDATE memory_models SET index_name = %(name)s, indexed_at = now() WHERE model = %(model)s",
            {"name": name, "model": model},
        )
    return None if present else name


LEXEME_TOTALS = "SELECT chunks FROM memory_lexeme_totals"
REFRESH_LEXEMES = (
    "DELETE FROM memory_lexemes",
    "INSERT INTO memory_lexemes (lexeme, ndoc) "
    "SELECT word, ndoc FROM ts_stat('SELECT tsv FROM memory_chunks')",
    """INSERT INTO memory_lexeme_totals (id, chunks, refreshed_at)
       VALUES (true, (SELECT count(*) FROM memory_chunks), now())
       ON CONFLICT (id) DO UPDATE SET chunks = EXCLUDED.chunks, refreshed_at = now()""",
)


def refresh_lexeme_stats(conn: psycopg.Connection[Any], *, min_changed: int = 0) -> bool:
    """Recount lexeme document frequencies when ``min_changed`` chunks are at least 10 % of the corpus
    (or there are no statistics yet). Small incremental ingests leave them as they are: they only steer
    which query words the keyword search matches on."""
    rows = _fetch(conn, LEXEME_TOTALS, {})
    if rows and min_changed < max(1, int(rows[0][0]) // 10):
        return False
    with conn.transaction():
        conn.execute("LOCK TABLE memory_lexemes IN EXCLUSIVE MODE")
        for statement in REFRESH_LEXEMES:
            conn.execute(statement)
    return True


def _prune(
    conn: psycopg.Connection[Any],
    domain: str,
    scope: Scope,
    root_label: str,
    single_file: bool,
    seen: set[str],
    failed: set[str],
) -> int:
    prefix = None if single_file else root_label.rstrip("/") + "/"
    with conn.transaction():
        conn.execute(INGEST_LOCK, {"domain": domain})
        rows = _fetch(
            conn,
            PRUNE,
            {
                "domain": domain,
                "visibility": scope.visibility,
                "owner_user_id": scope.owner_user_id,
                "campaign_id": scope.campaign_id,
                "root": root_label,
                "prefix": prefix,
                "seen": sorted(seen),
                "failed": sorted(failed),
            },
        )
    return len(rows)
