"""Secrets never reach the logs."""

from __future__ import annotations

import json

import pytest

from shared.observability.redact import REDACTED, redact, redact_text


def test_secret_keys_are_replaced_whole() -> None:
    out = redact(
        {
            "init_data": "query_id=1&hash=ab",
            "Authorization": "Bearer x.y.z",
            "nested": {"api_key": "k"},
            "ok": "plain",
        }
    )
    assert out == {
        "init_data": REDACTED,
        "Authorization": REDACTED,
        "nested": {"api_key": REDACTED},
        "ok": "plain",
    }


@pytest.mark.parametrize(
    "text,secret",
    [
        ("bot 5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8 failed", "AAH5YkoiEuPk8"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl seen", "eyJzdWIiOiIxIn0"),
        ("key sk-proj-abcdefghijklmnopqrstuvwxyz used", "abcdefghijklmnop"),
        ("got query_id=AAH&user=%7B%22id%22%3A1%7D&auth_date=1&hash=ff", "%7B%22id"),
        ("header Bearer abc.def.ghi", "abc.def.ghi"),
    ],
)
def test_secrets_inside_text_are_masked(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_secret_env_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "custom-key-without-prefix-123")
    assert "custom-key-without-prefix-123" not in redact_text("using custom-key-without-prefix-123 now")


def test_logger_output_is_redacted() -> None:
    import io
    import logging

    from shared.observability.logging import get_logger

    logger = get_logger()
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)  # the logger's own formatter, on a stream this test owns
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        logger.info(
            "auth attempt", extra={"init_data": "user=%7B%7D&hash=00", "detail": "Bearer abc.def.ghi"}
        )
    finally:
        logger.removeHandler(handler)
    line = buf.getvalue().strip().splitlines()[-1]
    record = json.loads(line)
    assert record["init_data"] == REDACTED
    assert "abc.def.ghi" not in line
    assert record["message"] == "auth attempt"
