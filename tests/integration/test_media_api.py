"""The media broker end to end: HTTP API → compute queue → executor → openai SDK / avatar API fakes on
127.0.0.1 → local blob store, on the real embedded PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.fakes.avatar import FakeAvatar, video_bytes
from tests.fakes.http import Fault
from tests.fakes.media_env import run_media_tasks, write_config
from tests.fakes.openai_media import SPEECH, FakeOpenAIMedia, image_bytes, speech_bytes


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAIMedia, FakeAvatar]]:
    openai_fake, avatar_fake = FakeOpenAIMedia().start(), FakeAvatar().start()
    yield openai_fake, avatar_fake
    openai_fake.stop()
    avatar_fake.stop()


class Env:
    def __init__(self, client: TestClient, openai: FakeOpenAIMedia, avatar: FakeAvatar, blobs: Path, db: str):
        self.client, self.openai, self.avatar, self.blobs, self.db = client, openai, avatar, blobs, db
        self._tokens: dict[int, dict[str, str]] = {}

    def auth(self, telegram_id: int) -> dict[str, str]:
        if telegram_id not in self._tokens:
            from shared.auth.service import get_token_service
            from shared.auth.users import ensure_user
            from shared.db.connection import get_database

            with get_database().connection() as conn:
                user_id = ensure_user(conn, telegram_id)
            token, _ = get_token_service().issue(user_id=user_id, telegram_id=telegram_id)
            self._tokens[telegram_id] = {"Authorization": f"Bearer {token}"}
        return self._tokens[telegram_id]

    def post(self, kind: str, data: dict[str, Any], user: int = 1, priority: str = "low") -> Any:
        return self.client.post(
            "/v1/media/jobs",
            json={"kind": kind, "input": data, "priority": priority},
            headers=self.auth(user),
        )

    def get(self, job_id: str, user: int = 1) -> Any:
        return self.client.get(f"/v1/media/jobs/{job_id}", headers=self.auth(user))

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.blobs).as_posix() for p in self.blobs.rglob("*") if p.is_file())

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(query, params).fetchall()


def make_env(
    app_env: str, fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: Any
) -> Iterator[Env]:
    from shared.api.app import create_app
    from shared.media import registry, storage
    from shared.providers import resilience

    openai_fake, avatar_fake = fakes
    openai_fake.server.reset()
    avatar_fake.server.reset()
    avatar_fake.fail_renders = False
    folder = write_config(
        tmp_path / "configs", openai_url=openai_fake.base_url, avatar_url=avatar_fake.base_url, **config
    )
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(folder))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-media-key")
    monkeypatch.setenv("AVATAR_API_KEY", "avatar-test-key")
    monkeypatch.setenv("MEDIA_LOCAL_DIR", str(tmp_path / "blobs"))
    registry.reset()
    storage.reset()
    resilience._default_chain = None  # breakers start closed for every test
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        run_media_tasks()  # earlier tests' leftovers (same module database) must not blur the counts
        openai_fake.server.reset()
        avatar_fake.server.reset()
        yield Env(client, openai_fake, avatar_fake, tmp_path / "blobs", app_env)
        openai_fake.server.fail_always(SPEECH, None)
        run_media_tasks()  # finish this test's leftovers in its own storage folder


@pytest.fixture()
def env(app_env: str, fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from make_env(app_env, fakes, tmp_path, monkeypatch)


def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status
    assert "Traceback" not in resp.text
    return body


def test_tts_job_runs_through_the_queue_and_serves_the_asset(env: Env) -> None:
    resp = env.post("tts", {"text": "Привет, путник!", "voice": "nova", "format": "opus", "speed": 1.25})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] == "queued" and resp.headers["location"] == f"/v1/media/jobs/{job['id']}"
    assert env.get(job["id"]).json()["status"] == "queued"
    assert env.openai.speech_calls() == []  # nothing runs in the request

    outcomes = run_media_tasks()
    assert [o["status"] for o in outcomes] == ["completed"] and outcomes[0]["kind"] == "media.tts"

    call = env.openai.speech_calls()[0].json()
    assert call == {
        "input": "Привет, путник!",
        "model": "gpt-4o-mini-tts",
        "voice": "nova",
        "response_format": "opus",
        "speed": 1.25,
    }
    done = env.get(job["id"]).json()
    expected = speech_bytes("Привет, путник!", "nova", "opus", 1.25)
    assert done["status"] == "done" and done["content_type"] == "audio/ogg"
    assert done["size_bytes"] == len(expected) and done["cached"] is False
    asset = env.client.get(done["url"])
    assert asset.status_code == 200 and asset.content == expected
    assert asset.headers["content-type"].startswith("audio/ogg")
    assert "immutable" in asset.headers["cache-control"]
    # the call is in the shared usage ledger
    rows = env.sql("SELECT kind, units, provider, cost_usd FROM usage_ledger WHERE kind = 'tts'")
    assert len(rows) == 1 and float(rows[0][1]) == len("Привет, путник!") and rows[0][2] == "openai_tts"
    assert float(rows[0][3]) > 0


def test_same_input_again_is_a_cache_hit_without_a_provider_call(env: Env) -> None:
    data = {"prompt": "a lighthouse at dusk", "size": "1024x1536", "quality": "low"}
    first = env.post("image", data).json()
    run_media_tasks()
    assert len(env.openai.image_calls()) == 1
    again = env.post("image", data, user=2)
    assert again.status_code == 202
    body = again.json()
    assert body["status"] == "done" and body["cached"] is True
    assert body["url"] == env.get(first["id"]).json()["url"]
    assert env.client.get(body["url"]).content == image_bytes("a lighthouse at dusk", "1024x1536", "low")
    assert run_media_tasks() == [] and len(env.openai.image_calls()) == 1
    # another setting is another asset
    env.post("image", data | {"quality": "high"})
    run_media_tasks()
    assert len(env.openai.image_calls()) == 2


def test_two_identical_concurrent_jobs_make_one_provider_call(env: Env) -> None:
    data = {"text": "one call for both", "voice": "echo"}
    users = (11, 12, 13, 14)
    barrier = threading.Barrier(len(users))
    results: dict[int, Any] = {}

    def submit(user: int) -> None:
        headers = env.auth(user)
        barrier.wait()
        results[user] = env.client.post(
            "/v1/media/jobs", json={"kind": "tts", "input": data}, headers=headers
        ).json()

    for u in users:
        env.auth(u)
    threads = [threading.Thread(target=submit, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r["status"] == "queued" for r in results.values()), results
    tasks = env.sql("SELECT count(*) FROM compute_tasks WHERE payload->>'input' LIKE '%%one call for both%%'")
    assert tasks == [(1,)]
    run_media_tasks()
    assert len(env.openai.speech_calls()) == 1
    statuses = [env.get(results[u]["id"], user=u).json() for u in users]
    assert [s["status"] for s in statuses] == ["done"] * 4
    assert len({s["url"] for s in statuses}) == 1  # one asset for all four


def test_a_job_for_an_asset_being_made_joins_it(env: Env) -> None:
    data = {"text": "join me", "voice": "sage"}
    a = env.post("tts", data, user=21).json()
    b = env.post("tts", data, user=22).json()
    assert a["id"] != b["id"] and b["status"] == "queued"
    assert env.sql("SELECT joined FROM media_jobs WHERE id = %s", b["id"]) == [(True,)]
    run_media_tasks()
    assert len(env.openai.speech_calls()) == 1
    assert env.get(a["id"], user=21).json()["status"] == "done"
    assert env.get(b["id"], user=22).json()["status"] == "done"


def test_provider_outage_retries_then_fails_with_nothing_left_behind(env: Env) -> None:
    env.openai.server.fail_always(SPEECH, Fault(status=503))
    job = env.post("tts", {"text": "nobody hears this", "voice": "alloy"}).json()
    outcomes = run_media_tasks()
    assert [o["status"] for o in outcomes] == [
        "failed",
        "failed",
        "dead",
    ]  # max_attempts 3 in the test config
    assert len(env.openai.speech_calls()) == 3
    view = env.get(job["id"]).json()
    assert view["status"] == "failed" and "503" in view["error"] and "url" not in view
    assert env.files() == []  # no object, no temp file
    [(digest,)] = env.sql("SELECT content_hash FROM media_jobs WHERE id = %s", job["id"])
    assert env.sql("SELECT status, storage_key FROM media_assets WHERE content_hash = %s", digest) == [
        ("failed", None)
    ]
    assert env.sql("SELECT count(*) FROM usage_ledger WHERE meta->>'content_hash' = %s", digest) == [(0,)]
    # once the provider is back, the same request makes the asset
    env.openai.server.fail_always(SPEECH, None)
    again = env.post("tts", {"text": "nobody hears this", "voice": "alloy"}).json()
    assert again["status"] == "queued"
    assert [o["status"] for o in run_media_tasks()] == ["completed"]
    assert env.get(again["id"]).json()["status"] == "done"
    assert env.get(job["id"]).json()["status"] == "failed"  # the old job keeps its outcome
    assert len(env.files()) == 1


def test_transient_failure_then_success_retries_through_the_queue(env: Env) -> None:
    env.openai.server.fail_next(SPEECH, Fault(status=500))
    job = env.post("tts", {"text": "second time lucky", "voice": "onyx"}).json()
    assert [o["status"] for o in run_media_tasks()] == ["failed", "completed"]
    assert env.get(job["id"]).json()["status"] == "done"


def test_avatar_job_renders_through_the_http_adapter(env: Env) -> None:
    data = {"image_url": env.avatar.input_url("face.png"), "audio_url": env.avatar.input_url("voice.mp3")}
    job = env.post("avatar", data, priority="high").json()
    assert job["status"] == "queued" and job["priority"] == "high"
    assert [o["status"] for o in run_media_tasks()] == ["completed"]
    created = env.avatar.create_calls()
    assert (
        len(created) == 1
        and {k.lower(): v for k, v in created[0].headers.items()}["authorization"] == "Bearer avatar-test-key"
    )
    assert len({k.lower(): v for k, v in created[0].headers.items()}["idempotency-key"]) == 64
    done = env.get(job["id"]).json()
    assert done["status"] == "done" and done["content_type"] == "video/mp4"
    assert env.client.get(done["url"]).content == video_bytes(data["image_url"], data["audio_url"])
    rows = env.sql("SELECT units FROM usage_ledger WHERE kind = 'avatar'")
    assert [float(r[0]) for r in rows] == [4.5]


def test_avatar_render_failure_is_not_retried(env: Env) -> None:
    env.avatar.fail_renders = True
    data = {"image_url": env.avatar.input_url("cat.png"), "audio_url": env.avatar.input_url("voice.mp3")}
    job = env.post("avatar", data).json()
    assert [o["status"] for o in run_media_tasks()] == ["dead"]
    view = env.get(job["id"]).json()
    assert view["status"] == "failed" and "no face found" in view["error"]
    assert env.files() == []


@pytest.mark.parametrize(
    ("kind", "data", "needle"),
    [
        ("video", {"text": "hi"}, "unknown kind"),
        ("tts", {"text": "   "}, "must not be empty"),
        ("tts", {"text": "x" * 4097}, "limit is 4096"),
        ("tts", {"text": "hi", "voice": "darth"}, "unsupported voice"),
        ("tts", {"text": "hi", "speed": 9}, "speed"),
        ("tts", {"text": "hi", "colour": "red"}, "colour"),
        ("tts", {}, "text"),
        ("image", {"prompt": "a cat", "size": "333x333"}, "unsupported size"),
        ("image", {"prompt": "a cat", "quality": "ultra"}, "unsupported quality"),
        ("avatar", {"image_url": "file:///etc/passwd", "audio_url": "http://x"}, "image_url"),
    ],
)
def test_bad_input_is_a_problem_with_the_reason(
    env: Env, kind: str, data: dict[str, Any], needle: str
) -> None:
    body = assert_problem(env.post(kind, data), 422)
    assert needle in body["detail"]
    assert env.sql("SELECT count(*) FROM media_jobs WHERE input::text LIKE '%%darth%%'") == [(0,)]


def test_unreachable_avatar_input_is_refused(env: Env) -> None:
    data = {"image_url": env.avatar.input_url("missing.png"), "audio_url": env.avatar.input_url("voice.mp3")}
    body = assert_problem(env.post("avatar", data), 422)
    assert "image_url is not reachable" in body["detail"] and "404" in body["detail"]


def test_bad_envelope_and_priority(env: Env) -> None:
    assert_problem(env.client.post("/v1/media/jobs", json={"kind": "tts"}, headers=env.auth(1)), 422)
    resp = env.client.post(
        "/v1/media/jobs",
        json={"kind": "tts", "input": {"text": "a"}, "priority": "urgent"},
        headers=env.auth(1),
    )
    assert_problem(resp, 422)
    assert_problem(env.client.post("/v1/media/jobs", json={"kind": "tts", "input": {"text": "a"}}), 401)


def test_only_the_owner_sees_or_cancels_a_job(env: Env) -> None:
    job = env.post("tts", {"text": "mine only", "voice": "fable"}, user=31).json()
    other = assert_problem(env.get(job["id"], user=32), 404)
    assert job["id"] in other["detail"]
    assert_problem(env.client.delete(f"/v1/media/jobs/{job['id']}", headers=env.auth(32)), 404)
    assert_problem(env.get("not-a-uuid", user=31), 404)
    assert env.get(job["id"], user=31).json()["status"] == "queued"


def test_cancel_a_queued_job_and_not_a_started_one(env: Env) -> None:
    job = env.post("tts", {"text": "never mind", "voice": "ash"}).json()
    resp = env.client.delete(f"/v1/media/jobs/{job['id']}", headers=env.auth(1))
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert env.get(job["id"]).json()["status"] == "cancelled"
    run_media_tasks()  # (other tests' leftovers may run; the cancelled job must not)
    assert [c.json()["input"] for c in env.openai.speech_calls()].count("never mind") == 0
    # a second job with the same input starts afresh (the cancelled one left no asset behind)
    again = env.post("tts", {"text": "never mind", "voice": "ash"}).json()
    assert again["status"] == "queued"
    run_media_tasks()
    assert env.get(again["id"]).json()["status"] == "done"
    assert_problem(env.client.delete(f"/v1/media/jobs/{again['id']}", headers=env.auth(1)), 409)


def test_cancelling_one_of_two_joined_jobs_keeps_the_other(env: Env) -> None:
    data = {"text": "shared work", "voice": "coral"}
    a = env.post("tts", data, user=41).json()
    b = env.post("tts", data, user=42).json()
    assert env.client.delete(f"/v1/media/jobs/{a['id']}", headers=env.auth(41)).status_code == 200
    run_media_tasks()
    assert env.get(b["id"], user=42).json()["status"] == "done"
    assert env.get(a["id"], user=41).json()["status"] == "cancelled"
    assert len(env.openai.speech_calls()) == 1


def test_asset_route_refuses_paths_that_are_not_asset_keys(env: Env) -> None:
    assert_problem(env.client.get("/v1/media/assets/../../etc/passwd"), 404)
    assert_problem(env.client.get("/v1/media/assets/tts/ab/" + "a" * 64 + ".mp3"), 404)


@pytest.fixture()
def tight_env(app_env: str, fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from make_env(
        app_env, fakes, tmp_path, monkeypatch, media={"quotas": {"jobs_per_day": 2, "cost_usd_per_day": 0.05}}
    )


def test_quotas_refuse_before_enqueueing(tight_env: Env) -> None:
    env = tight_env
    assert env.post("tts", {"text": "one"}, user=51).status_code == 202
    assert env.post("tts", {"text": "two"}, user=51).status_code == 202
    resp = env.post("tts", {"text": "three"}, user=51)
    body = assert_problem(resp, 429)
    assert "job quota" in body["detail"] and int(resp.headers["retry-after"]) > 0
    assert env.sql("SELECT count(*) FROM compute_tasks WHERE payload->'input'->>'text' = 'three'") == [(0,)]
    # cost: a high-quality image is $0.167, over the $0.05 day for another user
    body = assert_problem(env.post("image", {"prompt": "x", "quality": "high"}, user=52), 429)
    assert "cost quota" in body["detail"]
    assert env.post("image", {"prompt": "x", "quality": "low"}, user=52).status_code == 202


def test_provider_client_error_fails_at_once_without_retries(env: Env) -> None:
    env.openai.server.fail_next(
        SPEECH,
        Fault(status=400, body={"error": {"message": "content policy", "type": "invalid_request_error"}}),
    )
    job = env.post("tts", {"text": "refused by policy", "voice": "alloy"}).json()
    assert [o["status"] for o in run_media_tasks()] == ["dead"]
    view = env.get(job["id"]).json()
    assert view["status"] == "failed" and "400" in view["error"]
    assert len(env.openai.speech_calls()) == 1


def test_missing_provider_key_fails_at_once_naming_the_variable(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    job = env.post("tts", {"text": "no key configured here", "voice": "alloy"}).json()
    assert [o["status"] for o in run_media_tasks()] == ["dead"]  # not retried: retrying cannot fix config
    view = env.get(job["id"]).json()
    assert view["status"] == "failed" and "OPENAI_API_KEY" in view["error"]
    assert env.openai.speech_calls() == []


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_storage_end_to_end_and_outage_leaves_no_object(
    app_env: str, fakes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    import boto3
    import httpx

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MEDIA_STORAGE": "s3",
        "MEDIA_BUCKET": "media-e2e",
        "MEDIA_S3_ENDPOINT_URL": s3_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="media-e2e")
    for env in make_env(app_env, fakes, tmp_path, monkeypatch):
        env.openai.server.fail_always(SPEECH, Fault(status=502))
        failed = env.post("tts", {"text": "lost in the outage", "voice": "nova"}).json()
        run_media_tasks()
        assert env.get(failed["id"]).json()["status"] == "failed"
        assert s3.list_objects_v2(Bucket="media-e2e").get("KeyCount") == 0
        env.openai.server.fail_always(SPEECH, None)

        job = env.post("image", {"prompt": "a map of the realm", "quality": "medium"}).json()
        run_media_tasks()
        done = env.get(job["id"]).json()
        assert done["status"] == "done" and done["content_type"] == "image/png"
        assert "X-Amz-Signature" in done["url"]
        assert httpx.get(done["url"]).content == image_bytes("a map of the realm", "1024x1024", "medium")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="media-e2e")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("media/image/")
        head = s3.head_object(Bucket="media-e2e", Key=keys[0])
        assert head["ContentType"] == "image/png" and "immutable" in head["CacheControl"]
        # the local asset route does not serve S3 assets
        assert_problem(env.client.get("/v1/media/assets/" + keys[0].removeprefix("media/")), 404)


def test_calls_to_one_provider_are_capped_per_process(env: Env) -> None:
    from shared.compute import queue
    from shared.compute.kinds import get_executor
    from shared.db.connection import get_database

    run_media_tasks()  # nothing else waiting
    env.openai.speech_delay, env.openai.max_in_flight = 0.3, 0
    for i in range(5):
        env.post("tts", {"text": f"parallel {i}", "voice": "alloy"})
    with get_database().connection() as conn:
        tasks = queue.claim(conn, kinds=["media.tts"], limit=5, lease_seconds=60, worker_id="t")
    assert len(tasks) == 5
    executor = get_executor("media.tts")
    assert executor is not None
    threads = [threading.Thread(target=executor, args=(t.payload,)) for t in tasks]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        env.openai.speech_delay = 0.0
    assert env.openai.max_in_flight == 4  # openai_tts options.max_concurrency in logic.yaml
    assert len(env.openai.speech_calls()) == 5


def test_the_compute_drain_runs_media_jobs(env: Env) -> None:
    """The real drain tick (compute.executor_modules imports shared.media; media kinds route inline)."""
    from shared.compute.drain import run_tick

    run_media_tasks()
    job = env.post(
        "image", {"prompt": "drained by the scheduler", "size": "1536x1024"}, priority="high"
    ).json()
    summary = run_tick(max_seconds=30)
    assert summary["inline"]["media.image"]["completed"] == 1, summary
    assert not [e for e in summary["errors"] if "media" in e], summary["errors"]
    done = env.get(job["id"]).json()
    assert done["status"] == "done"
    assert env.client.get(done["url"]).content == image_bytes(
        "drained by the scheduler", "1536x1024", "medium"
    )


def test_high_priority_jobs_are_claimed_first(env: Env) -> None:
    run_media_tasks()
    low = env.post("tts", {"text": "low first in line", "voice": "alloy"}).json()
    high = env.post("tts", {"text": "high jumps the line", "voice": "alloy"}, priority="high").json()
    run_media_tasks(limit=1)
    assert env.get(high["id"]).json()["status"] == "done"
    assert env.get(low["id"]).json()["status"] == "queued"


def test_router_import_stays_lean() -> None:
    import subprocess
    import sys

    code = "import sys, shared.media.router; print('openai' in sys.modules, 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_crash_after_the_write_neither_loses_nor_duplicates(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The object is written, then the step that marks it ready dies: the retry ends with one object."""
    from shared.media import executor

    real = executor._record_usage
    crashes = iter([True])

    def flaky(*args: Any, **kwargs: Any) -> None:
        if next(crashes, False):
            raise ConnectionError("worker lost its database mid-commit")
        real(*args, **kwargs)

    monkeypatch.setattr(executor, "_record_usage", flaky)
    job = env.post("tts", {"text": "written twice, stored once", "voice": "alloy"}).json()
    assert [o["status"] for o in run_media_tasks()] == ["failed", "completed"]
    done = env.get(job["id"]).json()
    assert done["status"] == "done"
    [(digest,)] = env.sql("SELECT content_hash FROM media_jobs WHERE id = %s", job["id"])
    mine = [f for f in env.files() if digest in f]  # one object, no temp file beside it
    assert mine == [f"tts/{digest[:2]}/{digest}.mp3"] and done["url"].endswith(mine[0])
    assert env.sql("SELECT count(*) FROM usage_ledger WHERE meta->>'content_hash' = %s", digest) == [(1,)]


def test_a_task_that_died_elsewhere_fails_its_jobs_and_a_new_request_retries(env: Env) -> None:
    job = env.post("tts", {"text": "the worker vanished", "voice": "alloy"}).json()
    with psycopg.connect(env.db) as conn:
        conn.execute(
            "UPDATE compute_tasks SET status = 'dead', error = 'lease expired (worker w1)' "
            "WHERE id = (SELECT task_id FROM media_jobs WHERE id = %s)",
            (job["id"],),
        )
    view = env.get(job["id"]).json()
    assert view["status"] == "failed" and view["error"] == "lease expired (worker w1)"
    again = env.post("tts", {"text": "the worker vanished", "voice": "alloy"}).json()
    assert again["status"] == "queued"
    run_media_tasks()
    assert env.get(again["id"]).json()["status"] == "done"
