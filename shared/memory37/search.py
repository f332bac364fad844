"""Hybrid search: dense (HNSW, cosine) + keyword (full text) → weighted RRF → optional rerank.

One function, ``search_memory``, behind ``hybrid search``, ``POST /v1/memory/search`` and genlayers'
retrieval. Every query path — dense, keyword, the exact-search fallback and the final row fetch — carries
the same scope predicate: shared documents, plus the caller's own and those of campaigns the caller is a
member of. ``user_id=None`` sees shared knowledge only.

Dense: the query vector against the model's partial HNSW index, with ``hnsw.iterative_scan`` so a filter
does not starve the result, and an exact scan when the filters leave few vectors (so a filtered query
returns k hits whenever k rows match). Keyword: precomputed tsvector columns with GIN; the query is parsed
with every configured language (each document was indexed with its own) as an OR of its lexemes for
natural-language questions, or by ``websearch_to_tsquery`` when it uses quotes, ``or`` or ``-word``; names
(capitalised words) also match unstemmed through the ``simple`` column. Only the matching rows are
ranked, and only the top candidates leave the database.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.config.models import MemorySection
from shared.memory37.domains import get_domain, memory_config, search_configs
from shared.providers.embeddings import Embedder, EmbeddingError
from shared.providers.rerank import Reranker

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

log = logging.getLogger(__name__)

MAX_TOP_K = 100
Tag = Field(min_length=1, max_length=100)


class InvalidQuery(ValueError):
    """The request is malformed (empty or oversized query, top_k out of range, bad filters)."""


class ModelNotIndexed(EmbeddingError):
    """The embedder's model has no vectors stored: the corpus must be ingested with it first."""


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tags_any: list[str] | None = Field(default=None, max_length=50)
    tags_all: list[str] | None = Field(default=None, max_length=50)
    lang: list[str] | None = Field(default=None, max_length=20)
    date_from: datetime | None = None
    date_to: datetime | None = None
    campaign_id: int | None = Field(default=None, ge=1)
    visibility: list[Literal["shared", "user", "campaign"]] | None = Field(default=None, max_length=3)

    @field_validator("lang", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("tags_any", "tags_all", "lang")
    @classmethod
    def _short_strings(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for item in value:
            if not item.strip() or len(item) > 100:
                raise ValueError("items must be non-empty strings of at most 100 characters")
        return value

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _dates(cls, value: Any, info: Any) -> Any:
        # A bare date: the whole day (date_from at 00:00, date_to up to the end of the day).
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            value = date.fromisoformat(value.strip())
        if isinstance(value, date) and not isinstance(value, datetime):
            start = datetime.combine(value, dtime.min, tzinfo=UTC)
            return start if info.field_name == "date_from" else start + timedelta(days=1, microseconds=-1)
        return value

    @field_validator("date_from", "date_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _range(self) -> SearchFilters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self


@dataclass
class Hit:
    doc_id: str  # the source id (JSONL id or relative path)
    chunk_id: int
    title: str
    text: str
    score: float
    domain: str = ""
    heading: str = ""
    position: int = 0
    lang: str = ""
    tags: list[str] = field(default_factory=list)
    visibility: str = ""
    dense_rank: int | None = None
    keyword_rank: int | None = None
    fused_score: float | None = None
    rerank_score: float | None = None

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not explain:
            for key in ("dense_rank", "keyword_rank", "fused_score", "rerank_score"):
                out.pop(key)
        return out


# --- SQL ---------------------------------------------------------------------------------------------
SCOPE_PREDICATE = """(d.visibility = 'shared'
    OR (d.visibility = 'user' AND d.owner_user_id = %(user_id)s)
    OR (d.visibility = 'campaign' AND d.campaign_id IN (
        SELECT m.campaign_id FROM memory_campaign_members m WHERE m.user_id = %(user_id)s)))"""

MODEL_DIMENSION = "SELECT dimension FROM memory_models WHERE model = %(model)s"

# Round trip 1: the transaction's HNSW settings, how many vectors the filters leave (up to the exact-search
# threshold) and the query's lexemes with their document frequencies.
PREPARE = """SELECT set_config('hnsw.ef_search', %(ef_search)s, true),
       set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s, true),
       (SELECT count(*) FROM (
            SELECT 1 FROM memory_embeddings e JOIN memory_documents d ON d.id = e.document_id
            WHERE e.model = {model} AND {where}
            LIMIT %(probe)s) AS probe),
       {lexemes},
       (SELECT chunks FROM memory_lexeme_totals)"""

QUERY_LEXEMES = """(SELECT coalesce(json_agg(json_build_array(src, lexeme, ndoc)), '[]'::json) FROM (
    SELECT 'lang' AS src, l.lexeme, coalesce(s.ndoc, 0) AS ndoc
    FROM (SELECT DISTINCT unnest(tsvector_to_array({lang_tsv})) AS lexeme) l
    LEFT JOIN memory_lexemes s ON s.lexeme = l.lexeme
    UNION ALL
    SELECT 'name', n.lexeme, coalesce(s.ndoc, 0)
    FROM (SELECT DISTINCT unnest(memory_name_lexemes(%(names)s, {cfgs}::regconfig[])) AS lexeme) n
    LEFT JOIN memory_lexemes s ON s.lexeme = n.lexeme) AS lx)"""

DENSE = """SELECT e.chunk_id AS id, e.embedding::vector({dim}) <=> %(qvec)s::vector({dim}) AS score
    FROM memory_embeddings e JOIN memory_documents d ON d.id = e.document_id
    WHERE e.model = {model} AND {where}
    ORDER BY {order}
    LIMIT %(limit)s"""

# Filters first: for selective filters (few rows pass), the documents lead and only their chunks are ranked.
KEYWORD = """SELECT id, {rank} AS score FROM (
        SELECT c.id, c.tsv, c.tsv_simple
        FROM memory_chunks c JOIN memory_documents d ON d.id = c.document_id
        WHERE ({match}) AND {where}
        LIMIT %(max_rows)s) AS c
    ORDER BY score DESC, id
    LIMIT %(limit)s"""

# Rank first: when most rows pass the filters, rank the matching chunks alone, keep the best few times the
# list, and check those against the filters (no join over every match). A short list falls back to KEYWORD.
KEYWORD_RANK_FIRST = """SELECT r.id, r.score FROM (
        SELECT c.id, c.document_id, {rank} AS score FROM (
            SELECT c.id, c.document_id, c.tsv, c.tsv_simple FROM memory_chunks c
            WHERE {match}
            LIMIT %(max_rows)s) AS c
        ORDER BY score DESC, c.id
        LIMIT %(overfetch)s) AS r
    JOIN memory_documents d ON d.id = r.document_id
    WHERE {where}
    ORDER BY r.score DESC, r.id
    LIMIT %(limit)s"""

# Round trip 2: both candidate lists with everything a hit shows, scope checked again on the way out.
CANDIDATES = (
    """SELECT x.side, x.id, x.score, c.heading, c.text, c.position, d.source_id, d.title, d.domain,
       d.lang, d.tags, d.visibility
FROM ({sides}) AS x
JOIN memory_chunks c ON c.id = x.id JOIN memory_documents d ON d.id = c.document_id
WHERE """
    + SCOPE_PREDICATE
)

_WEBSEARCH_SYNTAX = re.compile(r'"[^"]+"|(?:^|\s)-\w|\s(?i:or)\s')
_NAME = re.compile(r"(?<![\w'’])[A-ZА-ЯЁ][\w'’-]*")


def _rows(conn: psycopg.Connection[Any], query: Any, params: dict[str, Any]) -> list[Any]:
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def validate_request(
    *, domains: list[str], query: str, top_k: int, filters: Any, cfg: MemorySection
) -> SearchFilters:
    if not isinstance(query, str) or not query.strip():
        raise InvalidQuery("query must not be empty")
    if len(query) > cfg.max_query_chars:
        raise InvalidQuery(f"query is longer than {cfg.max_query_chars} characters")
    if "\x00" in query:
        raise InvalidQuery("query must not contain NUL characters")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidQuery(f"top_k must be an integer from 1 to {MAX_TOP_K}")
    if not domains:
        raise InvalidQuery("at least one domain is required")
    for d in domains:
        get_domain(d, cfg)  # UnknownDomain (a ValueError) names the configured ones
    if filters is None:
        return SearchFilters()
    if isinstance(filters, SearchFilters):
        return filters
    try:
        return SearchFilters.model_validate(filters)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "filters"
        raise InvalidQuery(f"filters.{where}: {first['msg']}") from exc


def _where(domains: list[str], f: SearchFilters, params: dict[str, Any]) -> sql.Composable:
    from psycopg import sql

    parts = [sql.SQL("d.domain = ANY(%(domains)s)"), sql.SQL(SCOPE_PREDICATE)]
    params["domains"] = domains
    if f.tags_any:
        parts.append(sql.SQL("d.tags && %(tags_any)s::text[]"))
        params["tags_any"] = f.tags_any
    if f.tags_all:
        parts.append(sql.SQL("d.tags @> %(tags_all)s::text[]"))
        params["tags_all"] = f.tags_all
    if f.lang:
        parts.append(sql.SQL("d.lang = ANY(%(langs)s)"))
        params["langs"] = [x.lower() for x in f.lang]
    if f.date_from:
        parts.append(sql.SQL("d.doc_date >= %(date_from)s"))
        params["date_from"] = f.date_from
    if f.date_to:
        parts.append(sql.SQL("d.doc_date <= %(date_to)s"))
        params["date_to"] = f.date_to
    if f.campaign_id is not None:
        parts.append(sql.SQL("d.campaign_id = %(campaign_id)s"))
        params["campaign_id"] = f.campaign_id
    if f.visibility:
        parts.append(sql.SQL("d.visibility = ANY(%(visibility)s)"))
        params["visibility"] = list(f.visibility)
    return sql.SQL(" AND ").join(parts)


def tsquery_literal(lexeme: str) -> str:
    """A lexeme as a quoted tsquery operand (backslashes and quotes escaped)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def lexeme_sql(cfg: MemorySection) -> sql.Composable:
    from psycopg import sql

    configs = search_configs(cfg)
    lang_tsv = sql.SQL(" || ").join(
        sql.SQL("to_tsvector({c}::regconfig, %(q)s)").format(c=sql.Literal(c)) for c in configs
    )
    return sql.SQL(QUERY_LEXEMES).format(lang_tsv=lang_tsv, cfgs=sql.Literal(configs))


def keyword_query(
    lexemes: list[Any] | None, query: str, cfg: MemorySection, *, total_chunks: int | None = None
) -> tuple[sql.Composable, sql.Composable, dict[str, Any]] | None:
    """(match predicate, rank expression, params) for the keyword side; None when the query has no words.

    Natural-language questions: an OR of the query's lexemes (every configured language's stemming),
    keeping only the rarest ones whose document frequencies add up to ``keyword.max_ranked_rows`` — the
    rarest always — and dropping words in more than ``keyword.max_df`` of all chunks (they separate
    nothing, like stop words), plus unstemmed names against ``tsv_simple``. With quotes, ``or`` or ``-word``:
    ``websearch_to_tsquery`` as written.
    """
    from psycopg import sql

    configs = search_configs(cfg)
    params: dict[str, Any] = {"q": query, "max_rows": cfg.keyword.max_ranked_rows * 4}
    if _WEBSEARCH_SYNTAX.search(query):
        tq = sql.SQL("({})").format(
            sql.SQL(" || ").join(
                sql.SQL("websearch_to_tsquery({c}::regconfig, %(q)s)").format(c=sql.Literal(c))
                for c in configs
            )
        )
        return (
            sql.SQL("c.tsv @@ {tq}").format(tq=tq),
            sql.SQL("ts_rank(c.tsv, {tq}, 1)").format(tq=tq),
            params,
        )
    rows = lexemes if lexemes is not None else []
    terms = sorted(((int(nd), src, lex) for src, lex, nd in rows), key=lambda t: (t[0], t[2]))
    if not terms:
        return None
    common = max(cfg.keyword.min_common_rows, int(cfg.keyword.max_df * (total_chunks or 0)))
    if total_chunks and any(nd <= common for nd, _, _ in terms):
        terms = [t for t in terms if t[0] <= common]
    budget, used = cfg.keyword.max_ranked_rows, 0
    lang: list[str] = []
    names: list[str] = []
    for ndoc, src, lex in terms:
        if used and used + ndoc > budget:
            break
        (lang if src == "lang" else names).append(lex)
        used += ndoc
    all_lang = [lex for _, src, lex in terms if src == "lang"]
    if used > budget and len(all_lang) > 1:
        # Even the rarest word is common: require every word instead (an intersection is small).
        lang, names = all_lang, []
        params["tq"] = " & ".join(tsquery_literal(x) for x in sorted(all_lang))
    elif lang:
        params["tq"] = " | ".join(tsquery_literal(x) for x in lang)
    match: list[sql.Composable] = []
    rank: list[sql.Composable] = []
    if lang:
        match.append(sql.SQL("c.tsv @@ %(tq)s::tsquery"))
        rank.append(sql.SQL("ts_rank(c.tsv, %(tq)s::tsquery, 1)"))
    if names:
        params["nq"] = " | ".join(tsquery_literal(x) for x in names)
        match.append(sql.SQL("c.tsv_simple @@ %(nq)s::tsquery"))
        rank.append(
            sql.SQL("{w} * ts_rank(c.tsv_simple, %(nq)s::tsquery, 1)").format(
                w=sql.Literal(cfg.keyword.names_weight)
            )
        )
    return sql.SQL(" OR ").join(match), sql.SQL(" + ").join(rank), params


def search_memory(
    conn: psycopg.Connection[Any],
    *,
    user_id: int | None,
    domains: list[str],
    query: str,
    top_k: int = 10,
    filters: dict[str, Any] | SearchFilters | None = None,
    explain: bool = False,
    embedder: Embedder | None = None,
    reranker: Reranker | None = None,
    rerank: bool = True,
    timings: dict[str, float] | None = None,
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid",
) -> list[Hit]:
    """Hybrid search over ``domains`` as ``user_id`` sees them; best first, at most ``top_k`` hits.

    ``embedder`` / ``reranker`` default to the configured ones (``rerank=False`` skips reranking).
    Raises ``InvalidQuery`` / ``UnknownDomain`` for a bad request and ``ModelNotIndexed`` when the
    embedder's model has no stored vectors. ``timings`` (when given) receives milliseconds per stage.
    ``mode`` ``dense`` / ``keyword`` runs one side only (benchmarks, diagnostics).
    """
    from psycopg import sql

    cfg = memory_config()
    f = validate_request(domains=domains, query=query, top_k=top_k, filters=filters, cfg=cfg)
    if embedder is None:
        from shared.providers.factory import build_embedder

        embedder = build_embedder()
    if reranker is None and rerank:
        from shared.providers.factory import build_reranker

        reranker = build_reranker()
    if not rerank:
        reranker = None
    clock = time.perf_counter
    t0 = clock()
    dim = _model_dimension(conn, embedder.model)
    candidates = max(cfg.fusion.candidates, top_k)
    params: dict[str, Any] = {"user_id": user_id, "limit": candidates, "q": query}
    where = _where(domains, f, params)
    qvec = embedder.embed_query(query) if mode != "keyword" else [0.0] * dim
    if len(qvec) != dim:
        raise ModelNotIndexed(f"model {embedder.model!r} is stored with dimension {dim}, got {len(qvec)}")
    params["qvec"] = "[" + ",".join(format(float(x), ".7g") for x in qvec) + "]"
    t_embed = clock()
    fmt = {"dim": sql.Literal(dim), "model": sql.Literal(embedder.model), "where": where}
    websearch = bool(_WEBSEARCH_SYNTAX.search(query))
    params |= {
        "ef_search": str(max(cfg.dense.ef_search, candidates)),
        "max_scan_tuples": str(cfg.dense.max_scan_tuples),
        "probe": max(1, cfg.dense.exact_below),
        "names": " ".join(_NAME.findall(query)),
    }
    with conn.transaction():
        lexemes_sql = sql.SQL("NULL::json") if websearch or mode == "dense" else lexeme_sql(cfg)
        prep = _rows(conn, sql.SQL(PREPARE).format(lexemes=lexemes_sql, **fmt), params)[0]
        exact = cfg.dense.exact_below > 0 and int(prep[3]) < cfg.dense.exact_below
        plan = keyword_query(prep[4], query, cfg, total_chunks=prep[5]) if mode != "dense" else None
        t_prepare = clock()
        rank_first = not exact  # the filters keep most rows: rank the matches, then check the filters
        if plan is not None:
            params |= plan[2] | {"overfetch": candidates * 4}
        rows: list[Any] = []
        for _attempt in range(2):
            sides: list[sql.Composable] = []
            if mode != "keyword":
                sides.append(
                    sql.SQL("SELECT 'd' AS side, id, score FROM ({q}) AS dense").format(
                        q=_dense_sql(fmt, exact)
                    )
                )
            if plan is not None:
                template = KEYWORD_RANK_FIRST if rank_first else KEYWORD
                sides.append(
                    sql.SQL("SELECT 'k' AS side, id, score FROM ({q}) AS kw").format(
                        q=sql.SQL(template).format(rank=plan[1], match=plan[0], where=where)
                    )
                )
            if not sides:
                break
            rows = _rows(conn, sql.SQL(CANDIDATES).format(sides=sql.SQL(" UNION ALL ").join(sides)), params)
            retry = False
            if mode != "keyword" and not exact and sum(1 for r in rows if r[0] == "d") < candidates:
                exact = retry = True  # the index scan stopped short (max_scan_tuples): exact over the filter
            if plan is not None and rank_first and sum(1 for r in rows if r[0] == "k") < candidates:
                rank_first, retry = False, True  # the filters dropped too many of the best matches
            if not retry:
                break
    t_fetch = clock()

    details: dict[int, Any] = {}
    dense_rows = sorted((float(r[2]), int(r[1])) for r in rows if r[0] == "d")  # relaxed order → strict
    kw_rows = sorted((-float(r[2]), int(r[1])) for r in rows if r[0] == "k")
    for r in rows:
        details[int(r[1])] = r
    dense = [cid for _, cid in dense_rows]
    keyword = [cid for _, cid in kw_rows]
    fused = fuse(tied_ranks(dense_rows), tied_ranks(kw_rows), cfg)
    n_rerank = min(cfg.rerank.top_n, len(fused)) if reranker is not None else 0
    dense_rank = {cid: i for i, cid in enumerate(dense, 1)}
    kw_rank = {cid: i for i, cid in enumerate(keyword, 1)}
    hits: list[Hit] = []
    for cid, score in fused[: max(top_k, n_rerank)]:
        r = details[cid]
        hits.append(
            Hit(
                doc_id=r[6],
                chunk_id=cid,
                title=r[7],
                text=r[4],
                score=round(score, 6),
                domain=r[8],
                heading=r[3],
                position=int(r[5]),
                lang=r[9],
                tags=list(r[10] or []),
                visibility=r[11],
                dense_rank=dense_rank.get(cid),
                keyword_rank=kw_rank.get(cid),
                fused_score=round(score, 6),
            )
        )
    t_fused = clock()
    if reranker is not None and hits:
        hits = _rerank(reranker, query, hits, n_rerank)
    if timings is not None:
        t_end = clock()
        timings.update(
            embed_ms=(t_embed - t0) * 1000,
            prepare_ms=(t_prepare - t_embed) * 1000,
            candidates_ms=(t_fetch - t_prepare) * 1000,
            fuse_ms=(t_fused - t_fetch) * 1000,
            rerank_ms=(t_end - t_fused) * 1000,
            total_ms=(t_end - t0) * 1000,
        )
    return hits[:top_k]


_dimensions: dict[str, int] = {}


def _model_dimension(conn: psycopg.Connection[Any], model: str) -> int:
    """The stored dimension of ``model``; cached once found (a model's dimension never changes)."""
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}/{model}"
    if key in _dimensions:
        return _dimensions[key]
    found = _rows(conn, MODEL_DIMENSION, {"model": model})
    if not found:
        raise ModelNotIndexed(
            f"no vectors are stored for embedding model {model!r}: "
            "ingest the corpus with this model first (hybrid ingest)"
        )
    _dimensions[key] = int(found[0][0])
    return _dimensions[key]


def _dense_sql(fmt: dict[str, sql.Composable], exact: bool) -> sql.Composable:
    """Cosine order through the model's HNSW index, or (``exact``) an order the index cannot serve."""
    from psycopg import sql

    dim = fmt["dim"]
    order = (
        sql.SQL("(e.embedding::vector({dim}) <=> %(qvec)s::vector({dim})) + 0")
        if exact
        else sql.SQL("e.embedding::vector({dim}) <=> %(qvec)s::vector({dim})")
    ).format(dim=dim)
    return sql.SQL(DENSE).format(order=order, **fmt)


def tied_ranks(scored: list[tuple[float, int]]) -> dict[int, float]:
    """1-based ranks of ``(sort key, id)`` pairs sorted best first; equal keys share their average rank.

    A run of equal keyword scores (say, every chunk that names the same character) is in no real order,
    so none of its members should get a better rank than the others just by coming first.
    """
    ranks: dict[int, float] = {}
    i = 0
    while i < len(scored):
        j = i
        while j + 1 < len(scored) and scored[j + 1][0] == scored[i][0]:
            j += 1
        avg = (i + j) / 2 + 1
        for _, cid in scored[i : j + 1]:
            ranks[cid] = avg
        i = j + 1
    return ranks


def fuse(
    dense: list[int] | dict[int, float], keyword: list[int] | dict[int, float], cfg: MemorySection
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: score = sum(weight / (k + rank)) over the lists a chunk is in.

    Lists are chunk ids best first, or ``{id: rank}`` with tied ranks. Equal fused scores go to the better
    keyword rank (a lexical match is direct evidence; a nearest neighbour always exists), then the better
    dense rank, then the lower chunk id.
    """
    k, wd, wk = cfg.fusion.k, cfg.fusion.dense_weight, cfg.fusion.keyword_weight
    d = dense if isinstance(dense, dict) else {cid: float(i) for i, cid in enumerate(dense, 1)}
    kw = keyword if isinstance(keyword, dict) else {cid: float(i) for i, cid in enumerate(keyword, 1)}
    scores: dict[int, float] = {}
    for cid, rank in d.items():
        scores[cid] = scores.get(cid, 0.0) + wd / (k + rank)
    for cid, rank in kw.items():
        scores[cid] = scores.get(cid, 0.0) + wk / (k + rank)
    inf = float("inf")
    return sorted(scores.items(), key=lambda kv: (-kv[1], kw.get(kv[0], inf), d.get(kv[0], inf), kv[0]))


def _rerank(reranker: Reranker, query: str, hits: list[Hit], n: int) -> list[Hit]:
    head, tail = hits[:n], hits[n:]
    try:
        results = reranker.rerank(query, [f"{h.heading}\n{h.text}" if h.heading else h.text for h in head])
    except Exception as exc:  # a failing reranker degrades to fusion order, it does not fail the search
        log.warning("rerank failed, keeping fusion order: %s", exc)
        return hits
    ordered: list[Hit] = []
    for r in results:
        h = head[r.index]
        h.rerank_score = round(float(r.score), 6)
        h.score = h.rerank_score
        ordered.append(h)
    seen = {id(h) for h in ordered}
    ordered.extend(h for h in head if id(h) not in seen)
    for h in tail:
        h.score = min(h.score, min((x.score for x in ordered), default=h.score))
    return ordered + tail
