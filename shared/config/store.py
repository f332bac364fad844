"""Load the YAML configuration, validate it, and pick up edits without a restart.

Sources, in order of precedence for each file:
  1. an override in S3 (``CONFIG_S3_URI``) or SSM (``CONFIG_SSM_PREFIX``), when set;
  2. the file packaged with the function (``configs/`` or ``HYBRID_CONFIG_DIR``).
A source is re-read only when its fingerprint (mtime, ETag, parameter version) changes, and
fingerprints are checked at most every ``config.reload_seconds`` (or ``CONFIG_RELOAD_SECONDS``).
A bad edit is logged and the last good configuration stays in force; a bad file at start raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from shared.config import env
from shared.config.models import AppConfig, LogicConfig, ProfilesConfig

log = logging.getLogger(__name__)

FILES = ("logic.yaml", "profiles.yaml")


class ConfigError(RuntimeError):
    """A configuration file is unreadable or invalid; the message names the file, key path and reason."""


class ConfigSource(Protocol):
    name: str

    def fingerprint(self) -> str: ...

    def read(self) -> str: ...


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    def fingerprint(self) -> str:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return "missing"
        return f"{st.st_mtime_ns}:{st.st_size}"

    def read(self) -> str:
        if not self.path.exists():
            return ""
        return self.path.read_text(encoding="utf-8")


class S3Source:
    """A YAML file in S3; boto3 is imported only when this source is configured."""

    def __init__(self, uri: str, filename: str) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.bucket, self.key = bucket, (prefix.rstrip("/") + "/" + filename).lstrip("/")
        self.name = f"s3://{self.bucket}/{self.key}"
        import boto3

        self._s3 = boto3.client("s3")

    def fingerprint(self) -> str:
        return str(self._s3.head_object(Bucket=self.bucket, Key=self.key)["ETag"])

    def read(self) -> str:
        body = self._s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        return body.decode("utf-8")


class SSMSource:
    def __init__(self, prefix: str, filename: str) -> None:
        self.parameter = prefix.rstrip("/") + "/" + filename
        self.name = f"ssm:{self.parameter}"
        import boto3

        self._ssm = boto3.client("ssm")

    def fingerprint(self) -> str:
        return str(self._ssm.get_parameter(Name=self.parameter)["Parameter"]["Version"])

    def read(self) -> str:
        return str(self._ssm.get_parameter(Name=self.parameter, WithDecryption=True)["Parameter"]["Value"])


def default_sources(config_dir: str | Path | None = None) -> dict[str, ConfigSource]:
    base = Path(env.CONFIG_DIR.get(str(config_dir) if config_dir is not None else None) or "configs")
    sources: dict[str, ConfigSource] = {f: FileSource(base / f) for f in FILES}
    s3_uri, ssm_prefix = env.CONFIG_S3_URI.get(), env.CONFIG_SSM_PREFIX.get()
    for f in FILES:
        if s3_uri:
            sources[f] = S3Source(s3_uri, f)
        elif ssm_prefix:
            sources[f] = SSMSource(ssm_prefix, f)
    return sources


def _format_validation(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"{source}: {path}: {e['msg']}")
    return "; ".join(lines)


def _parse_yaml(source: ConfigSource, text: str) -> dict[str, Any]:
    try:
        # libyaml's C loader when present (Lambda cold start: ~10x faster than the pure-Python one)
        safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # both are the *safe* loaders
        data = yaml.load(text, Loader=safe_loader) if text.strip() else {}  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source.name}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source.name}: <root>: expected a mapping, got {type(data).__name__}")
    return data


def parse_config(sources: dict[str, ConfigSource], texts: dict[str, str]) -> AppConfig:
    try:
        logic = LogicConfig.model_validate(_parse_yaml(sources["logic.yaml"], texts["logic.yaml"]))
    except ValidationError as exc:
        raise ConfigError(_format_validation(sources["logic.yaml"].name, exc)) from exc
    try:
        profiles = ProfilesConfig.model_validate(
            _parse_yaml(sources["profiles.yaml"], texts["profiles.yaml"])
        )
    except ValidationError as exc:
        raise ConfigError(_format_validation(sources["profiles.yaml"].name, exc)) from exc
    config = AppConfig(logic=logic, profiles=profiles)
    for hook in _validators:
        hook(config, sources)
    return config


# Capabilities that need cross-checks (schema files exist, profiles name known providers) register here.
_validators: list[Callable[[AppConfig, dict[str, ConfigSource]], None]] = []


def register_validator(hook: Callable[[AppConfig, dict[str, ConfigSource]], None]) -> None:
    if hook not in _validators:
        _validators.append(hook)


class ConfigStore:
    """Holds the current configuration; ``get()`` is cheap and reloads edited sources lazily."""

    def __init__(
        self,
        sources: dict[str, ConfigSource] | None = None,
        *,
        reload_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = sources if sources is not None else default_sources()
        self._explicit_reload = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._fingerprints = {name: s.fingerprint() for name, s in self.sources.items()}
        self._config = parse_config(self.sources, {n: s.read() for n, s in self.sources.items()})
        self._checked_at = clock()
        self.reloads = 0
        self.last_error: str | None = None

    @property
    def reload_seconds(self) -> float:
        if self._explicit_reload is not None:
            return self._explicit_reload
        from_env = env.CONFIG_RELOAD_SECONDS.get()
        if from_env is not None:
            return float(from_env)
        return self._config.logic.config.reload_seconds

    def get(self) -> AppConfig:
        if self._clock() - self._checked_at >= self.reload_seconds:
            self._maybe_reload()
        return self._config

    def _maybe_reload(self) -> None:
        with self._lock:
            now = self._clock()
            if now - self._checked_at < self.reload_seconds:
                return
            self._checked_at = now
            try:
                current = {name: s.fingerprint() for name, s in self.sources.items()}
            except Exception as exc:  # a flaky S3/SSM must not take the service down
                log.warning("config fingerprint check failed, keeping current config: %s", exc)
                return
            if current == self._fingerprints:
                return
            try:
                config = parse_config(self.sources, {n: s.read() for n, s in self.sources.items()})
            except ConfigError as exc:
                self.last_error = str(exc)
                log.error("config edit rejected, keeping the last good config: %s", exc)
                self._fingerprints = current  # do not re-parse the same bad edit every tick
                return
            self._config = config
            self._fingerprints = current
            self.reloads += 1
            self.last_error = None
            log.info("config reloaded", extra={"sources": list(current)})


_store: ConfigStore | None = None
_store_lock = threading.Lock()


def get_store() -> ConfigStore:
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                _store = ConfigStore()
    return _store


def set_store(store: ConfigStore | None) -> None:
    """Replace the process-wide store (tests, or a function that loads config its own way)."""
    global _store
    _store = store


def get_config() -> AppConfig:
    return get_store().get()
