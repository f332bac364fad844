"""The fake HTTP server that provider fakes build on answers, scripts faults and records calls."""

from __future__ import annotations

import time

import httpx

from tests.fakes.http import FakeServer, Fault, Response


def test_routes_faults_and_recording() -> None:
    with FakeServer() as srv:
        srv.route("POST", "/v1/echo", lambda r: Response(200, {"got": r.json()}))
        srv.fail_next("/v1/echo", Fault(status=429, headers={"retry-after": "2"}))
        first = httpx.post(srv.url + "/v1/echo", json={"a": 1})
        assert first.status_code == 429 and first.headers["retry-after"] == "2"
        assert httpx.post(srv.url + "/v1/echo", json={"a": 1}).json() == {"got": {"a": 1}}
        assert len(srv.calls("/v1/echo")) == 2
        srv.fail_always("/v1/echo", Fault(delay=0.5))
        started = time.monotonic()
        try:
            httpx.post(srv.url + "/v1/echo", json={}, timeout=0.1)
            raise AssertionError("expected a timeout")
        except httpx.TimeoutException:
            pass
        assert time.monotonic() - started < 0.4
        assert httpx.get(srv.url + "/nope").status_code == 404
