"""functions/auth/handler.py invoked with API Gateway HTTP API v2 events and a Lambda context."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from shared.auth.telegram import sign_init_data
from tests.conftest import TEST_BOT_TOKEN
from tests.integration.lambda_support import (
    JsonLogs,
    LambdaContext,
    MotoServer,
    fresh_handler,
    http_event,
    load_event,
    log_lines,
    response_json,
)


def init_data(telegram_id: int) -> str:
    user = {"id": telegram_id, "first_name": "Lambda", "username": f"u{telegram_id}"}
    return sign_init_data(
        {"auth_date": str(int(time.time())), "query_id": "q", "user": json.dumps(user)}, TEST_BOT_TOKEN
    )


@pytest.fixture()
def auth(app_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DB_POOL_SIZE", "1")
    yield fresh_handler("auth").handler


@pytest.fixture()
def logs() -> Iterator[JsonLogs]:
    with JsonLogs() as collected:
        yield collected


def login(handler: Any, telegram_id: int, **kw: Any) -> dict[str, Any]:
    event = http_event("POST", "/v1/auth/telegram", body={"init_data": init_data(telegram_id)}, **kw)
    return dict(handler(event, LambdaContext()))


def test_login_from_a_base64_event_with_cookies_and_query_string(
    auth: Any, logs: JsonLogs, capfd: Any
) -> None:
    recorded = load_event("http_post_base64.json")
    assert recorded["isBase64Encoded"] and recorded["cookies"] and recorded["rawQueryString"]
    resp = login(auth, 4242, query="lang=ru&from=webapp", request_id="REQ-login-1=")
    assert resp["statusCode"] == 200, resp
    body = response_json(resp)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["tg"] == 4242 and claims["aud"] == "hybrid-webapp"
    assert resp["headers"]["x-request-id"] == "REQ-login-1="
    out = capfd.readouterr().out
    assert "tg_theme" not in out and TEST_BOT_TOKEN not in out
    # EMF metrics are flushed on every invocation (one JSON document on stdout)
    emf = [line for line in log_lines(out) if "_aws" in line]
    assert emf and emf[-1]["AuthIssued"] in (1.0, [1.0]), emf


def test_logs_carry_cold_start_and_the_api_gateway_request_id(auth: Any, logs: JsonLogs) -> None:
    from shared.observability.logging import get_logger

    event = http_event("GET", "/.well-known/jwks.json", request_id="REQ-corr-42=")
    assert auth(event, LambdaContext())["statusCode"] == 200
    get_logger().info("after the request")  # the correlation id stays set for the invocation
    lines = logs.lines()
    assert lines[-1]["correlation_id"] == "REQ-corr-42=" and "cold_start" in lines[-1]
    bad = auth({}, LambdaContext(aws_request_id="ctx-1"))
    assert bad["statusCode"] == 400
    (err,) = [x for x in logs.lines() if x.get("message") == "unexpected event shape"]
    assert err["function_request_id"] == "ctx-1" and err["cold_start"] in (True, False)


def test_me_uses_the_authorizer_claims_from_request_context(auth: Any) -> None:
    token = response_json(login(auth, 5151))["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    # API Gateway passes claims as strings; arrays are flattened to "[a b]"
    gw_claims = {k: (f"[{' '.join(v)}]" if isinstance(v, list) else str(v)) for k, v in claims.items()}
    event = http_event(
        "GET", "/v1/auth/me", claims=gw_claims, headers={"authorization": "Bearer not-checked"}
    )
    resp = auth(event, LambdaContext())
    assert resp["statusCode"] == 200, resp
    assert response_json(resp)["telegram_id"] == 5151


def test_wellknown_routes_answer_without_a_token(auth: Any) -> None:
    jwks = auth(http_event("GET", "/.well-known/jwks.json"), LambdaContext())
    assert jwks["statusCode"] == 200 and response_json(jwks)["keys"][0]["alg"] == "RS256"
    oidc = auth(http_event("GET", "/.well-known/openid-configuration"), LambdaContext())
    assert response_json(oidc)["jwks_uri"].endswith("/.well-known/jwks.json")


def test_a_plain_text_body_and_a_bad_init_data_are_problems_not_crashes(auth: Any) -> None:
    event = http_event("POST", "/v1/auth/telegram", body={"init_data": "user=x&hash=00"}, base64_body=False)
    resp = auth(event, LambdaContext())
    assert resp["statusCode"] == 401
    assert resp["headers"]["content-type"].startswith("application/problem+json")
    garbage = http_event("POST", "/v1/auth/telegram", body=b"\xff\xfe not json")
    assert auth(garbage, LambdaContext())["statusCode"] in (400, 422)


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"foo": "bar"},
        [],
        "GET /",
        {"version": "2.0", "requestContext": {"requestId": "x"}},  # no http section
        {"version": "2.0", "requestContext": {"http": {"method": "GET"}}, "rawPath": "/x"},
        load_event("eventbridge_scheduled.json"),
        load_event("s3_object_created.json"),
    ],
)
def test_unexpected_event_shapes_are_logged_400s(auth: Any, logs: JsonLogs, event: Any) -> None:
    resp = auth(event, LambdaContext())
    assert resp["statusCode"] == 400, resp
    assert json.loads(resp["body"])["type"].endswith("/bad-event")
    logged = [line for line in logs.lines() if line.get("message") == "unexpected event shape"]
    assert logged and logged[0]["level"] == "ERROR"


def test_init_does_not_connect_to_the_database(app_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "hybrid-init-probe")
    fresh_handler("auth")
    with psycopg.connect(app_env) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hybrid-init-probe'"
        ).fetchone()
    assert row == (0,)


# --- secrets at start-up ------------------------------------------------------------------------
@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    with MotoServer() as moto:
        for k, v in moto.env().items():
            monkeypatch.setenv(k, v)
        yield moto


def test_secrets_are_read_at_init_from_secrets_manager_and_ssm(
    app_env: str, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    boto3.client("secretsmanager").create_secret(
        Name="hybrid/dev/telegram-bot-token", SecretString=TEST_BOT_TOKEN
    )
    boto3.client("ssm").put_parameter(
        Name="/hybrid/dev/database-url", Value=app_env, Type="SecureString", Overwrite=True
    )
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv(
        "SECRET_IDS",
        "TELEGRAM_BOT_TOKEN=hybrid/dev/telegram-bot-token,DATABASE_URL=ssm:/hybrid/dev/database-url",
    )
    handler = fresh_handler("auth").handler
    resp = login(handler, 777)
    assert resp["statusCode"] == 200, resp


def test_a_missing_secret_stops_init_naming_it(
    app_env: str, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config.env import MissingSetting

    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.setenv("SECRET_IDS", "TELEGRAM_BOT_TOKEN=hybrid/dev/telegram-bot-token")
    with pytest.raises(MissingSetting) as err:
        fresh_handler("auth")
    assert "TELEGRAM_BOT_TOKEN" in str(err.value) and "hybrid/dev/telegram-bot-token" in str(err.value)
    assert "ResourceNotFoundException" in str(err.value)


def test_outside_local_a_missing_bot_token_stops_init_naming_it(
    app_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.config.env import MissingSetting

    monkeypatch.setenv("HYBRID_ENV", "dev")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    with pytest.raises(MissingSetting, match="TELEGRAM_BOT_TOKEN"):
        fresh_handler("auth")


def test_a_body_flagged_base64_that_is_not_is_a_400(auth: Any, logs: JsonLogs) -> None:
    event = http_event("POST", "/v1/auth/telegram", body={"init_data": "x"})
    event["body"] = "!!!not*base64$$"
    resp = auth(event, LambdaContext())
    assert resp["statusCode"] == 400
    assert any(x.get("message") == "unexpected event shape" for x in logs.lines())


def test_healthz_answers_without_a_token_and_checks_the_database(auth: Any) -> None:
    resp = auth(http_event("GET", "/healthz"), LambdaContext())
    assert resp["statusCode"] == 200, resp
    assert response_json(resp) == {"status": "ok"}
