"""Rerank through the gpu_handlers bge reranker on a RunPod serverless endpoint.

Online calls use ``/runsync``; asynchronous ones ``/run`` (``submit``) then ``/status`` (``collect``).
Job: ``{"task": "rerank", "query": str, "documents": [...], "top_n": int}``; scores are
sigmoid-normalised by the worker. Errors are ``RerankError`` (with ``status_code`` / ``response`` when
an HTTP answer caused them, for ``shared.providers.resilience.classify``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.embed_runpod import translate
from shared.providers.rerank import Reranker, RerankError, RerankResult
from shared.providers.runpod_client import RunPodClient, client_for_provider

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"


class RunPodRerankError(RerankError):
    def __init__(self, message: str, *, response: Any = None) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = getattr(response, "status_code", None)


class RunPodReranker(Reranker):
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        timeout_seconds: float = 10.0,
        options: dict[str, Any] | None = None,
        client: RunPodClient | None = None,
        name: str = "runpod",
    ) -> None:
        opts = dict(options or {})
        self.name = name
        self.model = model or DEFAULT_MODEL
        self.timeout_seconds = float(timeout_seconds)
        if client is None:
            try:
                client = client_for_provider(
                    name=name, base_url=base_url, api_key=api_key, options=opts, timeout=self.timeout_seconds
                )
            except ValueError as exc:
                raise RerankError(str(exc)) from exc
        self.client = client

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> RunPodReranker:
        key_env = settings.api_key_env or env.RUNPOD_API_KEY.name
        opts = dict(settings.options)
        return cls(
            base_url=settings.base_url,
            api_key=os.environ.get(key_env) or None,
            # one endpoint serves both models: providers.<name>.model names the embedding model there
            model=opts.get("rerank_model") or DEFAULT_MODEL,
            timeout_seconds=settings.timeout_seconds,
            options=opts,
            name=name,
        )

    def __repr__(self) -> str:
        return f"RunPodReranker({self.model!r}, {self.client!r})"

    @staticmethod
    def _job(query: str, documents: Sequence[str], top_n: int | None) -> dict[str, Any]:
        job: dict[str, Any] = {"task": "rerank", "query": query, "documents": list(documents)}
        if top_n is not None:
            job["top_n"] = top_n
        return job

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        *,
        timeout: float | None = None,
    ) -> list[RerankResult]:
        if not documents:
            return []
        try:
            output = self.client.runsync(self._job(query, documents, top_n), timeout=timeout)
        except Exception as exc:
            raise translate(exc, self.name, RunPodRerankError) from exc
        return self._parse(output, len(documents), top_n)

    def submit(
        self, query: str, documents: Sequence[str], top_n: int | None = None, *, webhook: str | None = None
    ) -> str:
        try:
            return self.client.run(self._job(query, documents, top_n), webhook=webhook)
        except Exception as exc:
            raise translate(exc, self.name, RunPodRerankError) from exc

    def collect(
        self, job_id: str, *, documents: int, top_n: int | None = None, timeout: float | None = None
    ) -> list[RerankResult]:
        try:
            output = self.client.wait(job_id, timeout=timeout)
        except Exception as exc:
            raise translate(exc, self.name, RunPodRerankError) from exc
        return self._parse(output, documents, top_n)

    def _parse(self, output: Any, documents: int, top_n: int | None) -> list[RerankResult]:
        if not isinstance(output, dict) or not isinstance(output.get("results"), list):
            raise RunPodRerankError(f"{self.name}: the worker answered without results: {str(output)[:200]}")
        results: list[RerankResult] = []
        seen: set[int] = set()
        for item in output["results"]:
            try:
                index, score = int(item["index"]), float(item["score"])
            except (KeyError, TypeError, ValueError) as exc:
                raise RunPodRerankError(f"{self.name}: malformed rerank result {item!r}") from exc
            if not 0 <= index < documents or index in seen:
                raise RunPodRerankError(f"{self.name}: result index {index} is out of range or repeated")
            seen.add(index)
            results.append(RerankResult(index=index, score=score))
        expected = documents if top_n is None else min(top_n, documents)
        if len(results) != expected:
            raise RunPodRerankError(f"{self.name}: expected {expected} results, got {len(results)}")
        results.sort(key=lambda r: r.score, reverse=True)
        return results
