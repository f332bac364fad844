"""Cold start: importing an HTTP function's handler (its whole init) must not pull in heavy modules.

psycopg is imported on the first database use (and by the SnapStart warm-up), jwt/cryptography only
where a token is verified or issued (the auth function; the others sit behind API Gateway's JWT
authorizer), and the ML stack never in an HTTP function. Same environment as bench/cold_start.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cold_start import bench_env

HTTP = ["auth", "generate", "memory", "media", "workers"]
HEAVY = ["psycopg", "psycopg_pool", "torch", "sentence_transformers"]
TOKEN_ONLY = ["jwt"]  # only the auth function signs tokens at all

PROBE = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
assert callable(module.handler)
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return bench_env(tmp_path_factory.mktemp("lean-imports"))


@pytest.mark.parametrize("name", HTTP)
def test_handler_init_does_not_import_heavy_modules(name: str, env: dict[str, str]) -> None:
    watched = HEAVY + ([] if name == "auth" else TOKEN_ONLY)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, f"functions.{name}.handler", json.dumps(watched)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_snapstart_warmup_imports_the_database_driver_before_the_snapshot(
    env: dict[str, str], tmp_path: Path
) -> None:
    """With the runtime's snapshot_restore_py present, init registers a hook that imports psycopg."""
    (tmp_path / "snapshot_restore_py.py").write_text(
        "hooks = []\n\ndef register_before_snapshot(func, *args, **kwargs):\n"
        "    hooks.append((func, args, kwargs))\n    return func\n"
    )
    code = (
        "import sys, snapshot_restore_py as s, functions.memory.handler\n"
        "before = 'psycopg' in sys.modules\n"
        "for func, args, kwargs in s.hooks: func(*args, **kwargs)\n"
        "print(len(s.hooks), before, 'psycopg' in sys.modules, 'psycopg_pool' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env | {"PYTHONPATH": f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["1", "False", "True", "True"]


def test_without_snapstart_nothing_is_registered() -> None:
    from shared.api.lambda_app import register_snapshot_warmup

    assert register_snapshot_warmup() is False
