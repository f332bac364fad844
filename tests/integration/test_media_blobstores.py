"""BlobStore adapters: the local folder (atomic temp + rename) and S3 through real boto3 against moto's
S3-compatible server on 127.0.0.1 (never AWS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.media.blob_local import LocalBlobStore
from shared.media.blobstore import asset_key

HASH = "ab" + "c" * 62


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_endpoint


def _bucket(endpoint: str, name: str) -> Any:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=name)
    return client


def test_local_store_writes_atomically_and_serves_urls(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", public_base_url="http://127.0.0.1:8000/")
    key = asset_key("tts", HASH, "mp3")
    store.put(key, b"audio", content_type="audio/mpeg")
    assert store.get(key) == b"audio" and store.exists(key)
    assert store.keys() == [key]
    assert store.url(key) == f"http://127.0.0.1:8000/v1/media/assets/{key}"
    store.put(key, b"audio again", content_type="audio/mpeg")  # overwrite is a whole replacement
    assert store.get(key) == b"audio again"
    store.delete(key)
    assert store.keys() == [] and not store.exists(key)


def test_local_store_leaves_nothing_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = asset_key("image", HASH, "png")
    store.put(key, b"old", content_type="image/png")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(key, b"new body", content_type="image/png")
    assert store.keys() == [key] and store.get(key) == b"old"  # no temp file, old object intact


def test_local_store_refuses_keys_that_are_not_asset_keys(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    for bad in ("../../etc/passwd", "tts/ab/short.mp3", "/abs/path"):
        with pytest.raises(KeyError):
            store.get(bad)
        with pytest.raises(KeyError):
            store.put(bad, b"x", content_type="text/plain")
    with pytest.raises(ValueError):
        asset_key("video", HASH, "mp4")


def test_s3_store_puts_with_content_type_and_cache_control_and_presigns(s3_env: str) -> None:
    from shared.media.blob_s3 import S3BlobStore

    client = _bucket(s3_env, "media-presigned")
    store = S3BlobStore("media-presigned", prefix="media/", endpoint_url=s3_env, presign_seconds=600)
    key = asset_key("tts", HASH, "mp3")
    store.put(
        key, b"ID3 sound", content_type="audio/mpeg", cache_control="public, max-age=31536000, immutable"
    )
    head = client.head_object(Bucket="media-presigned", Key="media/" + key)
    assert head["ContentType"] == "audio/mpeg"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert store.exists(key) and store.get(key) == b"ID3 sound"
    assert store.keys() == [key]
    url = store.url(key)
    assert url.startswith(s3_env) and "X-Amz-Signature" in url and "X-Amz-Expires=600" in url
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.content == b"ID3 sound"
    store.delete(key)
    assert not store.exists(key) and store.keys() == []


def test_s3_store_cdn_urls(s3_env: str) -> None:
    from shared.media.blob_s3 import S3BlobStore

    _bucket(s3_env, "media-cdn")
    store = S3BlobStore(
        "media-cdn",
        prefix="media/",
        endpoint_url=s3_env,
        url_mode="cdn",
        cdn_base_url="https://d1.cloudfront.net/",
    )
    key = asset_key("image", HASH, "png")
    assert store.url(key) == f"https://d1.cloudfront.net/media/{key}"
    with pytest.raises(ValueError, match="MEDIA_CDN_BASE_URL"):
        S3BlobStore("media-cdn", endpoint_url=s3_env, url_mode="cdn")


def test_s3_store_failed_put_leaves_nothing(s3_env: str) -> None:
    from shared.media.blob_s3 import S3BlobStore
    from shared.media.blobstore import BlobError

    store = S3BlobStore("no-such-bucket", endpoint_url=s3_env)
    with pytest.raises(BlobError, match="failed"):
        store.put(asset_key("tts", HASH, "mp3"), b"x", content_type="audio/mpeg")
    _bucket(s3_env, "no-such-bucket")
    assert store.keys() == []
