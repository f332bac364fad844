"""``POST /v1/memory/search``: hybrid search over the caller's view of the knowledge memory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.api.problems import Problem
from shared.auth.dependencies import get_principal
from shared.auth.tokens import Principal
from shared.memory37.domains import UnknownDomain
from shared.memory37.search import MAX_TOP_K, InvalidQuery, ModelNotIndexed, SearchFilters, search_memory
from shared.providers.embeddings import EmbeddingError

router = APIRouter(tags=["memory"])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str | list[str] = Field(
        description="a configured domain (srd, lore, episodes, …) or a list of them"
    )
    query: str = Field(min_length=1, max_length=8192)
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K)
    filters: SearchFilters | None = None
    explain: bool = False

    @field_validator("domain")
    @classmethod
    def _domains(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items or len(items) > 20 or any(not d.strip() or len(d) > 64 for d in items):
            raise ValueError("one to 20 domain names")
        return value

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must not be blank")
        return value


class SearchResponse(BaseModel):
    hits: list[dict[str, Any]]


def _problem(status: int, slug: str, detail: str) -> Problem:
    return Problem(status, detail, slug=slug)


@router.post("/v1/memory/search", response_model=SearchResponse)
def memory_search(body: SearchRequest, principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    from shared.db.connection import get_database
    from shared.providers.factory import build_embedder, build_reranker

    domains = [body.domain] if isinstance(body.domain, str) else list(body.domain)
    try:
        embedder, reranker = build_embedder(), build_reranker()
        with get_database().connection() as conn:
            hits = search_memory(
                conn,
                user_id=principal.user_id,
                domains=domains,
                query=body.query,
                top_k=body.top_k,
                filters=body.filters,
                explain=body.explain,
                embedder=embedder,
                reranker=reranker,
            )
    except UnknownDomain as exc:
        raise _problem(422, "unknown-domain", str(exc)) from exc
    except InvalidQuery as exc:
        raise _problem(422, "invalid-query", str(exc)) from exc
    except ModelNotIndexed as exc:
        raise _problem(409, "model-not-indexed", str(exc)) from exc
    except EmbeddingError as exc:
        raise Problem(
            503,
            f"the embedding provider is unavailable: {exc}",
            slug="embedding-unavailable",
            headers={"Retry-After": "5"},
        ) from exc
    return {"hits": [h.to_dict(explain=body.explain) for h in hits]}
