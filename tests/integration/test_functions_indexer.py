"""functions/indexer/handler.py: an S3 upload event (and a direct invoke) against moto's S3 server."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.integration.lambda_support import JsonLogs, LambdaContext, MotoServer, fresh_handler, load_event

BUCKET = "hybrid-test-media"
KEY = "knowledge/lore/city of brass.md"  # S3 notifications carry it URL-encoded: city+of+brass.md
TEXT = "# City of Brass\n\nThe City of Brass floats on the Elemental Plane of Fire, ruled by efreeti.\n"


@pytest.fixture()
def indexer(app_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    with MotoServer() as moto:
        for k, v in moto.env().items():
            monkeypatch.setenv(k, v)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=TEXT.encode())
        yield fresh_handler("indexer").handler


def ctx() -> LambdaContext:
    return LambdaContext(function_name="hybrid-dev-indexer", remaining_ms=900_000)


def test_an_s3_upload_is_ingested_into_the_domain_of_its_key(indexer: Any, app_env: str) -> None:
    event = load_event("s3_object_created.json")
    assert event["Records"][0]["s3"]["object"]["key"] == "knowledge/lore/city+of+brass.md"
    result = indexer(event, ctx())
    assert result["statusCode"] == 200, result
    (done,) = result["ingested"]
    assert done["s3_uri"] == f"s3://{BUCKET}/{KEY}" and done["domain"] == "lore"
    assert done["documents"] == 1 and done["chunks"] >= 1 and done["embedded"] >= 1
    with psycopg.connect(app_env) as conn:
        rows = conn.execute("SELECT source FROM memory_documents WHERE domain = 'lore'").fetchall()
    assert (f"s3://{BUCKET}/{KEY}",) in rows

    again = indexer(event, ctx())["ingested"][0]  # the same object again: nothing to embed
    assert again["embedded"] == 0 and again["skipped"] == 1


def test_a_direct_invoke_names_domain_and_s3_uri(indexer: Any) -> None:
    result = indexer({"domain": "lore", "s3_uri": f"s3://{BUCKET}/{KEY}", "lang": "en"}, ctx())
    assert result["statusCode"] == 200 and result["ingested"][0]["documents"] == 1


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"domain": "lore"},
        {"domain": "lore", "s3_uri": "https://example.com/x.md"},
        {"domain": "", "s3_uri": f"s3://{BUCKET}/{KEY}"},
        {"domain": "no-such-domain", "s3_uri": f"s3://{BUCKET}/{KEY}"},
        load_event("eventbridge_scheduled.json"),
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]},
    ],
)
def test_bad_events_are_logged_400s(indexer: Any, event: Any) -> None:
    with JsonLogs() as logs:
        result = indexer(event, ctx())
    assert result["statusCode"] == 400 and result["error"] == "bad-event", result
    assert any(x.get("message") == "unexpected event shape" for x in logs.lines())


def test_a_key_outside_the_knowledge_prefix_is_refused(indexer: Any) -> None:
    event = copy.deepcopy(load_event("s3_object_created.json"))
    event["Records"][0]["s3"]["object"]["key"] = "media/ab/cd.png"
    result = indexer(event, ctx())
    assert result["statusCode"] == 400 and "knowledge/<domain>/" in result["detail"]
