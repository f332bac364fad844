"""Task kinds: their settings from ``compute.kinds`` in logic.yaml, and executors registered in code.

A kind runs by its ``route``: ``runpod`` (the drain batches it to RunPod's /run), ``pull`` (external
workers claim it over the worker API) or ``inline`` (the drain calls the executor registered here).
A kind with a registered executor but no YAML entry is an ``inline`` kind with default settings, so a
capability can add one without editing the configuration::

    from shared.compute import register_executor

    def tts(payload: dict) -> dict: ...          # returns the task's result (JSON-serialisable)

    register_executor("media.tts", tts)           # at import time of the capability's module

An executor raises ``NonRetryable`` for input that will never succeed (the task goes straight to
``dead``); any other exception is retried with backoff until ``max_attempts``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from shared.config.models import ComputeKind, ComputeSection

Executor = Callable[[dict[str, Any]], Any]

_executors: dict[str, tuple[Executor, ComputeKind]] = {}
_lock = threading.Lock()


class NonRetryable(Exception):
    """Raised by an executor when retrying cannot help (bad input): the task becomes ``dead``."""


def register_executor(kind: str, fn: Executor, *, settings: ComputeKind | None = None) -> None:
    """Run tasks of ``kind`` in-process in the drain (route ``inline``)."""
    if not kind or len(kind) > 64:
        raise ValueError("a kind is a name of 1-64 characters")
    with _lock:
        _executors[kind] = (fn, settings or ComputeKind(route="inline"))


def unregister_executor(kind: str) -> None:
    with _lock:
        _executors.pop(kind, None)


def get_executor(kind: str) -> Executor | None:
    entry = _executors.get(kind)
    return entry[0] if entry else None


def compute_settings() -> ComputeSection:
    from shared.config.store import get_config

    return get_config().logic.compute


def kind_settings(kind: str, section: ComputeSection | None = None) -> ComputeKind | None:
    """Settings of a known kind (YAML first, then a registered executor's defaults); None if unknown."""
    section = section or compute_settings()
    if kind in section.kinds:
        return section.kinds[kind]
    entry = _executors.get(kind)
    return entry[1] if entry else None


def known_kinds(section: ComputeSection | None = None) -> list[str]:
    section = section or compute_settings()
    return sorted(set(section.kinds) | set(_executors))
