"""Typed shape of configs/logic.yaml and configs/profiles.yaml.

Every section forbids unknown keys, so a typo fails at start with its key path instead of being ignored.
Later capabilities add their own sections here.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

_DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


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


class ComputeKind(Strict):
    """How one task kind is executed: ``runpod`` (the drain sends batches to RunPod's /run),
    ``pull`` (left for external workers) or ``inline`` (the drain runs a registered executor)."""

    route: str = Field(default="pull", pattern="^(runpod|pull|inline)$")
    max_attempts: int = Field(default=5, ge=1, le=100)
    max_payload_bytes: int = Field(default=262_144, ge=16)
    lease_seconds: int = Field(default=60, ge=1)
    runpod_provider: str | None = None  # a name under providers: (type runpod) for route runpod
    batch_size: int = Field(default=16, ge=1, le=1000)  # tasks per RunPod job / inline batch


class ComputeOnlineRoute(Strict):
    providers: list[str] = Field(default_factory=list)  # names under providers:, tried in order
    budget_seconds: float = Field(default=2.0, gt=0, le=60)
    max_attempts: int = Field(default=2, ge=1, le=10)  # per provider, inside the budget


class ComputeSection(Strict):
    kinds: dict[str, ComputeKind] = Field(default_factory=dict)
    online: dict[str, ComputeOnlineRoute] = Field(default_factory=dict)
    lease_seconds_min: int = Field(default=1, ge=1)
    lease_seconds_max: int = Field(default=3600, ge=1)
    claim_limit_max: int = Field(default=100, ge=1)
    retry_backoff_base_seconds: float = Field(default=5.0, ge=0)
    retry_backoff_max_seconds: float = Field(default=900.0, ge=0)
    worker_rate_limit_per_minute: int = Field(default=600, ge=1)
    drain_max_tasks_per_tick: int = Field(default=500, ge=1)
    drain_max_jobs_per_tick: int = Field(default=20, ge=1)
    drain_runpod_lease_seconds: int = Field(default=1800, ge=10)
    drain_local_interval_seconds: float = Field(default=5.0, gt=0)
    callback_timeout_seconds: float = Field(default=5.0, gt=0)
    callback_max_attempts: int = Field(default=8, ge=1)
    callbacks_per_tick: int = Field(default=50, ge=1)
    executor_modules: list[str] = Field(default_factory=list)  # imported by the drain: register_executor


class MediaStorageSection(Strict):
    """Where media assets go: ``local`` folder (default) or ``s3`` (bucket from MEDIA_BUCKET or here)."""

    backend: str = Field(default="local", pattern="^(local|s3)$")
    local_dir: str | None = None  # default: <HYBRID_LOCAL_DIR>/media
    bucket: str | None = None
    prefix: str = "media/"
    url_mode: str = Field(default="presigned", pattern="^(presigned|cdn)$")
    cdn_base_url: str | None = None
    presign_seconds: int = Field(default=3600, ge=60, le=604_800)
    cache_control: str = "public, max-age=31536000, immutable"


class MediaQuotaSection(Strict):
    jobs_per_day: int = Field(default=200, ge=0)
    cost_usd_per_day: float = Field(default=2.0, ge=0)


class MediaTTSSection(Strict):
    provider: str = "openai_tts"  # a name under media.providers
    voices: list[str] = Field(
        default_factory=lambda: ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"]
    )
    formats: list[str] = Field(default_factory=lambda: ["mp3", "opus", "aac", "flac", "wav"])
    default_voice: str = "alloy"
    default_format: str = "mp3"
    max_chars: int = Field(default=4096, ge=1)
    min_speed: float = Field(default=0.25, gt=0)
    max_speed: float = Field(default=4.0, gt=0)
    price_per_1k_chars_usd: float = Field(default=0.015, ge=0)


class MediaImageSection(Strict):
    provider: str = "openai_image"
    sizes: list[str] = Field(default_factory=lambda: ["1024x1024", "1024x1536", "1536x1024"])
    qualities: list[str] = Field(default_factory=lambda: ["low", "medium", "high"])
    default_size: str = "1024x1024"
    default_quality: str = "medium"
    max_prompt_chars: int = Field(default=4000, ge=1)
    price_per_image_usd: dict[str, float] = Field(
        default_factory=lambda: {"low": 0.011, "medium": 0.042, "high": 0.167}
    )


class MediaAvatarSection(Strict):
    provider: str = "avatar_http"
    check_inputs_reachable: bool = True
    reachability_timeout_seconds: float = Field(default=3.0, gt=0)
    allowed_schemes: list[str] = Field(default_factory=lambda: ["https", "http"])
    max_seconds: int = Field(default=60, ge=1)
    estimated_seconds: float = Field(default=15.0, gt=0)  # quota estimate before the real length is known
    price_per_second_usd: float = Field(default=0.02, ge=0)


class MediaSection(Strict):
    storage: MediaStorageSection = MediaStorageSection()
    quotas: MediaQuotaSection = MediaQuotaSection()
    tts: MediaTTSSection = MediaTTSSection()
    image: MediaImageSection = MediaImageSection()
    avatar: MediaAvatarSection = MediaAvatarSection()
    # Named provider connections (type openai_tts | openai_image | avatar_http);
    # options.max_concurrency caps calls in flight per process.
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)


class PriceEntry(Strict):
    """USD per 1M tokens (prompt, completion, cached prompt) and per unit for media kinds."""

    prompt: float = Field(default=0.0, ge=0)
    completion: float = Field(default=0.0, ge=0)
    cached: float | None = Field(default=None, ge=0)  # default: the prompt price
    unit: float = Field(default=0.0, ge=0)  # per unit (characters, images, seconds) for kind != llm


class UsageLimit(Strict):
    tokens_per_day: int | None = Field(default=None, ge=0)
    usd_per_day: float | None = Field(default=None, ge=0)


class GenlayersLimits(Strict):
    user: UsageLimit = UsageLimit(tokens_per_day=500_000, usd_per_day=5.0)
    session: UsageLimit = UsageLimit(tokens_per_day=100_000, usd_per_day=1.0)


class GenlayersSection(Strict):
    max_input_chars: int = Field(default=32_000, ge=1)
    call_budget_seconds: float = Field(default=60.0, gt=0)  # all attempts of one provider call
    max_attempts_per_provider: int = Field(default=2, ge=1, le=10)
    rate_limit_wait_max_seconds: float = Field(default=2.0, ge=0)  # wait out a short Retry-After
    batch_price_factor: float = Field(default=0.5, ge=0, le=1)  # OpenAI Batch API price vs. synchronous
    limits: GenlayersLimits = GenlayersLimits()
    # provider name -> model name ("*" matches any model) -> price
    prices: dict[str, dict[str, PriceEntry]] = Field(default_factory=dict)


class ChunkingSettings(Strict):
    """Heading-aware chunking; token counts are word/punctuation tokens (no tokenizer needed)."""

    max_tokens: int = Field(default=160, ge=16, le=2048)
    overlap_tokens: int = Field(default=32, ge=0, le=512)
    min_tokens: int = Field(default=8, ge=1, le=512)  # a shorter tail is merged into the previous chunk

    @model_validator(mode="after")
    def _overlap_below_max(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("overlap_tokens must be smaller than max_tokens")
        return self


class MemoryDomain(Strict):
    description: str = ""
    default_lang: str = "en"
    visibility: str = Field(default="shared", pattern="^(shared|user|campaign)$")
    chunking: ChunkingSettings = ChunkingSettings()


class FusionSettings(Strict):
    """Weighted reciprocal rank fusion: score = sum(weight / (k + rank))."""

    k: int = Field(default=60, ge=1, le=1000)
    dense_weight: float = Field(default=1.0, ge=0)
    keyword_weight: float = Field(default=1.0, ge=0)
    candidates: int = Field(default=50, ge=1, le=1000)  # taken from each side before fusing


class DenseSettings(Strict):
    ef_search: int = Field(default=200, ge=1, le=1000)
    max_scan_tuples: int = Field(default=20_000, ge=1)
    exact_below: int = Field(default=2_000, ge=0)  # a filter matching fewer vectors than this: exact search
    hnsw_m: int = Field(default=16, ge=2, le=100)
    hnsw_ef_construction: int = Field(default=200, ge=4, le=1000)


class KeywordSettings(Strict):
    # Match only the query's rarest lexemes whose document frequencies add up to at most this many rows
    # (the rarest one always); rows past 4x this are not ranked. Frequencies come from memory_lexemes.
    max_ranked_rows: int = Field(default=2_000, ge=10)
    # Words in more than this share of all chunks (and more than min_common_rows) separate nothing: they
    # are not matched on, unless the query has no other word.
    max_df: float = Field(default=0.1, gt=0, le=1)
    min_common_rows: int = Field(default=100, ge=0)
    names_weight: float = Field(default=0.5, ge=0)  # rank weight of unstemmed name matches


class RerankSettings(Strict):
    top_n: int = Field(default=20, ge=1, le=200)


def _default_domains() -> dict[str, MemoryDomain]:
    return {
        "srd": MemoryDomain(description="rules reference (SRD)", visibility="shared"),
        "lore": MemoryDomain(description="world lore", visibility="shared"),
        "episodes": MemoryDomain(
            description="campaign episodes",
            visibility="campaign",
            chunking=ChunkingSettings(max_tokens=120, overlap_tokens=24),
        ),
    }


class MemorySection(Strict):
    # language code → PostgreSQL text search configuration; other codes use `simple`
    languages: dict[str, str] = Field(default_factory=lambda: {"en": "english", "ru": "russian"})
    domains: dict[str, MemoryDomain] = Field(default_factory=_default_domains)
    fusion: FusionSettings = FusionSettings()
    dense: DenseSettings = DenseSettings()
    keyword: KeywordSettings = KeywordSettings()
    rerank: RerankSettings = RerankSettings()
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    max_query_chars: int = Field(default=2000, ge=16, le=100_000)

    @model_validator(mode="after")
    def _names(self) -> MemorySection:
        for name in self.domains:
            if not _DOMAIN_NAME.match(name):
                raise ValueError(f"domain name {name!r} must match {_DOMAIN_NAME.pattern}")
        for code, cfg in self.languages.items():
            if not _IDENT.match(code) or not _IDENT.match(cfg):
                raise ValueError(f"languages.{code}: {cfg!r} is not a text search configuration name")
        return self


class LogicConfig(Strict):
    llm: LLMSection = LLMSection()
    auth: AuthSection = AuthSection()
    http: HTTPSection = HTTPSection()
    database: DatabaseSection = DatabaseSection()
    config: ConfigSection = ConfigSection()
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    compute: ComputeSection = ComputeSection()
    media: MediaSection = MediaSection()
    genlayers: GenlayersSection = GenlayersSection()
    memory: MemorySection = MemorySection()


class TemplateVariable(Strict):
    """A declared template variable: the request's ``input`` is checked against these before any call."""

    type: str = Field(default="string", pattern="^(string|integer|number|boolean)$")
    required: bool = True
    max_length: int | None = Field(default=None, ge=1)
    enum: list[str | int | float] | None = None
    default: str | int | float | bool | None = None
    description: str = ""


class MemoryRetrieval(Strict):
    """Inject the top memory37 chunks (with their ids, so the output can cite them)."""

    domains: list[str] = Field(min_length=1)
    top_k: int = Field(default=5, ge=1, le=50)
    query_variable: str = "input"  # which template variable is the search query
    max_chars_per_chunk: int = Field(default=1200, ge=50)
    citations_field: str | None = None  # output field whose ids must be among the injected chunk ids


class PlanSettings(Strict):
    """Orchestration: a planning profile returns ``{"subtasks": [...]}``; each subtask runs through
    ``worker`` (concurrently, under ``max_concurrency``); ``assembler`` merges the results."""

    planner: str
    worker: str
    assembler: str | None = None
    max_concurrency: int = Field(default=4, ge=1, le=32)
    max_subtasks: int = Field(default=12, ge=1, le=100)
    subtask_retries: int = Field(default=1, ge=0, le=5)  # extra rounds for failed subtasks only


class Profile(Strict):
    """A generation profile (genlayers): model, sampling, output schema, prompt, cost and reliability."""

    provider: str = "openai"
    model: str = "gpt-4o-mini"
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1, le=128_000)
    api: str = Field(default="chat", pattern="^(chat|responses)$")
    output_schema: dict[str, Any] | str | None = None  # inline JSON Schema, or a file in configs/schemas/
    schema_name: str | None = None  # name sent with the strict schema (default: the profile name)
    strict: bool = True
    system_prompt: str = ""
    template: str = "{input}"
    variables: dict[str, TemplateVariable] = Field(default_factory=dict)  # default: {input: string}
    retries: int = Field(default=2, ge=0, le=10)  # extra attempts after an invalid reply
    cache: str = Field(default="off", pattern="^(off|shared|user)$")  # user: keyed per user too
    cache_ttl_seconds: int = Field(default=0, ge=0)
    timeout_seconds: float | None = Field(default=None, gt=0)  # per call; default: the provider's
    feature: str = "default"
    domain: str | None = None  # cost reports; default: the first memory domain, else "general"
    fallback: list[str] = Field(default_factory=list)  # "provider" or "provider:model", in order
    memory: MemoryRetrieval | None = None
    plan: PlanSettings | None = None
    batch: bool = False  # low priority: may go through the OpenAI Batch API


class ProfilesConfig(Strict):
    profiles: dict[str, Profile] = Field(default_factory=dict)


class AppConfig(Strict):
    logic: LogicConfig
    profiles: ProfilesConfig
