"""Start `hybrid serve` as a subprocess the way a user does, and wait until it is healthy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakes.http import free_port

ROOT = Path(__file__).resolve().parents[2]
HYBRID = str(Path(sys.executable).parent / "hybrid")


def start_server(db_url: str, *args: str, timeout: float = 90) -> tuple[subprocess.Popen[str], str]:
    """`hybrid serve` on a free port against ``db_url`` with the local dev bot token; (process, base URL)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DB_POOL_SIZE": "2"}
    env.pop("TELEGRAM_BOT_TOKEN", None)  # local default: the dev bot token in .local/
    proc = subprocess.Popen(
        [HYBRID, "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"server did not become healthy in {timeout:.0f} s")


def stop_server(proc: subprocess.Popen[str]) -> str:
    """Terminate the server (as Ctrl-C would) and return everything it printed."""
    proc.terminate()
    return proc.communicate(timeout=30)[0]
