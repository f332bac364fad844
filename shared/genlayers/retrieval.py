"""Memory retrieval for profiles with ``memory:``: the top chunks from memory37, injected with their
ids so the output can cite them (``memory.citations_field`` makes the citations checked)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from shared.db.connection import DatabaseUnavailable
from shared.genlayers.profiles import CompiledProfile
from shared.genlayers.structured import GenerationError

if TYPE_CHECKING:
    import psycopg


class MemoryUnavailable(GenerationError):
    status, slug, title = 503, "memory-unavailable", "Memory retrieval is unavailable"


def _field(hit: Any, name: str) -> Any:
    return hit.get(name) if isinstance(hit, dict) else getattr(hit, name, None)


def _search_fn() -> Callable[..., list[Any]]:
    try:
        from shared.memory37.search import search_memory
    except ImportError as exc:
        raise MemoryUnavailable("memory search (shared.memory37.search) is not available") from exc
    return search_memory


def retrieve(
    connection: Callable[[], AbstractContextManager[psycopg.Connection[Any]]],
    compiled: CompiledProfile,
    values: dict[str, Any],
    user_id: int | None,
    *,
    search: Callable[..., list[Any]] | None = None,
) -> list[dict[str, Any]]:
    memory = compiled.profile.memory
    assert memory is not None
    query = str(values.get(memory.query_variable) or "")
    if not query.strip():
        return []
    search = search or _search_fn()
    try:
        with connection() as conn:
            hits = search(
                conn, user_id=user_id, domains=list(memory.domains), query=query, top_k=memory.top_k
            )
    except DatabaseUnavailable:
        raise
    except (ValueError, LookupError, RuntimeError) as exc:  # bad domain, model not indexed, embedder down
        raise MemoryUnavailable(f"memory search failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return [
        {
            "id": str(_field(h, "chunk_id")),
            "doc_id": _field(h, "doc_id"),
            "title": _field(h, "title") or "",
            "text": str(_field(h, "text") or "")[: memory.max_chars_per_chunk],
            "score": float(_field(h, "score") or 0.0),
        }
        for h in hits[: memory.top_k]
    ]


def sources_block(sources: list[dict[str, Any]]) -> str:
    if not sources:
        return "Sources: none were found for this request; do not cite any."
    lines = ["Sources (cite them by their id in square brackets):"]
    for s in sources:
        lines.append(f"[{s['id']}] {s['title']}: {s['text']}")
    return "\n".join(lines)
