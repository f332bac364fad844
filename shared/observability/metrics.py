"""Powertools Metrics in CloudWatch EMF; the same object flushes in Lambda and in the local server."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.config import env

__all__ = ["MetricUnit", "add_metric", "flush", "get_metrics"]

_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics(namespace=env.METRICS_NAMESPACE.get(), service=env.SERVICE_NAME.get())
    return _metrics


def add_metric(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    get_metrics().add_metric(name=name, unit=unit, value=value)


def flush() -> None:
    """Emit what has been recorded (one EMF line) and start afresh; a no-op when nothing was recorded."""
    m = get_metrics()
    if m.metric_set:
        m.flush_metrics()
