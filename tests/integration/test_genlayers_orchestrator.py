"""Orchestration: plan → subtasks concurrently under a limit → assembly; failed subtasks retried alone."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.genlayers.orchestrator import SubtasksFailed
from shared.genlayers.service import Context, Generator
from shared.providers.resilience import FallbackChain
from tests.fakes.openai_chat import FakeOpenAI, Reply, schema_name, write_config

PLAN = {
    "type": "object",
    "properties": {
        "subtasks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
                "required": ["id", "title"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["subtasks"],
    "additionalProperties": False,
}
SCENE = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
STORY = {
    "type": "object",
    "properties": {"scenes": {"type": "array", "items": {"type": "string"}}},
    "required": ["scenes"],
    "additionalProperties": False,
}


class Script:
    """Answers by schema name; counts calls per step and subtask; tracks calls in flight."""

    def __init__(self, fail: dict[str, int]) -> None:
        self.fail = dict(fail)  # subtask id -> how many of its calls return non-JSON
        self.counts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        name = body["response_format"]["json_schema"]["name"]
        user = body["messages"][-1]["content"]
        if name == "planner":
            self.counts["plan"] += 1
            return Reply.json({"subtasks": [{"id": f"s{i}", "title": f"Scene {i}"} for i in range(1, 5)]})
        if name == "assembler":
            self.counts["assemble"] += 1
            results = json.loads(user.split("Results: ", 1)[1])
            return Reply.json({"scenes": [r["output"]["text"] for r in results]})
        sid = re.search(r"Subtask (s\d+)", user).group(1)  # type: ignore[union-attr]
        with self.lock:
            self.counts[sid] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failing = self.fail.get(sid, 0) > 0
            if failing:
                self.fail[sid] -= 1
        time.sleep(0.15)
        with self.lock:
            self.in_flight -= 1
        return Reply(content="not json") if failing else Reply.json({"text": f"text of {sid}"})


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    oa = FakeOpenAI()
    oa.server.start()
    yield oa
    oa.server.stop()


@pytest.fixture()
def gen(
    fake: FakeOpenAI, tmp_path: Path, db_url: str, reset_singletons: None, monkeypatch: pytest.MonkeyPatch
) -> Generator:
    fake.reset()
    base = {"provider": "fake", "model": "gpt-fake", "retries": 0, "feature": "sub"}
    d = write_config(
        tmp_path / "cfg",
        providers={"fake": {"type": "openai", "base_url": fake.base_url, "api_key_env": "OPENAI_API_KEY"}},
        profiles={
            "planner": {**base, "output_schema": PLAN},
            "worker": {
                **base,
                "output_schema": SCENE,
                "template": "Request: {request}\nSubtask {id}: {title}",
                "variables": {"request": {}, "id": {}, "title": {}},
            },
            "assembler": {
                **base,
                "output_schema": STORY,
                "template": "Request: {request}\nResults: {results}",
                "variables": {"request": {}, "results": {}},
            },
            "story": {
                "feature": "stories",
                "plan": {
                    "planner": "planner",
                    "worker": "worker",
                    "assembler": "assembler",
                    "max_concurrency": 2,
                    "subtask_retries": 1,
                },
            },
        },
    )
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(d))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DB_POOL_SIZE", "4")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake-key-000000000000")
    return Generator(chain=FallbackChain())


def test_plan_runs_subtasks_concurrently_and_retries_only_the_failed_one(
    gen: Generator, fake: FakeOpenAI, db_url: str
) -> None:
    script = Script(fail={"s2": 1})
    fake.default = script
    res = gen.generate("story", "a heist in four scenes", Context(session_id="orch-1"))
    assert res.output == {"scenes": [f"text of s{i}" for i in range(1, 5)]}
    assert script.counts == Counter({"plan": 1, "s1": 1, "s2": 2, "s3": 1, "s4": 1, "assemble": 1})
    assert script.max_in_flight == 2  # concurrent, but never above max_concurrency
    assert len(res.calls) == 7  # the failed attempt's tokens are counted too
    names = [schema_name(r) for r in fake.calls()]
    assert names[0] == "planner" and names[-1] == "assembler"
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT feature, count(*) FROM usage_ledger WHERE session_id = 'orch-1' GROUP BY 1"
        ).fetchall()
    assert rows == [("stories", 7)]  # billed to the requested feature


def test_subtasks_that_keep_failing_fail_the_plan_without_rerunning_finished_ones(
    gen: Generator, fake: FakeOpenAI
) -> None:
    script = Script(fail={"s3": 5})
    fake.default = script
    with pytest.raises(SubtasksFailed) as err:
        gen.generate("story", "a heist", Context(session_id="orch-2"))
    assert err.value.status == 502 and set(err.value.extra["failed"]) == {"s3"}
    assert script.counts["s3"] == 2 and script.counts["s1"] == script.counts["s2"] == 1
    assert script.counts["assemble"] == 0
