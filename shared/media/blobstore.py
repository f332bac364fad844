"""The ``BlobStore`` seam: where finished media assets are kept.

Writes are atomic: an object is visible under its key only once its whole body is stored (local: a temp
file renamed into place; S3: one PUT of a body produced in full beforehand). Keys are content-addressed
(``<kind>/<hash[:2]>/<hash>.<ext>``), so writing the same asset twice is harmless and a retry after a
crash overwrites, never duplicates.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

KEY_RE = re.compile(r"^(tts|image|avatar)/[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,5}$")


class BlobError(RuntimeError):
    """The store could not write or read an object."""


def asset_key(kind: str, content_hash: str, extension: str) -> str:
    key = f"{kind}/{content_hash[:2]}/{content_hash}.{extension}"
    if not KEY_RE.match(key):
        raise ValueError(f"not a valid asset key: {key!r}")
    return key


def valid_key(key: str) -> bool:
    return bool(KEY_RE.match(key))


class BlobStore(ABC):
    name: str

    @abstractmethod
    def put(self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None) -> None:
        """Store ``data`` under ``key`` atomically (all or nothing)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; absent is fine."""

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """Every stored key under ``prefix`` (operations and tests: prove nothing was left behind)."""

    @abstractmethod
    def url(self, key: str) -> str:
        """A URL a client can fetch the object from."""
