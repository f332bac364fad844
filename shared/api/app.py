"""FastAPI application factories.

``build_app`` is what every Lambda function wraps with Mangum (one router each); ``create_app`` is the
local server that mounts every router, so local behaviour is the deployed behaviour.
"""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from shared.api import problems
from shared.api.middleware import BodySizeLimit, CorrelationId
from shared.config import env
from shared.config.store import get_config

# "module:attribute" of every router the local server mounts. Each capability adds its own line.
ROUTERS: tuple[str, ...] = (
    "shared.auth.router:router",
    "shared.api.health:router",
    "shared.memory37.router:router",
    "shared.compute.router:router",
    "shared.compute.api:router",
    "shared.genlayers.router:router",
    "shared.media.router:router",
)


def load_router(spec: str) -> APIRouter:
    module, _, attr = spec.partition(":")
    router = getattr(importlib.import_module(module), attr)
    assert isinstance(router, APIRouter), spec
    return router


def build_app(
    routers: list[APIRouter], *, title: str = "hybrid", flush_metrics: bool = True, docs: bool = True
) -> FastAPI:
    cfg = get_config().logic.http
    max_body = int(env.MAX_BODY_BYTES.get() or cfg.max_body_bytes)
    kwargs: dict[str, Any] = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title=title, version="0.1.0", default_response_class=JSONResponse, **kwargs)
    problems.install(app, retry_after_seconds=cfg.retry_after_seconds)
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodySizeLimit, limit=max_body)
    app.add_middleware(CorrelationId, flush_metrics=flush_metrics)
    return app


def check_startup() -> None:
    """Fail at start, naming the variable, when auth cannot work (bot token, signing keys)."""
    from shared.auth.service import get_token_service, get_verifier

    get_verifier()
    get_token_service()


def create_app() -> FastAPI:
    """The local app: every router on one server (``uvicorn --factory shared.api.app:create_app``)."""
    check_startup()
    return build_app([load_router(spec) for spec in ROUTERS], title="hybrid (local)")
