"""Image build step: download the models into the Hugging Face cache and prove the engine loads them.

    python -m gpu_handlers.embedding.prefetch   (EMBED_MODEL / RERANK_MODEL name the models)

Run by the Dockerfile so the weights are baked into the image (no download on cold start); the build
fails here, not in production, when a model is missing something (e.g. bge-m3's sparse_linear.pt).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpu_handlers.embedding.engine import (
    DEFAULT_EMBED_MODEL,
    DEFAULT_RERANK_MODEL,
    EmbeddingEngine,
)

IGNORE = ["onnx/*", "*.onnx", "imgs/*", "*.msgpack", "*.h5", "flax_model*", "tf_model*"]


def main() -> None:
    from huggingface_hub import snapshot_download

    embed = os.environ.get("EMBED_MODEL") or DEFAULT_EMBED_MODEL
    rerank = os.environ.get("RERANK_MODEL") or DEFAULT_RERANK_MODEL
    for name in (embed, rerank):
        if name.lower() != "none" and not Path(name).is_dir():
            print(f"downloading {name}", flush=True)
            snapshot_download(name, ignore_patterns=IGNORE)
    engine = EmbeddingEngine(embed, rerank, device="cpu")
    job = json.loads((Path(__file__).parent / "test_input.json").read_text())["input"]
    out = engine.run_job(job)
    assert len(out["embeddings"]) == len(job["texts"]), out
    if engine.sparse_head is not None:
        assert engine.run_job({**job, "return_sparse": True})["sparse"][0]
    print(
        f"ok: {embed} dim={engine.dimension} max_length={engine.max_length} "
        f"sparse={'yes' if engine.sparse_head is not None else 'no'} rerank={engine.rerank_model_name}",
        flush=True,
    )


if __name__ == "__main__":
    main()
