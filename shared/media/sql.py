"""SQL of the media broker (tables from migrations/0005_media.sql)."""

INSERT_ASSET = """
INSERT INTO media_assets (content_hash, kind, status, provider)
VALUES (%(hash)s, %(kind)s, 'pending', %(provider)s)
ON CONFLICT (content_hash) DO NOTHING
RETURNING *
"""

LOCK_ASSET_BY_HASH = "SELECT * FROM media_assets WHERE content_hash = %s FOR UPDATE"
LOCK_ASSET = "SELECT * FROM media_assets WHERE id = %s FOR UPDATE"
GET_ASSET = "SELECT * FROM media_assets WHERE id = %s"

RESET_FAILED_ASSET = """
UPDATE media_assets SET status = 'pending', error = NULL, provider = %(provider)s, updated_at = now()
WHERE id = %(id)s AND status = 'failed'
"""

SET_ASSET_TASK = "UPDATE media_assets SET task_id = %(task)s, updated_at = now() WHERE id = %(id)s"

ASSET_READY = """
UPDATE media_assets
SET status = 'ready', storage_key = %(key)s, content_type = %(content_type)s, size_bytes = %(size)s,
    provider = %(provider)s, model = %(model)s, units = %(units)s, cost_usd = %(cost)s, error = NULL,
    updated_at = now()
WHERE id = %(id)s AND status = 'pending'
RETURNING *
"""

ASSET_FAILED = """
UPDATE media_assets SET status = 'failed', error = %(error)s, updated_at = now()
WHERE id = %(id)s AND status = 'pending'
RETURNING id
"""

DELETE_PENDING_ASSET = "DELETE FROM media_assets WHERE id = %s AND status = 'pending'"

INSERT_JOB = """
INSERT INTO media_jobs (id, user_id, kind, priority, input, content_hash, asset_id, task_id, status, cached,
                        joined, cost_usd, finished_at)
VALUES (%(id)s, %(user)s, %(kind)s, %(priority)s, %(input)s, %(hash)s, %(asset)s, %(task)s, %(status)s,
        %(cached)s, %(joined)s, %(cost)s, CASE WHEN %(status)s = 'done' THEN now() END)
RETURNING *
"""

GET_JOB_FOR_USER = """
SELECT j.*, a.status AS asset_status, a.storage_key, a.content_type, a.size_bytes, a.error AS asset_error,
       a.task_id AS asset_task_id
FROM media_jobs j LEFT JOIN media_assets a ON a.id = j.asset_id
WHERE j.id = %(id)s AND j.user_id = %(user)s
"""

LOCK_JOB_FOR_USER = "SELECT * FROM media_jobs WHERE id = %(id)s AND user_id = %(user)s FOR UPDATE"

JOBS_RUNNING = """
UPDATE media_jobs SET status = 'running', updated_at = now()
WHERE asset_id = %s AND status = 'queued'
"""

JOBS_DONE = """
UPDATE media_jobs SET status = 'done', finished_at = now(), updated_at = now(),
       cost_usd = CASE WHEN cached OR joined THEN 0 ELSE %(cost)s END
WHERE asset_id = %(asset)s AND status IN ('queued', 'running')
RETURNING id, user_id, joined, cached
"""

JOBS_FAILED = """
UPDATE media_jobs SET status = 'failed', error = %(error)s, finished_at = now(), updated_at = now()
WHERE asset_id = %(asset)s AND status IN ('queued', 'running')
"""

OTHER_LIVE_JOBS = """
SELECT count(*) AS n FROM media_jobs
WHERE asset_id = %(asset)s AND id <> %(id)s AND status IN ('queued', 'running')
"""

CANCEL_JOB = """
UPDATE media_jobs SET status = 'cancelled', finished_at = now(), updated_at = now()
WHERE id = %s
RETURNING *
"""

# The job that started making an asset: whose usage the provider call is recorded under.
ORIGIN_JOB = """
SELECT id, user_id FROM media_jobs WHERE asset_id = %s AND NOT cached AND NOT joined
ORDER BY created_at DESC LIMIT 1
"""
