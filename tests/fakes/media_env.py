"""Test wiring for the media broker: a config folder pointing the media providers at fakes, and a runner
that drives media tasks through the real compute queue (claim → executor → complete/fail)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from shared.config.env import PROJECT_ROOT

MEDIA_KINDS = ["media.tts", "media.image", "media.avatar"]


def write_config(
    folder: Path,
    *,
    openai_url: str,
    avatar_url: str,
    media: dict[str, Any] | None = None,
    max_attempts: int = 3,
) -> Path:
    """Copy configs/ into ``folder`` with the media providers on the fakes and instant retries."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("logic.yaml", "profiles.yaml"):
        shutil.copy(PROJECT_ROOT / "configs" / name, folder / name)
    for extra in (PROJECT_ROOT / "configs").iterdir():
        if extra.is_dir():
            shutil.copytree(extra, folder / extra.name, dirs_exist_ok=True)
    logic = yaml.safe_load((folder / "logic.yaml").read_text())
    section = logic.setdefault("media", {})
    providers = section.setdefault("providers", {})
    providers["openai_tts"] = providers.get("openai_tts", {}) | {"base_url": openai_url, "timeout_seconds": 5}
    providers["openai_image"] = providers.get("openai_image", {}) | {
        "base_url": openai_url,
        "timeout_seconds": 5,
    }
    providers["avatar_http"] = providers.get("avatar_http", {}) | {
        "base_url": avatar_url,
        "timeout_seconds": 5,
        "options": {"max_concurrency": 2, "poll_seconds": 0.05},
    }
    for key, value in (media or {}).items():
        section[key] = (section.get(key) or {}) | value if isinstance(value, dict) else value
    compute = logic.setdefault("compute", {})
    compute["retry_backoff_base_seconds"] = 0
    compute["retry_backoff_max_seconds"] = 0
    kinds = compute.setdefault("kinds", {})
    for kind in MEDIA_KINDS:
        kinds[kind] = (kinds.get(kind) or {}) | {"route": "inline", "max_attempts": max_attempts}
    (folder / "logic.yaml").write_text(yaml.safe_dump(logic, sort_keys=False))
    return folder


def run_media_tasks(limit: int = 50) -> list[dict[str, Any]]:
    """Run every claimable media task once, as the drain does for inline kinds; returns what happened."""
    from shared.compute import NonRetryable, queue
    from shared.compute.kinds import get_executor
    from shared.db.connection import get_database

    db = get_database()
    outcomes: list[dict[str, Any]] = []
    for _ in range(limit):
        with db.connection() as conn:
            tasks = queue.claim(conn, kinds=MEDIA_KINDS, limit=1, lease_seconds=60, worker_id="test-drain")
        if not tasks:
            break
        task = tasks[0]
        executor = get_executor(task.kind)
        assert executor is not None, task.kind
        try:
            result = executor(task.payload)
        except NonRetryable as exc:
            with db.connection() as conn:
                done = queue.fail(conn, task.id, str(task.lease_token), str(exc), retryable=False)
        except Exception as exc:
            with db.connection() as conn:
                done = queue.fail(conn, task.id, str(task.lease_token), str(exc))
        else:
            with db.connection() as conn:
                done = queue.complete(conn, task.id, str(task.lease_token), result)
        outcomes.append({"task": task.id, "kind": task.kind, "status": done.status})
    return outcomes
