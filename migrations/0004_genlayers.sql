-- genlayers: response cache, usage ledger (LLM and media calls), limits read from the ledger.

-- One row per provider call (every attempt that reached a provider and was billed). The media
-- broker writes here too (kind tts/image/avatar, with units instead of tokens).
CREATE TABLE usage_ledger (
    id                 bigserial PRIMARY KEY,
    created_at         timestamptz NOT NULL DEFAULT now(),
    user_id            bigint,
    session_id         text,
    feature            text NOT NULL DEFAULT 'default',
    domain             text NOT NULL DEFAULT 'general',
    provider           text NOT NULL,
    model              text NOT NULL DEFAULT '',
    kind               text NOT NULL DEFAULT 'llm',
    prompt_tokens      integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens  integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    cached_tokens      integer NOT NULL DEFAULT 0 CHECK (cached_tokens >= 0),
    units              numeric(20, 6) NOT NULL DEFAULT 0,
    cost_usd           numeric(18, 8) NOT NULL DEFAULT 0,
    latency_ms         integer NOT NULL DEFAULT 0,
    meta               jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX usage_ledger_user_time ON usage_ledger (user_id, created_at);
CREATE INDEX usage_ledger_session_time ON usage_ledger (session_id, created_at) WHERE session_id IS NOT NULL;
CREATE INDEX usage_ledger_time ON usage_ledger (created_at);

-- Cached structured replies. The key hashes provider, model, api, messages, schema, temperature and
-- max tokens (and the user for per-user profiles); rows past expires_at are ignored and pruned.
CREATE TABLE llm_response_cache (
    cache_key    text PRIMARY KEY,
    profile      text NOT NULL,
    provider     text NOT NULL,
    model        text NOT NULL,
    output       jsonb NOT NULL,
    usage        jsonb NOT NULL DEFAULT '{}'::jsonb,
    hits         integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX llm_response_cache_expires ON llm_response_cache (expires_at);

-- Low-priority generations sent through the OpenAI Batch API (compute kind genlayers.generate): the
-- batch a task's request went into, so the drain's next attempt polls it instead of submitting again.
CREATE TABLE llm_batch_requests (
    request_key  text PRIMARY KEY,
    provider     text NOT NULL,
    batch_id     text NOT NULL,
    input_file   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
