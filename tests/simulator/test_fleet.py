"""STAN counters wrap and reset at midnight, so keys reuse STANs across days."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from models.events import TerminalRequest
from streams.simulator.fleet import MARKETS, Fleet, Merchant, Terminal, build_fleet
from streams.simulator.timefmt import MS_PER_DAY, parse_instant_ms
from tests.simulator.helpers import decoded, run

MIDNIGHT = parse_instant_ms("2026-11-27T00:00:00Z")


def terminal(stan: int, *, resets: bool) -> Terminal:
    merchant = Merchant("MCN000001", MARKETS[0], "+08:00", (1.0,))
    return Terminal(
        0, "TCN00001", merchant, 0, 30_000, False, resets, stan, MIDNIGHT // MS_PER_DAY - 1
    )


@pytest.mark.parametrize(
    ("start", "resets", "times", "expected"),
    [
        (999_998, False, [0, 1_000, 2_000], ["999999", "000001", "000002"]),  # wrap skips 0
        (41, True, [-5_000, 1_000, 2_000], ["000042", "000001", "000002"]),  # midnight reset
        (41, False, [-5_000, 1_000, 2_000], ["000042", "000043", "000044"]),  # no reset
    ],
)
def test_allocate_stan(start, resets, times, expected):
    pos = terminal(start, resets=resets)
    assert [pos.allocate_stan(MIDNIGHT + t) for t in times] == expected


def test_allocate_stan_never_repeats_a_stan_within_a_second():
    """A follow-up reserved after midnight resets the counter; an earlier sale in the
    same second as an old one must not get that one's STAN again."""
    pos = terminal(0, resets=True)
    before = MIDNIGHT - 2_000
    first = [pos.allocate_stan(before) for _ in range(3)]  # 000001..000003 at 23:59:58
    pos.allocate_stan(MIDNIGHT + 60_000)  # a reserved follow-up: reset, 000001
    again = [pos.allocate_stan(before + 500) for _ in range(3)]  # same second as `first`
    assert not set(first) & set(again)


def requests_by_terminal(lines: list[bytes]) -> dict[str, list[tuple[datetime, str]]]:
    sales: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for item in decoded(lines):
        if isinstance(item.event, TerminalRequest):
            sales[item.event.terminal_id].append((item.event.transmitted_at, item.event.stan))
    return {terminal: sorted(set(seq)) for terminal, seq in sales.items()}


def test_stan_wraps_from_999999_to_000001():
    # A terminal serves one sale at a time (~5 s busy): keep 10 terminals mostly idle.
    lines = run(
        transactions=2_000, terminals=10, merchants=2, rate=0.5, sets=("stan_near_wrap_share=1",)
    ).lines
    wrapped = 0
    for sequence in requests_by_terminal(lines).values():
        stans = [stan for _, stan in sequence]
        if "999999" in stans:
            assert stans[stans.index("999999") + 1] == "000001"
            wrapped += 1
    assert wrapped >= 3


def test_stans_are_reused_across_midnight():
    lines = run(
        transactions=6_000,
        terminals=30,
        merchants=3,
        rate=3.0,
        start="2026-11-26T23:58:00Z",
        sets=("stan_reset_share=1",),
    ).lines
    reused = 0
    for sequence in requests_by_terminal(lines).values():
        utc = [(moment.astimezone(UTC), stan) for moment, stan in sequence]
        assert next(stan for moment, stan in utc if moment.day == 27) == "000001"
        days: dict[str, set[int]] = defaultdict(set)
        for moment, stan in utc:
            days[stan].add(moment.day)
        reused += sum(1 for seen in days.values() if len(seen) > 1)
    assert reused > 50


def test_fleet_is_drawn_deterministically_with_every_merchant_served():
    def draw(seed: int) -> Fleet:
        return build_fleet(
            random.Random(seed),
            merchants=20,
            terminals=50,
            cards=100,
            start_ms=MIDNIGHT,
            max_clock_skew_s=120,
            stan_reset_share=0.3,
            stan_near_wrap_share=0.02,
            ms_transmitted_share=0.3,
            dual_message_share=0.3,
        )

    one, two = draw(5), draw(5)
    assert [c.card_token for c in one.cards] == [c.card_token for c in two.cards]
    assert {t.merchant.merchant_id for t in one.terminals} == {m.merchant_id for m in one.merchants}
    assert all(-120_000 <= t.skew_ms <= 120_000 for t in one.terminals)
    assert all(20_000 <= t.timeout_ms <= 60_000 for t in one.terminals)
    assert len({c.card_token for c in one.cards}) == 100
