"""Users who sign in through Telegram."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

UPSERT_USER = """
INSERT INTO users (telegram_id, username, first_name, last_name, language_code, is_premium, photo_url,
                   last_login_at)
VALUES (%(telegram_id)s, %(username)s, %(first_name)s, %(last_name)s, %(language_code)s,
        %(is_premium)s, %(photo_url)s, now())
ON CONFLICT (telegram_id) DO UPDATE SET
    username = EXCLUDED.username, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    language_code = EXCLUDED.language_code, is_premium = EXCLUDED.is_premium,
    photo_url = EXCLUDED.photo_url, updated_at = now(), last_login_at = now()
RETURNING id
"""

ENSURE_USER = """
INSERT INTO users (telegram_id) VALUES (%s)
ON CONFLICT (telegram_id) DO UPDATE SET updated_at = users.updated_at
RETURNING id
"""


def _text(value: Any, limit: int = 256) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def upsert_user(conn: psycopg.Connection[Any], telegram_user: dict[str, Any]) -> int:
    row = conn.execute(
        UPSERT_USER,
        {
            "telegram_id": int(telegram_user["id"]),
            "username": _text(telegram_user.get("username")),
            "first_name": _text(telegram_user.get("first_name")),
            "last_name": _text(telegram_user.get("last_name")),
            "language_code": _text(telegram_user.get("language_code"), 16),
            "is_premium": bool(telegram_user.get("is_premium", False)),
            "photo_url": _text(telegram_user.get("photo_url"), 1024),
        },
    ).fetchone()
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])


def ensure_user(conn: psycopg.Connection[Any], telegram_id: int) -> int:
    row = conn.execute(ENSURE_USER, (telegram_id,)).fetchone()
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])
