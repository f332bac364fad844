"""functions/generate/handler.py with API Gateway v2 events (authorizer claims in requestContext)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.lambda_support import LambdaContext, fresh_handler, http_event, response_json

CLAIMS = {"sub": "1", "tg": "4242", "roles": "[user]", "aud": "hybrid-webapp", "iss": "https://x"}


@pytest.fixture()
def generate(app_env: str) -> Any:
    return fresh_handler("generate").handler


def test_an_unknown_profile_is_a_problem_from_the_router(generate: Any) -> None:
    event = http_event(
        "POST", "/v1/generate", body={"profile": "no-such-profile", "input": {}}, claims=CLAIMS
    )
    resp = generate(event, LambdaContext(function_name="hybrid-dev-generate"))
    assert 400 <= resp["statusCode"] < 500 and resp["statusCode"] != 401, resp
    assert resp["headers"]["content-type"].startswith("application/problem+json")
    assert "no-such-profile" in response_json(resp)["detail"]


def test_without_claims_or_token_it_is_401(generate: Any) -> None:
    event = http_event("POST", "/v1/generate", body={"profile": "x", "input": {}})
    assert generate(event, LambdaContext())["statusCode"] == 401


def test_an_unexpected_event_is_400(generate: Any) -> None:
    resp = generate({"Records": []}, LambdaContext())
    assert resp["statusCode"] == 400 and response_json(resp)["type"].endswith("/bad-event")
