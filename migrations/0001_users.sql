-- Foundation: pgvector and the users who sign in through Telegram.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    telegram_id    bigint NOT NULL UNIQUE,
    username       text,
    first_name     text,
    last_name      text,
    language_code  text,
    is_premium     boolean NOT NULL DEFAULT false,
    photo_url      text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);
