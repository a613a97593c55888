"""RFC 3339 rendering of integer millisecond instants, fast enough for millions of events.

The simulator keeps every true time as an integer count of milliseconds since the Unix
epoch (no floats, no datetime objects in the hot loop) and only turns it into text when
an event is encoded. ``datetime.isoformat`` costs several microseconds per call; the
arithmetic below plus a per-day cache of the date part costs well under one, which
matters at ~10 million timestamps per million transactions.

>>> format_instant(1_795_723_200_250, 0, "Z", True)
'2026-11-26T20:00:00.250Z'
>>> format_instant(1_795_723_200_250, 480, "+08:00", False)
'2026-11-27T04:00:00+08:00'
>>> parse_instant_ms("2026-11-26T20:00:00Z")
1795723200000
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

MS_PER_SECOND: Final = 1_000
MS_PER_MINUTE: Final = 60_000
MS_PER_HOUR: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000

_EPOCH: Final = date(1970, 1, 1)
TWO_DIGITS: Final = tuple(f"{i:02d}" for i in range(100))
THREE_DIGITS: Final = tuple(f"{i:03d}" for i in range(1000))
MINUTE_PREFIXES: dict[int, str] = {}
_TWO: Final = TWO_DIGITS
_THREE: Final = THREE_DIGITS
_MINUTES: Final = MINUTE_PREFIXES
_MINUTE_CACHE_LIMIT: Final = 1_000_000
_SECOND_CACHE_LIMIT: Final = 20_000


def minute_prefix(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of a (local) minute number since the epoch, cached.

    Events cluster in time, so nearly every call hits the cache; the cache is dropped
    if a very long run ever fills it.
    """
    day, minute_of_day = divmod(minute, 1440)
    hour, minute_of_hour = divmod(minute_of_day, 60)
    text = f"{(_EPOCH + timedelta(days=day)).isoformat()}T{_TWO[hour]}:{_TWO[minute_of_hour]}:"
    if len(_MINUTES) >= _MINUTE_CACHE_LIMIT:
        _MINUTES.clear()
    _MINUTES[minute] = text
    return text


def offset_suffix(offset_minutes: int) -> str:
    """The RFC 3339 offset text for a UTC offset in minutes: ``+05:30``, ``-05:00``.

    UTC itself is rendered ``+00:00`` here (a terminal in London reports its local
    offset); callers that want ``Z`` pass ``"Z"`` directly.

    >>> offset_suffix(330), offset_suffix(-300), offset_suffix(0)
    ('+05:30', '-05:00', '+00:00')
    """
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


SECOND_PREFIXES: dict[int, str] = {}


def second_prefix(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.`` of a (local) epoch second, cached: the hot loop appends
    the milliseconds and the offset to it."""
    minute, second_of_minute = divmod(second, 60)
    text = (MINUTE_PREFIXES.get(minute) or minute_prefix(minute)) + _TWO[second_of_minute] + "."
    if len(SECOND_PREFIXES) >= _SECOND_CACHE_LIMIT:
        SECOND_PREFIXES.clear()  # events cluster in time: a fresh cache refills fast
    SECOND_PREFIXES[second] = text
    return text


def format_instant(ms: int, offset_minutes: int, suffix: str, with_ms: bool) -> str:
    """Render instant ``ms`` as local time at ``offset_minutes`` with ``suffix``.

    ``suffix`` must be the text of the same offset (``"Z"`` for 0, or
    :func:`offset_suffix`); it is passed in so callers format it once per terminal.
    Milliseconds are truncated, never rounded, so the rendered second is the instant's
    second: the transaction key depends on it. (Table lookups instead of format specs:
    ``f"{x:02d}"`` costs ~5x more than indexing a tuple of strings.)
    """
    local = ms + offset_minutes * MS_PER_MINUTE
    minute = local // MS_PER_MINUTE
    prefix = _MINUTES.get(minute)
    if prefix is None:
        prefix = minute_prefix(minute)
    rest = local - minute * MS_PER_MINUTE
    if with_ms:
        return f"{prefix}{_TWO[rest // 1000]}.{_THREE[rest % 1000]}{suffix}"
    return f"{prefix}{_TWO[rest // 1000]}{suffix}"


def format_utc_second(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of an epoch second: the truth file's ``transmitted_at``.

    >>> format_utc_second(1_795_723_200)
    '2026-11-26T20:00:00Z'
    """
    return format_instant(second * MS_PER_SECOND, 0, "Z", False)


def parse_instant_ms(text: str) -> int:
    """Parse an RFC 3339 instant (offset required) into epoch milliseconds.

    Raises ValueError for text without an offset: a start time must be an instant.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; write e.g. 2026-11-26T20:00:00Z")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * MS_PER_SECOND + delta.microseconds // 1000
