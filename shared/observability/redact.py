"""Scrub secrets from anything that is about to be logged.

Keys that name secrets are replaced whole; inside free text, bot tokens, JWTs, API keys, bearer
credentials and Telegram initData pairs are masked, as is the value of every secret env var.
"""

from __future__ import annotations

import os
import re
from typing import Any

from shared.config import env

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(init_?data|token|authorization|password|passwd|secret|api_?key|private_?key|cookie|signature|^hash$)",
    re.IGNORECASE,
)
_PATTERNS = [
    re.compile(r"\b\d{5,12}:[A-Za-z0-9_-]{30,}\b"),  # Telegram bot token
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"\b(sk|rpa|rp)[-_][A-Za-z0-9_-]{16,}"),  # OpenAI / RunPod style keys
    re.compile(r"(?i)\b(bearer|tma)\s+[^\s,;\"']+"),  # Authorization values
    re.compile(r"(?i)\b(query_id|user|receiver|chat|auth_date|hash|signature|chat_instance)=[^&\s\"']*"),
    re.compile(r"(?i)(password|api_key|token)=[^&\s\"']+"),  # key=value secrets in URLs
]


def _secret_values() -> list[str]:
    values = []
    for name in env.SECRET_NAMES:
        v = os.environ.get(name)
        if v and len(v) >= 8:
            values.append(v)
    return values


def redact_text(text: str, secret_values: list[str] | None = None) -> str:
    for value in _secret_values() if secret_values is None else secret_values:
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with secrets replaced; the secret env values are read once per call."""
    return _redact(value, _secret_values(), 0)


def _redact(value: Any, secrets: list[str], depth: int) -> Any:
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                else _redact(v, secrets, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, secrets, depth + 1) for v in value)
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value
