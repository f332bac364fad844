"""Non-HTTP Lambda entry points: the scheduled drain, the S3-triggered indexer, one-off invokes.

``lambda_task`` gives such a function what ``http_handler`` gives the HTTP ones: secrets loaded at init,
Powertools logging with the cold-start flag and the request id as correlation id, metrics flushed per
invocation, and an event of the wrong shape answered with a logged, clear error (``statusCode`` 400)
instead of an unhandled exception (which Lambda would retry for asynchronous sources).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

TaskHandler = Callable[[Any, Any], dict[str, Any]]


class BadEvent(ValueError):
    """The invocation event does not have the shape this function expects."""


def lambda_task(name: str) -> Callable[[TaskHandler], TaskHandler]:
    def wrap(fn: TaskHandler) -> TaskHandler:
        from shared.config.secrets import load_secrets
        from shared.observability.logging import get_logger
        from shared.observability.metrics import get_metrics

        load_secrets()  # at init: a missing secret fails the cold start, naming the variable
        logger, metrics = get_logger(), get_metrics()

        @metrics.log_metrics
        @logger.inject_lambda_context(log_event=False, clear_state=True)
        @functools.wraps(fn)
        def handler(event: Any, context: Any) -> dict[str, Any]:
            rid = getattr(context, "aws_request_id", None)
            if rid:
                logger.set_correlation_id(str(rid))
            try:
                return fn(event, context)
            except BadEvent as exc:
                keys = sorted(map(str, event))[:20] if isinstance(event, dict) else type(event).__name__
                logger.error(
                    "unexpected event shape",
                    extra={"function": name, "reason": str(exc)[:300], "event_keys": keys},
                )
                return {"statusCode": 400, "error": "bad-event", "detail": str(exc)}

        return handler

    return wrap


def is_scheduled(event: Any) -> bool:
    """An EventBridge schedule event (``source: aws.events``, ``detail-type: Scheduled Event``)."""
    return (
        isinstance(event, dict)
        and event.get("source") == "aws.events"
        and event.get("detail-type") == "Scheduled Event"
    )


def remaining_seconds(context: Any, *, reserve: float = 5.0, default: float = 50.0) -> float:
    """Time this invocation may still spend, keeping ``reserve`` seconds to finish cleanly."""
    get = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(get):
        return default
    return max(1.0, float(get()) / 1000.0 - reserve)


@dataclass(frozen=True)
class IngestJob:
    bucket: str
    key: str
    domain: str
    lang: str | None = None


def _domain_from_key(key: str, prefix: str) -> str:
    parts = [p for p in key.split("/") if p]
    root = [p for p in prefix.split("/") if p]
    if parts[: len(root)] != root or len(parts) < len(root) + 2:
        raise BadEvent(f"object key {key!r} is not under {prefix.strip('/')}/<domain>/")
    return parts[len(root)]


def _parse_s3_uri(uri: Any) -> tuple[str, str]:
    if not isinstance(uri, str):
        raise BadEvent("s3_uri must be a string like s3://bucket/key")
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise BadEvent(f"s3_uri {uri!r} is not s3://bucket/key")
    return parts.netloc, key


def ingest_jobs(event: Any, *, prefix: str) -> list[IngestJob]:
    """Objects to ingest from an S3 notification, an EventBridge ``Object Created`` event or a direct
    invoke ``{"domain": ..., "s3_uri": "s3://bucket/key", "lang": ...}``."""
    if not isinstance(event, dict):
        raise BadEvent("the event must be a JSON object")
    if "s3_uri" in event or "domain" in event:
        bucket, key = _parse_s3_uri(event.get("s3_uri"))
        domain = event.get("domain")
        if not isinstance(domain, str) or not domain.strip():
            raise BadEvent("a direct invoke needs a non-empty 'domain'")
        lang = event.get("lang")
        return [IngestJob(bucket, key, domain.strip(), lang if isinstance(lang, str) else None)]
    if isinstance(event.get("Records"), list) and event["Records"]:
        jobs = []
        for record in event["Records"]:
            try:
                if not str(record["eventName"]).startswith("ObjectCreated"):
                    continue
                bucket = str(record["s3"]["bucket"]["name"])
                key = unquote_plus(str(record["s3"]["object"]["key"]))  # S3 notifications URL-encode keys
            except (KeyError, TypeError) as exc:
                raise BadEvent(f"an S3 record lacks {exc}") from None
            jobs.append(IngestJob(bucket, key, _domain_from_key(key, prefix)))
        return jobs
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        try:
            bucket = str(event["detail"]["bucket"]["name"])
            key = str(event["detail"]["object"]["key"])
        except (KeyError, TypeError) as exc:
            raise BadEvent(f"the S3 EventBridge event lacks {exc}") from None
        return [IngestJob(bucket, key, _domain_from_key(key, prefix))]
    raise BadEvent("expected an S3 event (Records[].s3) or a direct invoke {domain, s3_uri}")


def download(job: IngestJob, folder: Path) -> Path:
    """Fetch one object into ``folder`` (Lambda's /tmp), keeping its file name (the format comes from it)."""
    import boto3  # lazily: only the indexer downloads

    name = Path(job.key).name or "object"
    target = folder / name
    boto3.client("s3").download_file(job.bucket, job.key, str(target))
    return target


def as_dict(value: Any) -> dict[str, Any]:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dict(dump())
    if isinstance(value, dict):
        return value
    return dict(vars(value))
