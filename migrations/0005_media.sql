-- Media broker: content-addressed assets (one row per distinct kind + input + provider settings) and the
-- user-facing jobs that ask for them. A job is served from a ready asset (cache hit), joins an asset that is
-- being made, or starts making one through a compute task (compute_tasks, kinds media.tts/image/avatar).

CREATE TABLE media_assets (
    id             bigserial PRIMARY KEY,
    content_hash   text NOT NULL UNIQUE,          -- sha256 of kind, normalised input and provider settings
    kind           text NOT NULL CHECK (kind IN ('tts', 'image', 'avatar')),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    task_id        bigint REFERENCES compute_tasks (id) ON DELETE SET NULL,
    storage_key    text,                          -- set only once the object is fully written
    content_type   text,
    size_bytes     bigint,
    provider       text,
    model          text,
    units          numeric,                       -- characters / images / seconds of the provider call
    cost_usd       numeric(12, 6),
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'ready' OR storage_key IS NOT NULL)
);

CREATE INDEX media_assets_task ON media_assets (task_id) WHERE task_id IS NOT NULL;

CREATE TABLE media_jobs (
    id             uuid PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('tts', 'image', 'avatar')),
    priority       text NOT NULL DEFAULT 'low' CHECK (priority IN ('high', 'low')),
    input          jsonb NOT NULL,
    content_hash   text NOT NULL,
    asset_id       bigint REFERENCES media_assets (id) ON DELETE SET NULL,
    task_id        bigint REFERENCES compute_tasks (id) ON DELETE SET NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    cached         boolean NOT NULL DEFAULT false,  -- served from an asset that already existed
    joined         boolean NOT NULL DEFAULT false,  -- attached to an asset another job was making
    cost_usd       numeric(12, 6) NOT NULL DEFAULT 0, -- estimate at creation; counts against the daily quota
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);

CREATE INDEX media_jobs_user_day ON media_jobs (user_id, created_at);
CREATE INDEX media_jobs_asset_live ON media_jobs (asset_id) WHERE status IN ('queued', 'running');
