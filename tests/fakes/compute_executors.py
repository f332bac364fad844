"""Executors for pull-worker tests (``hybrid worker --executor tests.fakes.compute_executors:slow``)."""

from __future__ import annotations

import time
from typing import Any


def slow(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(payload.get("sleep", 1.0)))
    return {"kind": kind, "n": payload.get("n")}


def echo(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("bad"):
        raise ValueError("bad input: n must be present")
    return {"kind": kind, "n": payload.get("n")}
