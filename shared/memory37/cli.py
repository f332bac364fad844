"""``hybrid ingest``, ``hybrid search`` and ``hybrid campaign``; the sample knowledge at ``hybrid serve``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from shared.cli.main import command, serve_hook

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_DOMAINS = ("lore", "srd")


def _url() -> str:
    from shared.db.connection import resolve_url

    return resolve_url()


def _embedder(name: str | None) -> Any:
    from shared.providers.factory import build_embedder

    return build_embedder(name)


# --- ingest ------------------------------------------------------------------------------------------
def _ingest(args: argparse.Namespace) -> int:
    from shared.memory37.etl import IngestError, ingest_path
    from shared.providers.embeddings import EmbeddingError

    try:
        summary = ingest_path(
            _url(),
            domain=args.domain,
            source=Path(args.source),
            lang=args.lang,
            prune=args.prune,
            embedder=_embedder(args.embedder),
            progress=not args.quiet,
            visibility=args.visibility,
            owner_user_id=args.user,
            campaign_id=args.campaign,
        )
    except (IngestError, EmbeddingError) as exc:
        print(f"hybrid ingest: error: {exc}", file=sys.stderr)
        return 2
    for err in summary.errors:
        where = f"{err['file']}:{err['line']}" if err.get("line") else err["file"]
        print(f"hybrid ingest: {where}: {err['error']}", file=sys.stderr)
    print(json.dumps(summary.to_dict(), ensure_ascii=False))
    return 1 if summary.errors else 0


@command
def _register_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="ingest a file or folder (Markdown, text, JSONL) into a memory domain")
    p.add_argument("--domain", required=True, help="a configured domain (memory.domains in logic.yaml)")
    p.add_argument("--source", required=True, help="a file or a folder")
    p.add_argument("--lang", help="language of documents that do not name one (default: detected/domain)")
    p.add_argument("--prune", action="store_true", help="delete documents that are gone from the source")
    p.add_argument("--visibility", choices=["shared", "user", "campaign"], help="default: the domain's")
    p.add_argument("--user", type=int, help="owner user id (visibility user)")
    p.add_argument("--campaign", type=int, help="campaign id (visibility campaign)")
    p.add_argument("--embedder", help="embedding provider name (default: llm.embedding_provider)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_ingest)


# --- search ------------------------------------------------------------------------------------------
def _read_queries(path: str) -> list[dict[str, Any]]:
    out = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"hybrid search: {path}:{lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            raise SystemExit(f"hybrid search: {path}:{lineno}: a line needs a string 'query' field")
        out.append(item)
    return out


def _search(args: argparse.Namespace) -> int:
    import psycopg

    from shared.memory37.domains import UnknownDomain
    from shared.memory37.search import InvalidQuery, ModelNotIndexed, search_memory
    from shared.providers.factory import build_reranker

    if (args.query is None) == (args.queries is None):
        print("hybrid search: give exactly one of --query or --queries", file=sys.stderr)
        return 2
    domains = [d for part in args.domain for d in part.split(",") if d]
    filters = json.loads(args.filters) if args.filters else None
    items = [{"query": args.query}] if args.query is not None else _read_queries(args.queries)
    embedder = _embedder(args.embedder)  # built once: the model loads once for every query
    reranker = None if args.no_rerank else build_reranker()
    results: list[list[dict[str, Any]]] = []
    with psycopg.connect(_url(), autocommit=True, prepare_threshold=None) as conn:
        for item in items:
            try:
                hits = search_memory(
                    conn,
                    user_id=args.user,
                    domains=item.get("domains") or domains,
                    query=item["query"],
                    top_k=int(item.get("top_k", args.top_k)),
                    filters=item.get("filters", filters),
                    explain=args.explain,
                    embedder=embedder,
                    reranker=reranker,
                    rerank=not args.no_rerank,
                )
            except (UnknownDomain, InvalidQuery, ModelNotIndexed) as exc:
                print(f"hybrid search: error: {exc}", file=sys.stderr)
                return 2
            results.append([h.to_dict(explain=args.explain) for h in hits])
    if args.json:
        for hits_json in results:
            print(json.dumps(hits_json, ensure_ascii=False))
        return 0
    for item, hits_json in zip(items, results, strict=True):
        if len(items) > 1:
            print(f"# {item['query']}")
        for i, h in enumerate(hits_json, 1):
            text = " ".join(h["text"].split())
            print(f"{i:>2}. {h['score']:.4f}  {h['doc_id']} · {h['heading']}")
            print(f"    {text[:200]}{'…' if len(text) > 200 else ''}")
        if not hits_json:
            print("(no hits)")
    return 0


@command
def _register_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="hybrid search (the same as POST /v1/memory/search)")
    p.add_argument("--domain", required=True, action="append", help="domain (repeat or comma-separate)")
    p.add_argument("--query", help="the query")
    p.add_argument("--queries", help='JSONL file of {"query": ...} lines: one JSON array of hits per line')
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--filters", help='JSON, e.g. {"tags_any": ["city"], "lang": "ru"}')
    p.add_argument("--user", type=int, help="search as this user id (default: shared knowledge only)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--explain", action="store_true", help="add dense/keyword ranks and fused score")
    p.add_argument("--embedder", help="embedding provider name (default: llm.embedding_provider)")
    p.add_argument("--no-rerank", action="store_true", help="fusion order only")
    p.set_defaults(func=_search)


# --- campaigns ---------------------------------------------------------------------------------------
def _campaign(args: argparse.Namespace) -> int:
    import psycopg

    with psycopg.connect(_url(), autocommit=True, prepare_threshold=None) as conn:
        if args.action == "create":
            row = conn.execute(
                "INSERT INTO memory_campaigns (name, owner_user_id) VALUES (%s, %s) RETURNING id",
                (args.name, args.user),
            ).fetchone()
            assert row is not None
            if args.user is not None:
                conn.execute(
                    "INSERT INTO memory_campaign_members (campaign_id, user_id, role) "
                    "VALUES (%s, %s, 'owner')",
                    (row[0], args.user),
                )
            print(json.dumps({"id": row[0], "name": args.name}))
        else:
            conn.execute(
                "INSERT INTO memory_campaign_members (campaign_id, user_id) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (args.campaign, args.user),
            )
            print(json.dumps({"campaign": args.campaign, "user": args.user}))
    return 0


@command
def _register_campaign(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaign", help="campaigns whose members see its episodes")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="create a campaign; prints its id")
    c.add_argument("--name", required=True)
    c.add_argument("--user", type=int, help="owner user id (added as a member)")
    c.set_defaults(func=_campaign)
    m = actions.add_parser("add-member", help="let a user see the campaign's documents")
    m.add_argument("--campaign", type=int, required=True)
    m.add_argument("--user", type=int, required=True)
    m.set_defaults(func=_campaign)


# --- make run: the sample knowledge --------------------------------------------------------------------
@serve_hook
def ingest_sample(args: argparse.Namespace) -> None:
    if getattr(args, "no_sample", False):
        return
    from shared.memory37.etl import ingest_path

    url = os.environ.get("DATABASE_URL") or _url()
    try:
        embedder = _embedder(None)
        for domain in SAMPLE_DOMAINS:
            s = ingest_path(url, domain=domain, source=SAMPLE_DIR / domain, embedder=embedder)
            print(
                f"sample knowledge: {domain}: {s.documents} documents, {s.chunks} chunks, "
                f"{s.embedded} embedded, {s.skipped} unchanged",
                flush=True,
            )
    except Exception as exc:  # the API still starts; search says what is missing
        print(f"sample knowledge not ingested: {exc}", file=sys.stderr, flush=True)
