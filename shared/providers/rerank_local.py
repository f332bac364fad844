"""Local cross-encoder reranker (sentence-transformers ``CrossEncoder``), loaded offline.

Used when ``llm.rerank_provider`` names a provider of type ``local``; its ``model`` is a folder or a name
already in the Hugging Face cache (nothing is downloaded at run time). Scores are sigmoid-normalised.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from shared.config.models import ProviderSettings
from shared.providers.embed_local import _quiet_transformers, resolve_model_path
from shared.providers.rerank import Reranker, RerankError, RerankResult


class LocalReranker(Reranker):
    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = 512,
        cross_encoder: Any = None,
    ) -> None:
        self.model = model
        self.device = device or "cpu"
        self.batch_size = batch_size
        self.max_length = max_length
        self._ce: Any = cross_encoder
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> LocalReranker:
        model = settings.model or default_model
        if not model:
            raise RerankError(f"providers.{name}.model must name a cross-encoder (a folder or cached name)")
        opts = dict(settings.options)
        return cls(
            model,
            device=opts.get("device"),
            batch_size=int(opts.get("batch_size", 32)),
            max_length=int(opts.get("max_length", 512)),
        )

    def _load(self) -> Any:
        if self._ce is None:
            with self._lock:
                if self._ce is None:
                    try:
                        from sentence_transformers import CrossEncoder
                    except ImportError as exc:
                        raise RerankError(
                            "sentence-transformers is not installed: install the local extra"
                        ) from exc
                    _quiet_transformers()
                    try:
                        self._ce = CrossEncoder(
                            resolve_model_path(self.model),
                            device=self.device,
                            max_length=self.max_length,
                            local_files_only=True,
                        )
                    except Exception as exc:
                        raise RerankError(f"cannot load cross-encoder {self.model!r}: {exc}") from exc
        return self._ce

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        if not documents:
            return []
        ce = self._load()
        try:
            import torch

            raw = ce.predict(
                [(query, d) for d in documents],
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                activation_fn=torch.nn.Identity(),  # raw logits: normalised below, whatever the model config
            )
        except Exception as exc:
            raise RerankError(f"{self.model}: rerank failed: {exc}") from exc
        scores = [_score(x) for x in raw]
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        if top_n is not None:
            order = order[:top_n]
        return [RerankResult(index=i, score=scores[i]) for i in order]


def _score(value: Any) -> float:
    """One logit → sigmoid; several labels → softmax probability of the last (the "relevant" label)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        logits = [float(v) for v in value]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        return exps[-1] / sum(exps)
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
