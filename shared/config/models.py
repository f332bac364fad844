"""Typed shape of configs/logic.yaml and configs/profiles.yaml.

Every section forbids unknown keys, so a typo fails at start with its key path instead of being ignored.
Later capabilities add their own sections here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMSection(Strict):
    default_provider: str = "openai"
    embedding_provider: str = "local"
    model_embedding: str = "all-MiniLM-L6-v2"
    rerank_provider: str | None = None
    model_rerank: str | None = None


class AuthSection(Strict):
    init_data_max_age_seconds: int | None = Field(default=86400, ge=1)
    jwt_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    max_init_data_bytes: int = Field(default=8192, ge=256)


class HTTPSection(Strict):
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    retry_after_seconds: int = Field(default=5, ge=1)


class DatabaseSection(Strict):
    pool_size: int = Field(default=8, ge=1, le=64)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=15_000, ge=100)


class ConfigSection(Strict):
    reload_seconds: float = Field(default=5.0, ge=0)


class ProviderSettings(Strict):
    """Connection settings of one named provider. Secrets are named by env var, never inlined."""

    type: str
    base_url: str | None = None
    api_key_env: str | None = None
    model: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class LogicConfig(Strict):
    llm: LLMSection = LLMSection()
    auth: AuthSection = AuthSection()
    http: HTTPSection = HTTPSection()
    database: DatabaseSection = DatabaseSection()
    config: ConfigSection = ConfigSection()
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)


class Profile(Strict):
    """A generation profile (genlayers). The structured-output capability fills in the behaviour."""

    provider: str = "openai"
    model: str = "gpt-4o-mini"
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1, le=128_000)
    api: str = Field(default="chat", pattern="^(chat|responses)$")
    output_schema: dict[str, Any] | str | None = None
    system_prompt: str = ""
    template: str = "{input}"
    retries: int = Field(default=2, ge=0, le=10)
    cache_ttl_seconds: int = Field(default=0, ge=0)
    feature: str = "default"
    fallback: list[str] = Field(default_factory=list)


class ProfilesConfig(Strict):
    profiles: dict[str, Profile] = Field(default_factory=dict)


class AppConfig(Strict):
    logic: LogicConfig
    profiles: ProfilesConfig
