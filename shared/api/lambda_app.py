"""Turn routers into a Lambda handler: FastAPI + Mangum (lifespan off), Powertools logging and metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def http_handler(*routers: APIRouter, title: str, startup: Callable[[], None] | None = None) -> LambdaHandler:
    from mangum import Mangum

    from shared.api.app import build_app
    from shared.observability.logging import get_logger
    from shared.observability.metrics import get_metrics

    if startup is not None:
        startup()  # a missing secret fails the init phase, naming the variable
    app = build_app(list(routers), title=title, flush_metrics=False, docs=False)
    asgi = Mangum(app, lifespan="off")
    logger, metrics = get_logger(), get_metrics()

    @metrics.log_metrics
    @logger.inject_lambda_context(log_event=False, clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(asgi(event, context))

    return handler
