"""Create or update the RunPod template and serverless endpoint of the embedding worker (REST API v1).

    RUNPOD_API_KEY=... python infra/runpod/deploy.py --stage prod --image ghcr.io/org/hybrid-embedding:1.4.0

Definitions live beside this file (``template.json``, ``endpoint.json``); ``${STAGE}`` and ``${IMAGE}``
are substituted. The script is idempotent: it looks the template and the endpoint up by name, creates
what is missing and PATCHes only the fields that differ. The last line of output is one JSON object
with ``template_id``, ``endpoint_id`` and what was done; put the endpoint id into
``RUNPOD_EMBED_ENDPOINT_ID`` (see docs/DEPLOY.md). ``--api-url`` points it at a fake in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
DEFAULT_API_URL = "https://rest.runpod.io/v1"


class RunPodError(RuntimeError):
    pass


def load_definition(name: str, *, stage: str, image: str, folder: Path = HERE) -> dict[str, Any]:
    text = (folder / name).read_text(encoding="utf-8")
    text = text.replace("${STAGE}", stage).replace("${IMAGE}", image)
    data: dict[str, Any] = json.loads(text)
    return data


def _items(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, dict)]
    if isinstance(payload, dict):  # tolerate {"items": [...]} / {"data": [...]} wrappers
        for key in ("items", "data", "templates", "endpoints"):
            if isinstance(payload.get(key), list):
                return [p for p in payload[key] if isinstance(p, dict)]
    return []


def _changed(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


class RunPodRest:
    def __init__(self, api_key: str, api_url: str = DEFAULT_API_URL, timeout: float = 30.0) -> None:
        self.client = httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=timeout,
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self.client.request(method, path, json=body)
        if resp.status_code >= 400:
            raise RunPodError(f"{method} {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content else None

    def upsert(self, kind: str, wanted: dict[str, Any], immutable: set[str]) -> tuple[str, str]:
        """Find ``kind`` ("templates"/"endpoints") by name; create it or patch what differs."""
        found = [i for i in _items(self.call("GET", f"/{kind}")) if i.get("name") == wanted["name"]]
        if len(found) > 1:
            raise RunPodError(f"{len(found)} {kind} are named {wanted['name']!r}; remove the extras first")
        if not found:
            created = self.call("POST", f"/{kind}", wanted)
            if not isinstance(created, dict) or not created.get("id"):
                raise RunPodError(f"creating {kind} {wanted['name']!r} returned no id")
            return str(created["id"]), "created"
        current = found[0]
        patch = {k: v for k, v in _changed(current, wanted).items() if k not in immutable}
        if not patch:
            return str(current["id"]), "unchanged"
        self.call("PATCH", f"/{kind}/{current['id']}", patch)
        return str(current["id"]), "updated"


def deploy(
    *, stage: str, image: str, api_key: str, api_url: str = DEFAULT_API_URL, folder: Path = HERE
) -> dict[str, Any]:
    rest = RunPodRest(api_key, api_url)
    template = load_definition("template.json", stage=stage, image=image, folder=folder)
    endpoint = load_definition("endpoint.json", stage=stage, image=image, folder=folder)
    # isServerless/category are fixed at creation; RunPod refuses to change them later.
    template_id, template_action = rest.upsert("templates", template, immutable={"isServerless", "category"})
    endpoint["templateId"] = template_id
    endpoint_id, endpoint_action = rest.upsert("endpoints", endpoint, immutable={"computeType"})
    return {
        "template_id": template_id,
        "template": template_action,
        "endpoint_id": endpoint_id,
        "endpoint": endpoint_action,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=["dev", "prod"])
    parser.add_argument("--image", required=True, help="the embedding worker image (gpu_handlers/embedding)")
    parser.add_argument("--api-url", default=os.environ.get("RUNPOD_REST_URL", DEFAULT_API_URL))
    args = parser.parse_args(argv)
    api_key = os.environ.get("RUNPOD_API_KEY")
    if not api_key:
        print("RUNPOD_API_KEY is not set: export the RunPod API key first", file=sys.stderr)
        return 2
    try:
        result = deploy(stage=args.stage, image=args.image, api_key=api_key, api_url=args.api_url)
    except (RunPodError, httpx.HTTPError) as exc:
        print(f"runpod deploy failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
