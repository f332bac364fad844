"""Powertools Logger (JSON, correlation id) with every record scrubbed of secrets."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from shared.config import env
from shared.observability.redact import redact


class RedactingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: Any) -> str:
        return super().serialize(redact(log) if isinstance(log, dict) else log)


_logger: Logger | None = None


def get_logger() -> Logger:
    global _logger
    if _logger is None:
        _logger = Logger(
            service=env.SERVICE_NAME.get(),
            level=env.LOG_LEVEL.get() or "INFO",
            logger_formatter=RedactingFormatter(),
        )
    return _logger
