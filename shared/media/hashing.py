"""Content hashes: the same kind, normalised input and provider settings → the same asset."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(kind: str, normalized_input: dict[str, Any], provider_settings: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"v": 1, "kind": kind, "input": normalized_input, "provider": provider_settings},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
