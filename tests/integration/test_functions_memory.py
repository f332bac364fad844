"""functions/memory/handler.py with API Gateway v2 events (authorizer claims in requestContext)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.lambda_support import LambdaContext, fresh_handler, http_event, response_json

CLAIMS = {"sub": "1", "tg": "4242", "roles": "[user]", "aud": "hybrid-webapp", "iss": "https://x"}


@pytest.fixture()
def memory(app_env: str) -> Any:
    return fresh_handler("memory").handler


def test_an_unknown_domain_is_a_problem_from_the_router(memory: Any) -> None:
    event = http_event(
        "POST", "/v1/memory/search", body={"domain": "no-such-domain", "query": "fire"}, claims=CLAIMS
    )
    resp = memory(event, LambdaContext(function_name="hybrid-dev-memory"))
    assert 400 <= resp["statusCode"] < 500 and resp["statusCode"] != 401, resp
    assert resp["headers"]["content-type"].startswith("application/problem+json")


def test_a_malformed_body_is_422_and_no_claims_is_401(memory: Any) -> None:
    bad = http_event("POST", "/v1/memory/search", body={"top_k": "many"}, claims=CLAIMS)
    assert memory(bad, LambdaContext())["statusCode"] == 422
    anonymous = http_event("POST", "/v1/memory/search", body={"domain": "lore", "query": "x"})
    assert memory(anonymous, LambdaContext())["statusCode"] == 401


def test_an_unexpected_event_is_400(memory: Any) -> None:
    resp = memory({"version": "2.0", "requestContext": {}}, LambdaContext())
    assert resp["statusCode"] == 400 and response_json(resp)["type"].endswith("/bad-event")
