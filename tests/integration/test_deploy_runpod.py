"""infra/runpod/deploy.py against a fake RunPod REST API on 127.0.0.1 (real HTTP, the real script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.http import FakeServer, Fault, Request, Response

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "runpod" / "deploy.py"
API_KEY = "rpa_TESTKEY0123456789abcdefghij"


class FakeRunPod:
    """Just enough of https://rest.runpod.io/v1: list, create and patch templates and endpoints."""

    def __init__(self, server: FakeServer) -> None:
        self.store: dict[str, dict[str, dict[str, Any]]] = {"templates": {}, "endpoints": {}}
        for kind in ("templates", "endpoints"):
            server.route("GET", f"/v1/{kind}", self._list(kind))
            server.route("POST", f"/v1/{kind}", self._create(kind))
            server.route("PATCH", f"/v1/{kind}/*", self._patch(kind))

    def _authorized(self, req: Request) -> bool:
        return req.headers.get("Authorization") == f"Bearer {API_KEY}"

    def _list(self, kind: str):  # type: ignore[no-untyped-def]
        def handler(req: Request) -> Response:
            if not self._authorized(req):
                return Response(401, {"error": "unauthorized"})
            return Response(200, list(self.store[kind].values()))

        return handler

    def _create(self, kind: str):  # type: ignore[no-untyped-def]
        def handler(req: Request) -> Response:
            body = req.json()
            item = {**body, "id": uuid.uuid4().hex[:12]}
            self.store[kind][item["id"]] = item
            return Response(200, item)

        return handler

    def _patch(self, kind: str):  # type: ignore[no-untyped-def]
        def handler(req: Request) -> Response:
            item_id = req.path.rsplit("/", 1)[1]
            if item_id not in self.store[kind]:
                return Response(404, {"error": "not found"})
            self.store[kind][item_id].update(req.json())
            return Response(200, self.store[kind][item_id])

        return handler


@pytest.fixture()
def runpod() -> Iterator[tuple[FakeServer, FakeRunPod]]:
    with FakeServer() as server:
        yield server, FakeRunPod(server)


def run(server: FakeServer, *args: str, key: str | None = API_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    if key:
        env["RUNPOD_API_KEY"] = key
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--api-url", f"{server.url}/v1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_first_run_creates_the_template_and_an_endpoint_that_uses_it(runpod: Any) -> None:
    server, fake = runpod
    proc = run(server, "--stage", "dev", "--image", "ghcr.io/acme/embed:1.0")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["template"] == "created" and result["endpoint"] == "created"
    template = fake.store["templates"][result["template_id"]]
    endpoint = fake.store["endpoints"][result["endpoint_id"]]
    assert template["name"] == "hybrid-dev-embedding" and template["imageName"] == "ghcr.io/acme/embed:1.0"
    assert template["isServerless"] is True and template["env"]["EMBED_MODEL"] == "BAAI/bge-m3"
    assert endpoint["templateId"] == result["template_id"] and endpoint["workersMin"] == 0
    assert endpoint["gpuTypeIds"] and endpoint["name"] == "hybrid-dev-embedding"
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in server.calls())
    assert API_KEY not in proc.stdout + proc.stderr


def test_rerun_is_idempotent_and_a_new_image_patches_only_what_changed(runpod: Any) -> None:
    server, fake = runpod
    first = json.loads(run(server, "--stage", "prod", "--image", "img:1").stdout.splitlines()[-1])
    server.reset()
    again = json.loads(run(server, "--stage", "prod", "--image", "img:1").stdout.splitlines()[-1])
    assert again == {**first, "template": "unchanged", "endpoint": "unchanged"}
    assert {r.method for r in server.calls()} == {"GET"}

    server.reset()
    bumped = json.loads(run(server, "--stage", "prod", "--image", "img:2").stdout.splitlines()[-1])
    assert bumped["template"] == "updated" and bumped["endpoint"] == "unchanged"
    (patch,) = [r for r in server.calls() if r.method == "PATCH"]
    assert patch.path == f"/v1/templates/{first['template_id']}" and patch.json() == {"imageName": "img:2"}
    assert len(fake.store["templates"]) == 1 and len(fake.store["endpoints"]) == 1


def test_api_errors_and_a_missing_key_fail_with_a_clear_message(runpod: Any) -> None:
    server, _ = runpod
    wrong = run(server, "--stage", "dev", "--image", "img:1", key="rpa_wrong_key_000000000000000")
    assert wrong.returncode == 1 and "GET /templates answered 401" in wrong.stderr
    assert "rpa_wrong_key" not in wrong.stderr
    server.fail_next("/v1/endpoints", Fault(status=500))
    broken = run(server, "--stage", "dev", "--image", "img:1")
    assert broken.returncode == 1 and "500" in broken.stderr
    missing = run(server, "--stage", "dev", "--image", "img:1", key=None)
    assert missing.returncode == 2 and "RUNPOD_API_KEY is not set" in missing.stderr
