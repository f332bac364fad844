"""functions/drain/handler.py with the EventBridge scheduled event and a Lambda context."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.lambda_support import JsonLogs, LambdaContext, fresh_handler, load_event, log_lines


@pytest.fixture()
def drain(app_env: str) -> Any:
    return fresh_handler("drain").handler


def test_the_scheduled_event_runs_one_bounded_tick(drain: Any, capfd: Any) -> None:
    event = load_event("eventbridge_scheduled.json")
    assert event["detail-type"] == "Scheduled Event"
    result = drain(event, LambdaContext(function_name="hybrid-dev-drain", remaining_ms=20_000))
    assert isinstance(result, dict) and "statusCode" not in result, result
    assert "expired" in result and "at" in result
    # one EMF document per invocation with the queue gauges and the dead-task gauge the alarm watches
    emf = [line for line in log_lines(capfd.readouterr().out) if "_aws" in line]
    assert emf and emf[-1]["TasksDead"] in (0, 0.0, [0.0]) and "QueueDepth" in emf[-1], emf


def test_a_direct_invoke_also_drains(drain: Any) -> None:
    result = drain({"action": "drain"}, LambdaContext(function_name="hybrid-dev-drain"))
    assert "expired" in result, result


@pytest.mark.parametrize(
    "event",
    [{}, {"source": "aws.events", "detail-type": "Object Created"}, load_event("s3_object_created.json")],
)
def test_other_events_are_logged_400s(drain: Any, event: Any) -> None:
    with JsonLogs() as logs:
        result = drain(event, LambdaContext(function_name="hybrid-dev-drain", aws_request_id="drain-bad-1"))
    assert result["statusCode"] == 400 and result["error"] == "bad-event"
    (line,) = [x for x in logs.lines() if x.get("message") == "unexpected event shape"]
    assert line["level"] == "ERROR" and line["correlation_id"] == "drain-bad-1"


def test_the_tick_stops_starting_work_one_inline_call_before_the_timeout(drain: Any) -> None:
    from functions.drain import handler as module
    from shared.config.store import get_config

    slowest = max(p.timeout_seconds for p in get_config().logic.media.providers.values())
    assert slowest == 300  # avatar_http
    assert module.inline_task_seconds() > slowest
    # the deployed timeout (360 s): the tick may start work for what is left after one avatar call
    ctx = LambdaContext(function_name="hybrid-dev-drain", remaining_ms=360_000)
    result = drain({"action": "drain"}, ctx)
    assert 1.0 < result["max_seconds"] <= 360 - slowest - 5, result
    assert result["elapsed_seconds"] < result["max_seconds"]
    # a timeout shorter than one inline call: only the minimal bounded tick, and a warning says why
    with JsonLogs() as logs:
        short = drain({"action": "drain"}, LambdaContext(remaining_ms=120_000))
    assert short["max_seconds"] == module.MIN_TICK_SECONDS and "expired" in short
    assert any(x.get("message") == "drain timeout leaves no room for an inline task" for x in logs.lines())
