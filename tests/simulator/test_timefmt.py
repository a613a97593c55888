"""The fast RFC 3339 rendering agrees with datetime for any instant and offset."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from streams.simulator.timefmt import (
    format_instant,
    format_utc_second,
    offset_suffix,
    parse_instant_ms,
)

OFFSETS = [0, 480, 330, 60, -300, 540, -210]


@pytest.mark.parametrize("offset", OFFSETS)
def test_format_instant_matches_datetime(offset):
    rng = random.Random(offset)
    zone = timezone(timedelta(minutes=offset))
    suffix = offset_suffix(offset)
    for _ in range(2_000):
        ms = rng.randrange(1_700_000_000_000, 1_900_000_000_000)
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)
        moment = moment.replace(microsecond=(ms % 1000) * 1000)
        expected_ms = moment.isoformat(timespec="milliseconds").replace("+00:00", suffix)
        expected_s = moment.isoformat(timespec="seconds").replace("+00:00", suffix)
        assert format_instant(ms, offset, suffix, True) == expected_ms
        assert format_instant(ms, offset, suffix, False) == expected_s
        assert datetime.fromisoformat(format_instant(ms, offset, suffix, True)) == moment


def test_utc_second_and_parse_round_trip():
    assert format_utc_second(1_795_737_600) == "2026-11-27T00:00:00Z"
    assert parse_instant_ms("2026-11-27T08:00:00.250+08:00") == 1_795_737_600_250
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_instant_ms("2026-11-27T00:00:00")
