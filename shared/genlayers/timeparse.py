"""``--since`` values: an ISO date or datetime (UTC when naive) or a relative span like 30m, 24h, 7d."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(
    value: str | None, *, default: timedelta = timedelta(days=7), now: datetime | None = None
) -> datetime:
    now = now or datetime.now(UTC)
    if not value:
        return now - default
    m = _RELATIVE.match(value.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"since: {value!r} is not an ISO date/datetime or a span like 24h, 7d") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
