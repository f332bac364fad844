"""Helpers for invoking function handlers the way Lambda does: fixture events and a context object."""

from __future__ import annotations

import base64
import copy
import importlib
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"


@dataclass
class LambdaContext:
    """The attributes of the Python runtime's context object that our code and Powertools read."""

    function_name: str = "hybrid-dev-auth"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 29_000
    log_group_name: str = "/aws/lambda/hybrid-dev-auth"
    log_stream_name: str = "2026/11/21/[$LATEST]0123456789abcdef"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-central-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    base64_body: bool = True,
    query: str = "",
    headers: dict[str, str] | None = None,
    claims: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event built from the recorded fixtures, with this request's parts."""
    event = copy.deepcopy(load_event("http_get_jwt_claims.json" if claims else "http_post_base64.json"))
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    params: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        k, _, v = pair.partition("=")
        params[k] = f"{params[k]},{v}" if k in params else v
    event["queryStringParameters"] = params or None
    if not params:
        event.pop("queryStringParameters")
    event["requestContext"]["requestId"] = request_id or uuid.uuid4().hex[:16] + "="
    hdrs = {k: v for k, v in event["headers"].items() if k not in ("authorization", "content-length")}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    if claims is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"] = claims
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    else:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["content-length"] = str(len(raw))
        hdrs.setdefault("content-type", "application/json")
        event["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode()
        event["isBase64Encoded"] = base64_body
    event["headers"] = hdrs
    return event


def fresh_handler(name: str) -> ModuleType:
    """Import functions/<name>/handler.py anew: the Lambda init phase, in this process."""
    for mod in [m for m in sys.modules if m == f"functions.{name}.handler"]:
        del sys.modules[mod]
    return importlib.import_module(f"functions.{name}.handler")


def response_json(resp: dict[str, Any]) -> Any:
    body = resp.get("body") or ""
    if resp.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


def log_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class MotoServer:
    """moto's server mode on 127.0.0.1: real boto3 clients talk HTTP to it (S3, Secrets Manager, SSM)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> MotoServer:
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        import urllib.request

        # moto keeps its state per process: start every use from empty
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-central-1",
            "AWS_REGION": "eu-central-1",
        }


class JsonLogs:
    """Collect what the Powertools logger writes (its own JSON formatter), whatever stdout is."""

    def __init__(self) -> None:
        import io
        import logging

        from shared.observability.logging import get_logger

        self.buffer = io.StringIO()
        self.logger = get_logger()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(self.logger.registered_formatter)

    def __enter__(self) -> JsonLogs:
        self.logger._logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger._logger.removeHandler(self.handler)

    def lines(self) -> list[dict[str, Any]]:
        return log_lines(self.buffer.getvalue())
