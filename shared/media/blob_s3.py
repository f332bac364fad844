"""S3 blob store: one PUT per asset (body produced in full first) with content type and cache-control;
URLs through a CloudFront base URL or presigned GETs. boto3 is imported only when this store is built."""

from __future__ import annotations

from typing import Any

from shared.media.blobstore import BlobError, BlobStore


class S3BlobStore(BlobStore):
    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        url_mode: str = "presigned",
        cdn_base_url: str | None = None,
        presign_seconds: int = 3600,
        client: Any = None,
    ) -> None:
        if url_mode == "cdn" and not cdn_base_url:
            raise ValueError("media.storage.url_mode is cdn but no CDN base URL: set MEDIA_CDN_BASE_URL")
        self.bucket, self.prefix = bucket, prefix.lstrip("/")
        self.url_mode, self.cdn_base_url = url_mode, (cdn_base_url or "").rstrip("/")
        self.presign_seconds = presign_seconds
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                config=Config(signature_version="s3v4", retries={"mode": "standard"}),
            )
        self.client = client

    def _k(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None) -> None:
        extra = {"CacheControl": cache_control} if cache_control else {}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._k(key), Body=data, ContentType=content_type, **extra
            )
        except Exception as exc:
            raise BlobError(f"s3 put {self._k(key)} failed: {type(exc).__name__}") from exc

    def get(self, key: str) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc
        return bytes(obj["Body"].read())

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.bucket, Key=self._k(key)))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._k(key))

    def keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
            out.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        # multipart uploads never started here, but a leftover one would be a half-written object
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self._k(prefix))
        out.extend("(multipart) " + u["Key"] for u in uploads.get("Uploads", []))
        return sorted(out)

    def url(self, key: str) -> str:
        if self.url_mode == "cdn":
            return f"{self.cdn_base_url}/{self._k(key)}"
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._k(key)},
                ExpiresIn=self.presign_seconds,
            )
        )
