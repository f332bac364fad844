"""Build the configured ``BlobStore`` (explicit > env > YAML), cached per settings."""

from __future__ import annotations

import threading
from pathlib import Path

from shared.config import env
from shared.config.models import MediaStorageSection
from shared.media.blobstore import BlobStore

_lock = threading.Lock()
_cache: dict[tuple[object, ...], BlobStore] = {}


def build_blob_store(cfg: MediaStorageSection) -> BlobStore:
    backend = env.MEDIA_STORAGE.get() or cfg.backend
    if backend == "s3":
        from shared.media.blob_s3 import S3BlobStore

        bucket = env.MEDIA_BUCKET.get() or cfg.bucket
        if not bucket:
            raise env.MissingSetting("MEDIA_BUCKET", "media.storage.backend is s3 but no bucket is named")
        return S3BlobStore(
            bucket,
            prefix=cfg.prefix,
            endpoint_url=env.MEDIA_S3_ENDPOINT_URL.get(),
            url_mode=cfg.url_mode,
            cdn_base_url=env.MEDIA_CDN_BASE_URL.get() or cfg.cdn_base_url,
            presign_seconds=cfg.presign_seconds,
        )
    if backend != "local":
        raise ValueError(f"unknown media storage backend {backend!r} (MEDIA_STORAGE): use local or s3")
    from shared.media.blob_local import LocalBlobStore

    root = env.MEDIA_LOCAL_DIR.get() or cfg.local_dir or str(Path(env.local_dir()) / "media")
    return LocalBlobStore(root, public_base_url=env.MEDIA_PUBLIC_BASE_URL.get() or "")


def get_blob_store() -> BlobStore:
    from shared.config.store import get_config

    cfg = get_config().logic.media.storage
    fingerprint = (
        cfg,
        env.MEDIA_STORAGE.get(),
        env.MEDIA_LOCAL_DIR.get(),
        env.MEDIA_BUCKET.get(),
        env.MEDIA_S3_ENDPOINT_URL.get(),
        env.MEDIA_CDN_BASE_URL.get(),
        env.MEDIA_PUBLIC_BASE_URL.get(),
        env.LOCAL_DIR.get(),
    )
    with _lock:
        store = _cache.get(fingerprint)
        if store is None:
            _cache.clear()
            store = _cache[fingerprint] = build_blob_store(cfg)
        return store


def reset() -> None:
    with _lock:
        _cache.clear()
