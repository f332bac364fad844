"""YAML configuration: shape, precedence, error messages, hot reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import env
from shared.config.store import ConfigError, ConfigStore, FileSource, default_sources

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, logic: str, profiles: str = "profiles: {}\n") -> dict[str, FileSource]:
    (folder / "logic.yaml").write_text(logic)
    (folder / "profiles.yaml").write_text(profiles)
    return {
        "logic.yaml": FileSource(folder / "logic.yaml"),
        "profiles.yaml": FileSource(folder / "profiles.yaml"),
    }


def test_shipped_configs_load() -> None:
    cfg = ConfigStore(default_sources(ROOT / "configs")).get()
    assert cfg.logic.auth.init_data_max_age_seconds == 86400
    assert cfg.logic.auth.jwt_ttl_seconds == 900
    assert "default" in cfg.profiles.profiles


def test_seed_example_shape_loads(tmp_path: Path) -> None:
    sources = write(
        tmp_path,
        'llm:\n  default_provider: "anthropic"\n  embedding_provider: "runpod"\n'
        '  model_embedding: "bge-m3"\n',
    )
    cfg = ConfigStore(sources).get()
    assert (
        cfg.logic.llm.default_provider,
        cfg.logic.llm.embedding_provider,
        cfg.logic.llm.model_embedding,
    ) == ("anthropic", "runpod", "bge-m3")


@pytest.mark.parametrize(
    "logic,needle",
    [
        ("auth:\n  jwt_ttl_seconds: ten\n", "logic.yaml: auth.jwt_ttl_seconds:"),
        ("auth:\n  jwt_ttl_secs: 10\n", "logic.yaml: auth.jwt_ttl_secs: Extra inputs are not permitted"),
        ("llm: [1, 2]\n", "logic.yaml: llm:"),
        ("- a\n- b\n", "expected a mapping"),
        ("auth: {jwt_ttl_seconds: 900\n", "not valid YAML"),
        (
            "http:\n  max_body_bytes: 1\n",
            "http.max_body_bytes: Input should be greater than or equal to 1024",
        ),
    ],
)
def test_bad_file_fails_with_key_path_and_reason(tmp_path: Path, logic: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        ConfigStore(write(tmp_path, logic))
    assert needle in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_bad_profile_names_the_profile_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profiles.yaml: profiles.story.temperature"):
        ConfigStore(write(tmp_path, "{}\n", "profiles:\n  story:\n    temperature: 9\n"))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_edits_are_picked_up_after_the_reload_interval(tmp_path: Path) -> None:
    sources = write(tmp_path, "llm:\n  model_embedding: a\n")
    clock = Clock()
    store = ConfigStore(sources, reload_seconds=5, clock=clock)
    assert store.get().logic.llm.model_embedding == "a"
    (tmp_path / "logic.yaml").write_text("llm:\n  model_embedding: bbb\n")
    clock.t = 4.9
    assert store.get().logic.llm.model_embedding == "a"  # not checked yet
    clock.t = 5.0
    assert store.get().logic.llm.model_embedding == "bbb"
    assert store.reloads == 1


def test_bad_edit_keeps_last_good_config(tmp_path: Path) -> None:
    sources = write(tmp_path, "llm:\n  model_embedding: good\n")
    clock = Clock()
    store = ConfigStore(sources, reload_seconds=1, clock=clock)
    (tmp_path / "logic.yaml").write_text("llm:\n  model_embedding: [oops\n")
    clock.t = 2
    assert store.get().logic.llm.model_embedding == "good"
    assert store.last_error is not None and "not valid YAML" in store.last_error
    (tmp_path / "logic.yaml").write_text("llm:\n  model_embedding: fixed\n")
    clock.t = 4
    assert store.get().logic.llm.model_embedding == "fixed"
    assert store.last_error is None


def test_reload_interval_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = write(tmp_path, "config:\n  reload_seconds: 100\n")
    store = ConfigStore(sources)
    assert store.reload_seconds == 100
    monkeypatch.setenv("CONFIG_RELOAD_SECONDS", "2")
    assert store.reload_seconds == 2
    assert ConfigStore(sources, reload_seconds=7).reload_seconds == 7  # explicit wins


def test_precedence_explicit_over_environment_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    var = env.EnvVar("HYBRID_TEST_SETTING", "a test setting", "from-default")
    assert var.get() == "from-default"
    monkeypatch.setenv("HYBRID_TEST_SETTING", "from-env")
    assert var.get() == "from-env"
    assert var.get("explicit") == "explicit"


def test_missing_required_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    with pytest.raises(env.MissingSetting, match="TELEGRAM_BOT_TOKEN"):
        env.TELEGRAM_BOT_TOKEN.require()
