"""Profiles: resolve schema files, check schemas and templates, validate the request's variables.

A config cross-check is registered with the config store on import: a schema file that is missing,
not JSON, or not a valid JSON Schema, a template placeholder that is not declared, or a profile that
names an unknown provider fails the load (and a hot reload keeps the last good config), naming the
file. ``jsonschema`` is imported only here and only when generation runs (it is slow to import).
"""

from __future__ import annotations

import json
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import env
from shared.config.models import AppConfig, Profile, TemplateVariable
from shared.config.store import ConfigError, ConfigSource, register_validator

DEFAULT_VARIABLES = {"input": TemplateVariable(type="string")}
_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


class UnknownProfile(LookupError):
    pass


class InputInvalid(ValueError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
        super().__init__(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        self.errors = errors


@dataclass
class CompiledProfile:
    name: str
    profile: Profile
    schema: dict[str, Any] | None
    schema_source: str  # "inline" or the file path, for messages
    fields: tuple[str, ...]  # placeholders of the template
    variables: dict[str, TemplateVariable]
    candidates: tuple[tuple[str, str], ...]  # (provider name, model), primary first
    _validator: Any = field(default=None, repr=False)
    _input_validator: Any = field(default=None, repr=False)

    @property
    def domain(self) -> str:
        if self.profile.domain:
            return self.profile.domain
        return self.profile.memory.domains[0] if self.profile.memory else "general"

    @property
    def schema_name(self) -> str:
        raw = self.profile.schema_name or self.name
        return "".join(c if c.isalnum() or c in "_-" else "_" for c in raw)[:64]

    def output_validator(self) -> Any:
        if self._validator is None and self.schema is not None:
            from jsonschema import validators

            cls = validators.validator_for(self.schema)
            self._validator = cls(self.schema, format_checker=cls.FORMAT_CHECKER)
        return self._validator

    def input_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for name, var in self.variables.items():
            spec: dict[str, Any] = {"type": _JSON_TYPES[var.type]}
            if var.max_length is not None:
                spec["maxLength"] = var.max_length
            if var.enum is not None:
                spec["enum"] = list(var.enum)
            props[name] = spec
        required = [n for n, v in self.variables.items() if v.required and v.default is None]
        return {"type": "object", "properties": props, "required": required}

    def variables_for(self, data: str | dict[str, Any]) -> dict[str, Any]:
        """The template's values from the request's ``input`` (a string means ``{"input": ...}``)."""
        values: dict[str, Any] = {"input": data} if isinstance(data, str) else dict(data)
        for name, var in self.variables.items():
            if name not in values and var.default is not None:
                values[name] = var.default
        if self._input_validator is None:
            from jsonschema import Draft202012Validator

            self._input_validator = Draft202012Validator(self.input_schema())
        errors = [
            {"loc": ["input", *[str(p) for p in e.absolute_path]], "msg": _short(e.message)}
            for e in sorted(self._input_validator.iter_errors(values), key=lambda e: list(e.absolute_path))
        ]
        if errors:
            raise InputInvalid(errors)
        return values

    def render(self, values: dict[str, Any]) -> str:
        return self.profile.template.format_map({f: _text(values.get(f, "")) for f in self.fields})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def template_fields(template: str) -> tuple[str, ...]:
    out: list[str] = []
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"placeholder {{{name}}} must be a plain name (no attributes, index or format)")
        if name not in out:
            out.append(name)
    return tuple(out)


def schema_dir(sources: dict[str, ConfigSource] | None = None) -> Path:
    src = (sources or {}).get("profiles.yaml")
    path = getattr(src, "path", None)
    if isinstance(path, Path):
        return path.parent / "schemas"
    return Path(env.CONFIG_DIR.get() or "configs") / "schemas"


def _load_schema(name: str, profile: Profile, base: Path) -> tuple[dict[str, Any] | None, str]:
    raw = profile.output_schema
    if raw is None:
        return None, "none"
    where = "inline"
    if isinstance(raw, str):
        path = (base / raw).resolve()
        if base.resolve() not in path.parents:
            raise ConfigError(f"profiles.{name}.output_schema: {raw} must be a file under {base}")
        where = str(base / raw)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{where}: schema file not found (profile {name})") from exc
        except ValueError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc} (profile {name})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a JSON Schema must be an object (profile {name})")
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(raw).check_schema(raw)
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise ConfigError(
            f"{where}: not a valid JSON Schema at {at}: {_short(exc.message)} (profile {name})"
        ) from exc
    return raw, where


def compile_profile(name: str, profile: Profile, config: AppConfig, base: Path) -> CompiledProfile:
    where = f"profiles.yaml: profiles.{name}"
    schema, source = _load_schema(name, profile, base)
    try:
        fields = template_fields(profile.template)
    except ValueError as exc:
        raise ConfigError(f"{where}.template: {exc}") from exc
    variables = dict(profile.variables) or dict(DEFAULT_VARIABLES)
    undeclared = [f for f in fields if f not in variables]
    if undeclared:
        raise ConfigError(f"{where}.template: placeholders not declared in variables: {undeclared}")
    providers = config.logic.providers
    candidates: list[tuple[str, str]] = []
    chain = [] if profile.plan is not None else [profile.provider, *profile.fallback]  # plans call no model
    for entry in chain:
        prov, _, model = entry.partition(":")
        if prov not in providers:
            raise ConfigError(f"{where}: unknown provider {prov!r} (add it under providers: in logic.yaml)")
        if not model:
            model = profile.model if prov == profile.provider else (providers[prov].model or profile.model)
        candidates.append((prov, model))
    if profile.cache != "off" and profile.cache_ttl_seconds <= 0:
        raise ConfigError(f"{where}.cache_ttl_seconds: must be > 0 when cache is {profile.cache!r}")
    if profile.memory and profile.memory.query_variable not in variables:
        raise ConfigError(f"{where}.memory.query_variable: {profile.memory.query_variable!r} is not declared")
    if profile.plan:
        for role in ("planner", "worker", "assembler"):
            ref = getattr(profile.plan, role)
            if ref is not None and (ref not in config.profiles.profiles or ref == name):
                raise ConfigError(f"{where}.plan.{role}: {ref!r} is not another profile")
    return CompiledProfile(name, profile, schema, source, fields, variables, tuple(candidates))


def compile_all(config: AppConfig, base: Path) -> dict[str, CompiledProfile]:
    return {n: compile_profile(n, p, config, base) for n, p in config.profiles.profiles.items()}


# Compiled profiles per config object (the store hands out the same object until a reload).
_compiled: dict[int, tuple[AppConfig, dict[str, CompiledProfile]]] = {}
_lock = threading.Lock()


def _remember(config: AppConfig, compiled: dict[str, CompiledProfile]) -> None:
    with _lock:
        if len(_compiled) >= 4:
            _compiled.pop(next(iter(_compiled)))
        _compiled[id(config)] = (config, compiled)


def validate_config(config: AppConfig, sources: dict[str, ConfigSource]) -> None:
    """The store's cross-check: raises ``ConfigError`` naming the file."""
    _remember(config, compile_all(config, schema_dir(sources)))


def compiled_profiles(config: AppConfig | None = None) -> dict[str, CompiledProfile]:
    if config is None:
        from shared.config.store import get_config

        config = get_config()
    hit = _compiled.get(id(config))
    if hit is not None and hit[0] is config:
        return hit[1]
    compiled = compile_all(config, schema_dir())
    _remember(config, compiled)
    return compiled


def get_profile(name: str, config: AppConfig | None = None) -> CompiledProfile:
    profiles = compiled_profiles(config)
    if name not in profiles:
        raise UnknownProfile(name)
    return profiles[name]


def _register() -> None:
    """Register the cross-check; a config the store already loaded is checked now, too."""
    from shared.config import store

    register_validator(validate_config)
    current = store._store
    if current is not None:
        validate_config(current.get(), current.sources)


_register()
