"""Fakes of Together AI (OpenAI-compatible ``/v1/embeddings`` and ``/v1/rerank``) and of an
``intelligence_api`` service (the same embeddings wire format), served by ``FakeServer`` on 127.0.0.1."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from tests.fakes.http import FakeServer, Request, Response

DIM = 8


def fake_vector(text: str, dim: int = DIM) -> list[float]:
    """A deterministic vector per text (not normalised, so adapters must normalise)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i] - 127.5) / 10 for i in range(dim)]


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def _authorised(req: Request, api_key: str | None) -> Response | None:
    if (
        api_key is not None
        and req.headers.get("Authorization", req.headers.get("authorization")) != f"Bearer {api_key}"
    ):
        return Response(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
    return None


def embeddings_handler(api_key: str | None = None, dim: int = DIM):
    def handle(req: Request) -> Response:
        denied = _authorised(req, api_key)
        if denied:
            return denied
        body = req.json()
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            return Response(400, {"error": {"message": "input is required", "type": "invalid_request_error"}})
        if body.get("encoding_format") == "base64":
            import base64
            import struct

            data = [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": base64.b64encode(struct.pack(f"<{dim}f", *fake_vector(t, dim))).decode(),
                }
                for i, t in enumerate(texts)
            ]
        else:
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(t, dim)}
                for i, t in enumerate(texts)
            ]
        return Response(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
            },
        )

    return handle


def rerank_handler(api_key: str | None = None):
    def handle(req: Request) -> Response:
        denied = _authorised(req, api_key)
        if denied:
            return denied
        body = req.json()
        query, docs = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not isinstance(docs, list):
            return Response(400, {"error": {"message": "query and documents are required"}})
        qwords = set(query.lower().split())
        scored = [
            {"index": i, "relevance_score": len(qwords & set(str(d).lower().split())) / (len(qwords) or 1)}
            for i, d in enumerate(docs)
        ]
        scored.sort(key=lambda r: r["relevance_score"], reverse=True)
        top_n = body.get("top_n")
        results: list[dict[str, Any]] = scored[:top_n] if top_n else scored
        return Response(200, {"id": "rr-1", "model": body.get("model"), "results": results})

    return handle


def together_server(api_key: str = "together-test-key") -> FakeServer:
    server = FakeServer()
    server.route("POST", "/v1/embeddings", embeddings_handler(api_key))
    server.route("POST", "/v1/rerank", rerank_handler(api_key))
    return server


def intelligence_server(api_key: str = "intel-test-key") -> FakeServer:
    server = FakeServer()
    server.route("POST", "/v1/embeddings", embeddings_handler(api_key))
    return server
