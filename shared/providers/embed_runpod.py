"""Embeddings from the gpu_handlers bge-m3 worker on a RunPod serverless endpoint.

Online calls use ``/runsync`` (one job per ``batch_size`` texts, within the caller's time budget);
asynchronous ones use ``/run`` (``submit``) then ``/status`` (``collect``). The job contract is the
handler's: ``{"task": "embed", "texts": [...], "return_sparse": bool}``.

Errors are ``EmbeddingError``; one caused by an HTTP answer carries ``status_code`` and ``response``
so ``shared.providers.resilience.classify`` tells 5xx / 429 / 401 / other 4xx apart. A FAILED job
raises with the worker's own message (it names the offending field).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.embeddings import Embedder, EmbeddingError
from shared.providers.runpod_client import (
    RunPodClient,
    RunPodJobFailed,
    RunPodTimeout,
    client_for_provider,
    http_status_of,
)

DEFAULT_MODEL = "BAAI/bge-m3"
KNOWN_DIMENSIONS = {"BAAI/bge-m3": 1024}


class RunPodEmbeddingError(EmbeddingError):
    def __init__(self, message: str, *, response: Any = None) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = getattr(response, "status_code", None)


def translate(exc: Exception, what: str, error_cls: Callable[..., Exception]) -> Exception:
    """An adapter error for any failure of a RunPod call (keeps the HTTP response for ``classify``)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return error_cls(f"{what}: RunPod answered HTTP {http_status_of(exc)}", response=exc.response)
    if isinstance(exc, RunPodJobFailed):
        return error_cls(f"{what}: RunPod job {exc.status}: {exc.message}")
    if isinstance(exc, RunPodTimeout | httpx.TimeoutException):
        return error_cls(f"{what}: timed out ({exc})")
    if isinstance(exc, httpx.HTTPError):
        return error_cls(f"{what}: cannot reach RunPod ({type(exc).__name__}: {exc})")
    return error_cls(f"{what}: {type(exc).__name__}: {exc}")


def _unit(vector: Any, what: str) -> list[float]:
    if not isinstance(vector, list) or not vector:
        raise RunPodEmbeddingError(f"{what}: the worker returned no vector")
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values))
    if norm == 0 or not math.isfinite(norm):
        raise RunPodEmbeddingError(f"{what}: the worker returned a zero or non-finite vector")
    return [x / norm for x in values]


class RunPodEmbedder(Embedder):
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
        self.batch_size = int(opts.get("batch_size", 128))
        self.check_model = bool(opts.get("check_model", True))
        dimension = opts.get("dimension") or KNOWN_DIMENSIONS.get(self.model)
        self._dimension: int | None = int(dimension) if dimension else None
        if client is None:
            try:
                client = client_for_provider(
                    name=name, base_url=base_url, api_key=api_key, options=opts, timeout=self.timeout_seconds
                )
            except ValueError as exc:
                raise EmbeddingError(str(exc)) from exc
        self.client = client

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> RunPodEmbedder:
        key_env = settings.api_key_env or env.RUNPOD_API_KEY.name
        return cls(
            base_url=settings.base_url,
            api_key=os.environ.get(key_env) or None,
            model=settings.model or DEFAULT_MODEL,
            timeout_seconds=settings.timeout_seconds,
            options=dict(settings.options),
            name=name,
        )

    def __repr__(self) -> str:
        return f"RunPodEmbedder({self.model!r}, {self.client!r})"

    @property
    def dimension(self) -> int:  # type: ignore[override]
        if self._dimension is None:
            self._dimension = len(self.embed_query("dimension probe"))
        return self._dimension

    # ------------------------------------------------------------------ online (/runsync)
    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> list[list[float]]:
        """One unit vector per text, in order. ``timeout`` is the whole budget (default: the provider's)."""
        return [vec for vec, _ in self._embed(texts, sparse=False, timeout=timeout)]

    def embed_sparse(
        self, texts: Sequence[str], *, timeout: float | None = None
    ) -> list[tuple[list[float], dict[int, float]]]:
        """Dense vector and bge-m3 lexical weights ``{token_id: weight}`` per text."""
        return [(vec, sparse or {}) for vec, sparse in self._embed(texts, sparse=True, timeout=timeout)]

    def _embed(
        self, texts: Sequence[str], *, sparse: bool, timeout: float | None
    ) -> list[tuple[list[float], dict[int, float] | None]]:
        import time

        items = list(texts)
        if not items:
            return []
        budget = self.timeout_seconds if timeout is None else float(timeout)
        deadline = time.monotonic() + budget
        out: list[tuple[list[float], dict[int, float] | None]] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunPodEmbeddingError(f"{self.name}: time budget of {budget:.2f}s used up")
            job: dict[str, Any] = {"task": "embed", "texts": batch}
            if sparse:
                job["return_sparse"] = True
            try:
                output = self.client.runsync(job, timeout=left)
            except Exception as exc:
                raise translate(exc, self.name, RunPodEmbeddingError) from exc
            out.extend(self._parse(output, len(batch), sparse=sparse))
        return out

    # ------------------------------------------------------------------ asynchronous (/run + /status)
    def submit(self, texts: Sequence[str], *, webhook: str | None = None, return_sparse: bool = False) -> str:
        """Queue one embed job; returns the RunPod job id."""
        job: dict[str, Any] = {"task": "embed", "texts": list(texts)}
        if return_sparse:
            job["return_sparse"] = True
        try:
            return self.client.run(job, webhook=webhook)
        except Exception as exc:
            raise translate(exc, self.name, RunPodEmbeddingError) from exc

    def collect(
        self, job_id: str, *, expected: int | None = None, timeout: float | None = None
    ) -> list[list[float]]:
        """Wait for a submitted job (polling ``/status``) and return its vectors."""
        try:
            output = self.client.wait(job_id, timeout=timeout)
        except Exception as exc:
            raise translate(exc, self.name, RunPodEmbeddingError) from exc
        count = expected if expected is not None else len((output or {}).get("embeddings") or [])
        return [vec for vec, _ in self._parse(output, count, sparse=False)]

    # ------------------------------------------------------------------ parsing
    def _parse(
        self, output: Any, expected: int, *, sparse: bool
    ) -> list[tuple[list[float], dict[int, float] | None]]:
        what = self.name
        if not isinstance(output, dict) or not isinstance(output.get("embeddings"), list):
            raise RunPodEmbeddingError(f"{what}: the worker answered without embeddings: {str(output)[:200]}")
        served = output.get("model")
        if self.check_model and served and not _same_model(served, self.model):
            raise RunPodEmbeddingError(
                f"{what}: the endpoint serves {served!r} but the provider is configured for {self.model!r}"
            )
        vectors = output["embeddings"]
        if len(vectors) != expected:
            raise RunPodEmbeddingError(f"{what}: asked for {expected} vectors, got {len(vectors)}")
        weights = output.get("sparse") if sparse else None
        if sparse and (not isinstance(weights, list) or len(weights) != expected):
            raise RunPodEmbeddingError(f"{what}: the worker answered without sparse weights")
        result = []
        for i, vector in enumerate(vectors):
            unit = _unit(vector, what)
            if self._dimension is None:
                self._dimension = len(unit)
            elif len(unit) != self._dimension:
                raise RunPodEmbeddingError(f"{what}: got a {len(unit)}-d vector, expected {self._dimension}")
            lexical = {int(k): float(v) for k, v in weights[i].items()} if weights is not None else None
            result.append((unit, lexical))
        return result


def _same_model(served: str, configured: str) -> bool:
    return (
        served == configured
        or served.rstrip("/").rsplit("/", 1)[-1] == configured.rstrip("/").rsplit("/", 1)[-1]
    )
