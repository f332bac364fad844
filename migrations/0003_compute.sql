-- Compute: the generic task queue (compute_tasks), pull-worker credentials (compute_workers) and the
-- RunPod asynchronous jobs the drain has dispatched and not yet collected (compute_runpod_jobs).

CREATE TABLE compute_tasks (
    id                 bigserial PRIMARY KEY,
    kind               text NOT NULL,
    priority           text NOT NULL DEFAULT 'low' CHECK (priority IN ('high', 'low')),
    -- claim order: high before low, then oldest first (id is monotone)
    prio               smallint GENERATED ALWAYS AS (CASE priority WHEN 'high' THEN 0 ELSE 1 END) STORED,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'dead', 'cancelled')),
    payload            jsonb NOT NULL,
    result             jsonb,
    error              text,
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    lease_until        timestamptz,
    lease_token        uuid,
    worker_id          text,
    not_before         timestamptz NOT NULL DEFAULT now(),
    idempotency_key    text UNIQUE,
    owner_user_id      bigint REFERENCES users (id) ON DELETE SET NULL,
    callback_url       text,
    callback_status    text CHECK (callback_status IN ('pending', 'delivered', 'failed')),
    callback_attempts  integer NOT NULL DEFAULT 0,
    callback_next_at   timestamptz,
    callback_error     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz
);

-- The claim scans only claimable rows, in claim order, per kind: stays small as completed rows pile up.
CREATE INDEX compute_tasks_claimable ON compute_tasks (kind, prio, id)
    WHERE status IN ('pending', 'failed');
-- Lease expiry looks only at rows being processed.
CREATE INDEX compute_tasks_leases ON compute_tasks (lease_until) WHERE status = 'processing';
-- Callback delivery looks only at undelivered callbacks.
CREATE INDEX compute_tasks_callbacks ON compute_tasks (callback_next_at) WHERE callback_status = 'pending';
CREATE INDEX compute_tasks_owner ON compute_tasks (owner_user_id, id) WHERE owner_user_id IS NOT NULL;

CREATE TABLE compute_workers (
    id                 bigserial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    token_hash         text NOT NULL UNIQUE,      -- sha256 hex of the token; the token itself is never stored
    token_prefix       text NOT NULL,             -- first characters, to recognise a token in a list
    kinds              text[],                    -- NULL: every kind
    rate_limit_per_minute integer NOT NULL DEFAULT 600 CHECK (rate_limit_per_minute > 0),
    rl_window          timestamptz,               -- fixed one-minute window of the rate limit
    rl_count           integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz,
    revoked_at         timestamptz
);

CREATE TABLE compute_runpod_jobs (
    job_id             text PRIMARY KEY,
    kind               text NOT NULL,
    endpoint_id        text NOT NULL,
    tasks              jsonb NOT NULL,            -- [{"id", "lease_token", "n"}] in the order sent
    status             text NOT NULL DEFAULT 'IN_QUEUE',
    submitted_at       timestamptz NOT NULL DEFAULT now(),
    checked_at         timestamptz,
    finished_at        timestamptz
);

CREATE INDEX compute_runpod_jobs_open ON compute_runpod_jobs (submitted_at) WHERE finished_at IS NULL;
