"""Turn routers into a Lambda handler: FastAPI + Mangum (lifespan off), Powertools logging and metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def http_handler(*routers: APIRouter, title: str, startup: Callable[[], None] | None = None) -> LambdaHandler:
    from mangum import Mangum

    from shared.api.app import build_app
    from shared.config.secrets import load_secrets
    from shared.observability.logging import get_logger
    from shared.observability.metrics import get_metrics

    load_secrets()  # SECRET_IDS → environment, once per Lambda environment; a missing one names itself
    register_snapshot_warmup()
    if startup is not None:
        startup()  # a missing secret fails the init phase, naming the variable
    app = build_app(list(routers), title=title, flush_metrics=False, docs=False)
    asgi = Mangum(app, lifespan="off")
    logger, metrics = get_logger(), get_metrics()

    @metrics.log_metrics
    @logger.inject_lambda_context(log_event=False, clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
            return bad_event(event, "not an API Gateway HTTP event")
        try:
            return dict(asgi(event, context))
        except Exception as exc:  # the adapter could not read the event (the app's own errors are 500s)
            return bad_event(event, f"{exc.__class__.__name__}: {exc}")

    return handler


def register_snapshot_warmup() -> bool:
    """Under SnapStart, import the database driver before the snapshot is taken.

    psycopg is imported lazily so that a plain cold start does not pay for it during init, but every
    HTTP function needs it on its first request. With SnapStart the init phase runs once, at publish
    time, and instances resume from its memory snapshot: importing psycopg in a before-snapshot hook puts
    it in that snapshot, so restored instances do not import it on their first request. The Lambda
    Python runtime provides ``snapshot_restore_py``; elsewhere (tests, the local server, the cold-start
    benchmark) it is absent and nothing is registered. Returns whether the hook was registered.
    """
    try:
        from snapshot_restore_py import register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(_import_database_driver)
    return True


def _import_database_driver() -> None:
    import importlib

    for name in ("psycopg", "psycopg.rows", "psycopg.types.json", "psycopg_pool"):
        importlib.import_module(name)


def bad_event(event: Any, reason: str) -> dict[str, Any]:
    """An event of an unexpected shape: log it clearly and answer 400 problem+json."""
    import json

    from shared.api.problems import PROBLEM_JSON, TYPE_BASE
    from shared.observability.logging import get_logger

    keys = sorted(map(str, event))[:20] if isinstance(event, dict) else type(event).__name__
    get_logger().error("unexpected event shape", extra={"reason": reason[:300], "event_keys": keys})
    body = {
        "type": TYPE_BASE + "bad-event",
        "title": "Bad Request",
        "status": 400,
        "detail": "the function received an event it cannot read as an HTTP request",
    }
    return {"statusCode": 400, "headers": {"content-type": PROBLEM_JSON}, "body": json.dumps(body)}
