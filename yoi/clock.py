"""UTC timestamps: the one place that reads the clock and spells RFC 3339.

Every timestamp yoi writes is UTC with second precision, ``2026-11-20T10:00:00Z``.
``YOI_TEST_NOW`` (an RFC 3339 UTC timestamp) pins ``now()`` for deterministic tests.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

from yoi.errors import UsageError

TEST_NOW_ENV = "YOI_TEST_NOW"

_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z"
)


def now() -> datetime:
    """The current UTC time, microseconds dropped (or ``$YOI_TEST_NOW`` when set)."""
    pinned = os.environ.get(TEST_NOW_ENV)
    if pinned:
        try:
            return parse_ts(pinned).replace(microsecond=0)
        except ValueError as exc:
            raise UsageError(
                f"{TEST_NOW_ENV} is not a timestamp: {exc}",
                hint="use the form 2026-11-20T10:00:00Z",
            ) from None
    return datetime.now(UTC).replace(microsecond=0)


def _utc(dt: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """``2026-11-20T10:00:00Z`` (UTC, whole seconds)."""
    d = _utc(dt)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


def compact(dt: datetime) -> str:
    """``20261120100000``: the timestamp part of slugs and record ids."""
    d = _utc(dt)
    return f"{d.year:04d}{d.month:02d}{d.day:02d}{d.hour:02d}{d.minute:02d}{d.second:02d}"


def parse_ts(text: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` into an aware UTC datetime.

    Raises ``ValueError`` naming the expected form for anything else (other offsets,
    a missing ``Z``, lowercase ``t``/``z``, out-of-range fields).
    """
    match = _TS_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 UTC timestamp like 2026-11-20T10:00:00Z")
    year, month, day, hour, minute, second, frac = match.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((frac or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None
