"""Local folder blob store (the default): temp file + fsync + rename, served by the media router."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from shared.media.blobstore import BlobStore, valid_key

TEMP_SUFFIX = ".part"


class LocalBlobStore(BlobStore):
    name = "local"

    def __init__(self, root: str | Path, *, public_base_url: str = "") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.public_base_url = public_base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        if not valid_key(key):  # keys are content hashes: nothing else may reach the file system
            raise KeyError(key)
        return self.root / key

    def put(self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except KeyError:
            return False

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, KeyError):
            self._path(key).unlink()

    def keys(self, prefix: str = "") -> list[str]:
        """Every file, temp files included, so a test sees a half-written leftover too."""
        out = []
        for path in self.root.rglob("*"):
            if path.is_file():
                rel = path.relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
        return sorted(out)

    def path_of(self, key: str) -> Path:
        return self._path(key)

    def url(self, key: str) -> str:
        return f"{self.public_base_url}/v1/media/assets/{key}"
