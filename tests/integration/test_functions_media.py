"""functions/media/handler.py with API Gateway v2 events (authorizer claims in requestContext)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.lambda_support import LambdaContext, fresh_handler, http_event, response_json

CLAIMS = {"sub": "1", "tg": "4242", "roles": "[user]", "aud": "hybrid-webapp", "iss": "https://x"}


@pytest.fixture()
def media(app_env: str) -> Any:
    return fresh_handler("media").handler


def test_an_unknown_job_is_404_for_an_authenticated_user(media: Any) -> None:
    event = http_event("GET", f"/v1/media/jobs/{uuid.uuid4()}", claims=CLAIMS)
    resp = media(event, LambdaContext(function_name="hybrid-dev-media"))
    assert resp["statusCode"] == 404, resp
    assert resp["headers"]["content-type"].startswith("application/problem+json")


def test_without_claims_or_token_it_is_401(media: Any) -> None:
    event = http_event("GET", f"/v1/media/jobs/{uuid.uuid4()}")
    assert media(event, LambdaContext())["statusCode"] == 401


def test_an_unexpected_event_is_400(media: Any) -> None:
    resp = media("not an event", LambdaContext())
    assert resp["statusCode"] == 400 and response_json(resp)["type"].endswith("/bad-event")
