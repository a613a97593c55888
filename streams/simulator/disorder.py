"""When each event *arrives*: network delay, issuer feed lag and bursts, redelivery, late tail.

Event time (``occurred_at``) says when something happened; arrival order is what a
consumer sees. A detector that is right only on ordered input is wrong in production,
so the simulator separates the two:

* terminal events travel a short hop: ~1 ms plus an exponential delay (mean
  ``terminal_delay_ms``, at most ~9x the mean), i.e. milliseconds to about a second;
* the issuer feed lags by 0.5 s plus an exponential delay (mean ``issuer_lag_ms``), and
  in ``issuer_burst_share`` of the minutes the whole feed falls a further 10 s ..
  ``issuer_burst_max_s`` behind (a batch job, a broker rebalance). Bursts are drawn per
  minute of event time from their own RNG, in minute order, so they do not depend on
  the order in which the generator asks;
* ``redelivery`` of events arrive a second time, byte-identical, 1-120 s later, or
  6-60 min later (``late_redelivery_share``, i.e. after the window closed);
* a ``late_tail`` of events arrives 1-6 h late. Nothing is ever more than 7 days late
  (CONTRACT §3 retention): the longest delay here is about 6 h plus a burst.
"""

from __future__ import annotations

import math
import random
from typing import Final

from streams.simulator.ordering import ArrivalBuffer, Line
from streams.simulator.profiles import Profile

US_PER_MS: Final = 1_000
US_PER_SECOND: Final = 1_000_000
US_PER_MINUTE: Final = 60 * US_PER_SECOND
US_PER_HOUR: Final = 60 * US_PER_MINUTE
_ISSUER_FLOOR_US: Final = 500_000
_TERMINAL_FLOOR_US: Final = 1_000
_BURST_SALT: Final = 0x6B757273  # keeps the burst RNG's stream apart from the main one
_RARE_SALT: Final = 0x72617265
# Quantiles of the unit exponential distribution: a delay is one 12-bit draw and an
# index instead of a log per event (the top quantile is ~9x the mean). A power of two.
_EXP_STEPS: Final = 4096
UNIT_EXPONENTIAL: Final = tuple(-math.log(1.0 - (i + 0.5) / _EXP_STEPS) for i in range(_EXP_STEPS))


class Disorder:
    """Arrival-delay parameters and the rarer draws, all from seeded generators.

    The common per-event draws (one uniform for the delay, one for redelivery / late
    tail) are inlined in :class:`streams.simulator.emitter.Emitter`; this class owns
    their parameters and the bursts, redelivery and late-tail draws.
    """

    def __init__(self, rng: random.Random, profile: Profile, seed: int, start_ms: int) -> None:
        self.random = rng.random
        self.getrandbits = rng.getrandbits
        self.terminal_mean_us = profile.terminal_delay_ms * US_PER_MS
        self.terminal_floor_us = _TERMINAL_FLOOR_US
        self.issuer_mean_us = profile.issuer_lag_ms * US_PER_MS
        self.issuer_floor_us = _ISSUER_FLOOR_US
        self.bursts = profile.issuer_burst_share > 0.0
        self._burst_share = profile.issuer_burst_share
        self._burst_max_us = int(profile.issuer_burst_max_s * US_PER_SECOND)
        self._burst_rng = random.Random(seed ^ _BURST_SALT)
        # The rare draws (how late a late-tail event or a redelivered copy is) have their
        # own generator: the fast path may make them after the main draws of a sale.
        self._rare = random.Random(seed ^ _RARE_SALT).random
        self.burst_base_minute = start_ms // 60_000
        self.burst_lags: list[int] = []  # us of extra lag, by minute since the base
        self.redelivery = profile.redelivery
        self.late_tail = profile.late_tail
        self._late_redelivery_share = profile.late_redelivery_share
        self.redelivered = 0  # counters for the summary, kept by the emitter
        self.late = 0

    def burst_us(self, at_ms: int) -> int:
        """The extra issuer lag of the minute ``at_ms`` falls in (0 outside bursts).

        ``burst_lags`` grows to cover every minute asked about (zeros when bursts are
        off), so the emitter indexes it directly and calls this only for a new minute.
        """
        index = at_ms // 60_000 - self.burst_base_minute
        bursts = self.burst_lags
        if index < 0:  # before the run's first minute: no burst there
            return 0
        draw = self._burst_rng.random
        while len(bursts) <= index:
            if self.bursts and draw() < self._burst_share:
                low = 10 * US_PER_SECOND
                bursts.append(low + int(draw() * (self._burst_max_us - low)))
            else:
                bursts.append(0)
        return bursts[index]

    def deliver_unusual(self, draw: float, item: Line, buffer: ArrivalBuffer) -> None:
        """File an event whose ``draw`` fell below ``late_tail + redelivery``.

        Below ``late_tail`` the event arrives 1-6 h late; otherwise it arrives on time
        and an identical copy (the same bytes) follows later.
        """
        arrival, source, line = item
        if draw < self.late_tail:
            self.late += 1
            buffer.push_many([(arrival + self.late_tail_delay_us(), source, line)])
        else:
            self.redelivered += 1
            buffer.push_many([item, (arrival + self.redelivery_delay_us(), source, line)])

    def redelivery_delay_us(self) -> int:
        """How long after the first delivery the identical copy arrives."""
        if self._rare() < self._late_redelivery_share:
            return 6 * US_PER_MINUTE + int(self._rare() * 54 * US_PER_MINUTE)
        return US_PER_SECOND + int(self._rare() * 119 * US_PER_SECOND)

    def late_tail_delay_us(self) -> int:
        return US_PER_HOUR + int(self._rare() * 5 * US_PER_HOUR)
