"""Instants as integer microseconds since the Unix epoch, and their RFC 3339 spelling.

The core compares and stores times as ints: exact (an ``+08:00`` and a ``Z`` spelling
of one instant are the same int), cheap to compare and to pack. Conversion is on the
hot path, so it avoids ``timestamp()`` (a float, and slower for non-UTC offsets).

>>> from datetime import datetime, timezone, timedelta
>>> to_micros(datetime(2026, 11, 27, 17, 15, 2, 250000, tzinfo=timezone(timedelta(hours=8))))
1795770902250000
>>> format_micros(1795770902250000)
'2026-11-27T09:15:02.250Z'
>>> format_micros(1795770902000000)
'2026-11-27T09:15:02Z'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROS: Final = 1_000_000
_MAX_FORMATTABLE: Final = 253402300799 * MICROS  # 9999-12-31T23:59:59Z
_MIN_FORMATTABLE: Final = -62135596800 * MICROS  # 0001-01-01T00:00:00Z


def to_micros(instant: datetime, _epoch: datetime = EPOCH) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = instant - _epoch
    return (delta.days * 86400 + delta.seconds) * MICROS + delta.microseconds


def format_micros(micros: int) -> str:
    """RFC 3339 in UTC: whole seconds plain, otherwise with milliseconds (or micro)."""
    micros = max(min(micros, _MAX_FORMATTABLE), _MIN_FORMATTABLE)
    instant = EPOCH + timedelta(microseconds=micros)
    text = (
        f"{instant.year:04d}-{instant.month:02d}-{instant.day:02d}"
        f"T{instant.hour:02d}:{instant.minute:02d}:{instant.second:02d}"
    )
    fraction = instant.microsecond
    if fraction == 0:
        return text + "Z"
    if fraction % 1000 == 0:
        return f"{text}.{fraction // 1000:03d}Z"
    return f"{text}.{fraction:06d}Z"


def format_second(second: int) -> str:
    """The transaction key's second as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return format_micros(second * MICROS)


def micros_of(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 string (``Z`` or an offset).

    >>> micros_of("2026-11-27T09:15:02Z"), micros_of("2026-11-27T17:15:02+08:00")
    (1795770902000000, 1795770902000000)
    """
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"not an instant (no offset): {text!r}")
    return to_micros(instant)
