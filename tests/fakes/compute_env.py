"""Point the process configuration at a temporary logic.yaml for one test (compute tests)."""

from __future__ import annotations

from pathlib import Path

import pytest


def use_logic_yaml(monkeypatch: pytest.MonkeyPatch, folder: Path, logic_yaml: str) -> None:
    from shared.config import store
    from shared.providers import factory

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logic.yaml").write_text(logic_yaml)
    (folder / "profiles.yaml").write_text("profiles: {}\n")
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(folder))
    store.set_store(None)
    factory.clear_cache()
