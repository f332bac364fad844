"""A real HTTP server on 127.0.0.1 for provider fakes.

Provider-specific fakes register routes on it (``server.route("POST", "/v1/embeddings", handler)``);
tests script faults per route: an HTTP status with headers, a hang, or a delay, consumed in order
before the handler answers normally. The server records every request so a test can assert that a
provider was (or was not) called.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list → JSON; bytes → raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Fault:
    status: int | None = None  # answer with this status (and body) instead of the handler
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # sleep before answering (a hang is a long delay)


Handler = Callable[[Request], Response]


class FakeServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.always: dict[str, Fault] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without NODELAY, Nagle + delayed ACK adds ~40 ms
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Request(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body
                )
                resp = server.dispatch(req)
                payload = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
                try:
                    self.send_response(resp.status)
                    self.send_header("content-type", resp.content_type)
                    self.send_header("content-length", str(len(payload)))
                    for k, v in resp.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- configuration -----------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler) -> None:
        """Exact path, or a prefix when ``path`` ends with ``*``."""
        if path.endswith("*"):
            self.prefix_routes.append((method.upper(), path[:-1], handler))
        else:
            self.routes[(method.upper(), path)] = handler

    def fail_next(self, path: str, *faults: Fault) -> None:
        with self._lock:
            self.faults[path].extend(faults)

    def fail_always(self, path: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self.always.pop(path, None)
            else:
                self.always[path] = fault

    def calls(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.always.clear()

    # --- dispatch ----------------------------------------------------------------
    def _find(self, method: str, path: str) -> Handler | None:
        if (method, path) in self.routes:
            return self.routes[(method, path)]
        for m, prefix, handler in self.prefix_routes:
            if m == method and path.startswith(prefix):
                return handler
        return None

    def dispatch(self, req: Request) -> Response:
        with self._lock:
            self.requests.append(req)
            queue = self.faults.get(req.path)
            fault = queue.popleft() if queue else self.always.get(req.path)
        if fault is not None:
            if fault.delay:
                self._stop.wait(fault.delay)
            if fault.status is not None:
                body = (
                    fault.body if fault.body is not None else {"error": {"message": f"fault {fault.status}"}}
                )
                return Response(fault.status, body, fault.headers)
        handler = self._find(req.method, req.path)
        if handler is None:
            return Response(404, {"error": {"message": f"no fake route {req.method} {req.path}"}})
        try:
            return handler(req)
        except Exception as exc:  # a broken fake must be visible, not a hang
            return Response(500, {"error": {"message": f"fake handler crashed: {exc!r}"}})


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
