"""`hybrid serve` ingests the sample knowledge; search works through the API and the CLI (real MiniLM)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.serving import HYBRID, ROOT, start_server, stop_server


@pytest.fixture(scope="module")
def served(db_url: str) -> Iterator[tuple[str, str]]:
    proc, base = start_server(db_url, timeout=240)  # ingests the sample knowledge with the real MiniLM
    yield base, db_url
    out = stop_server(proc)
    assert "sample knowledge: lore:" in out, out


def test_sample_knowledge_is_searchable_through_the_api_and_the_cli(served: tuple[str, str]) -> None:
    base, db_url = served
    env = {**os.environ, "DATABASE_URL": db_url}
    tok = subprocess.run(
        [HYBRID, "dev-token", "--telegram-id", "777"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    resp = httpx.post(
        base + "/v1/memory/search",
        headers={"Authorization": f"Bearer {tok}"},
        timeout=60,
        json={"domain": "lore", "query": "who leads travellers across the marsh at night?", "top_k": 3},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["hits"][0]["doc_id"] == "lantern-order.md"

    ru = httpx.post(
        base + "/v1/memory/search",
        headers={"Authorization": f"Bearer {tok}"},
        timeout=60,
        json={"domain": ["lore"], "query": "чем пробить чешую дракона", "top_k": 1},
    )
    assert ru.json()["hits"][0]["doc_id"] == "drakon-kharazul.md"

    out = (
        subprocess.run(
            [
                HYBRID,
                "search",
                "--domain",
                "srd",
                "--query",
                "how long is a long rest",
                "--json",
                "--top-k",
                "2",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()
    )
    hits = json.loads(out[-1])
    assert (
        hits[0]["doc_id"] == "resting.md"
        and {"doc_id", "chunk_id", "title", "text", "score"} <= hits[0].keys()
    )

    again = (
        subprocess.run(
            [HYBRID, "ingest", "--domain", "lore", "--source", "shared/memory37/sample/lore"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()
    )
    summary = json.loads(again[-1])
    assert summary["embedded"] == 0 and summary["skipped"] == summary["documents"] == 6
