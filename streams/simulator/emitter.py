"""The hot loop: render each event, draw when it arrives, file it for arrival order.

This runs once per event of the run (~4.5 per transaction), so the three steps that
belong to three modules are done in one pass here, with every lookup hoisted into a
local: the JSON rules are :mod:`.encode`'s (field order, time formats per side), the
delays are :mod:`.disorder`'s (its parameters, bursts, redelivery and late tail), the
buffer is :mod:`.ordering`'s. The output of a pass is a framed capture line per event,
filed into the buffer's bucket of its arrival second; a redelivered copy is the same
text filed again, so redeliveries are byte-identical by construction.

``event_id`` is ``te-N`` / ``ie-N``, N counting every event of the run in generation
order.
"""

from __future__ import annotations

import heapq
from typing import Final

from streams.simulator.disorder import UNIT_EXPONENTIAL, Disorder
from streams.simulator.encode import MAX_CLOCK_SKEW_MS
from streams.simulator.ordering import ArrivalBuffer
from streams.simulator.timefmt import SECOND_PREFIXES, THREE_DIGITS, second_prefix
from streams.simulator.transaction import APPROVED_AUTHORIZATION, APPROVED_OUTCOME, Txn

_US_PER_MS: Final = 1_000
_US_PER_SECOND: Final = 1_000_000
# A delay is one draw of this many random bits, indexing a table of quantiles.
_EXP_BITS: Final = len(UNIT_EXPONENTIAL).bit_length() - 1


class Emitter:
    """Turns transactions into framed, scheduled capture lines."""

    def __init__(self, disorder: Disorder, buffer: ArrivalBuffer, id_tag: str = "") -> None:
        self._disorder = disorder
        self._buffer = buffer
        self.count = 0  # events rendered (the last event_id number)
        # "te-N" / "ie-N"; a shard of a parallel run tags its ids ("te1-N") to keep them
        # unique across shards.
        self._terminal_id = f"te{id_tag}-"
        self._issuer_id = f"ie{id_tag}-"
        # Delays in whole microseconds by quantile: one draw of random bits and an index.
        self._terminal_delays = tuple(
            disorder.terminal_floor_us + int(disorder.terminal_mean_us * unit)
            for unit in UNIT_EXPONENTIAL
        )
        self._issuer_delays = tuple(
            disorder.issuer_floor_us + int(disorder.issuer_mean_us * unit)
            for unit in UNIT_EXPONENTIAL
        )

    def emit(self, tx: Txn) -> None:
        """Render, schedule and buffer every event of ``tx`` (and redelivered copies)."""
        disorder = self._disorder
        buffer = self._buffer
        buffer.check_not_before_emitted(tx.t0)
        buckets = buffer.buckets
        heap = buffer.heap
        random_ = disorder.random
        index_bits = disorder.getrandbits
        burst_us = disorder.burst_us
        terminal_delays = self._terminal_delays
        issuer_delays = self._issuer_delays
        issuer_shift_us = tx.issuer_shift_ms * _US_PER_MS
        bursts = disorder.burst_lags
        burst_base = disorder.burst_base_minute
        unusual = disorder.late_tail + disorder.redelivery
        seconds = SECOND_PREFIXES
        three = THREE_DIGITS
        terminal_middle, issuer_middle, suffix, terminal_shift, earliest_local = _heads(tx)
        tail = f'{tx.terminal.tail_prefix}{tx.card.card_token}"'
        count = self.count
        terminal_id, issuer_id = self._terminal_id, self._issuer_id
        for at, by_terminal, kind, amount, _, extra in tx.events:
            count += 1
            if by_terminal:
                local = at + terminal_shift
                if local < earliest_local:
                    local = earliest_local
                second = local // 1000
                stamp = seconds.get(second) or second_prefix(second)
                item = (
                    at * _US_PER_MS + terminal_delays[index_bits(_EXP_BITS)],
                    "terminal",
                    (
                        f'{{"source":"terminal","event":{{"event_id":"{terminal_id}{count}",'
                        f'"type":"{kind}{terminal_middle}{stamp}{three[local % 1000]}'
                        f'{suffix}","amount_minor":{amount}{tail}{extra}}}}}\n'
                    ),
                )
            else:
                second = at // 1000
                stamp = seconds.get(second) or second_prefix(second)
                arrival = at * _US_PER_MS + issuer_shift_us + issuer_delays[index_bits(_EXP_BITS)]
                try:
                    arrival += bursts[at // 60_000 - burst_base]
                except IndexError:  # a minute not drawn yet
                    arrival += burst_us(at)
                item = (
                    arrival,
                    "issuer",
                    (
                        f'{{"source":"issuer","event":{{"event_id":"{issuer_id}{count}",'
                        f'"type":"{kind}{issuer_middle}{stamp}{three[at % 1000]}'
                        f'Z","amount_minor":{amount}{tail}{extra}}}}}\n'
                    ),
                )
            draw = random_()
            if draw < unusual:
                disorder.deliver_unusual(draw, item, buffer)
                continue
            # ArrivalBuffer.push_many, inlined: this loop runs for every event of a story.
            second = item[0] // _US_PER_SECOND
            bucket = buckets.get(second)
            if bucket is None:
                buckets[second] = [item]
                heapq.heappush(heap, second)
            else:
                bucket.append(item)
        self.count = count

    def emit_sale(self, tx: Txn, answered: int, posted: int, shown: int) -> None:
        """:meth:`emit` for a matched single-message sale, without its event list.

        Two sales in three are this one: request, approved authorization, debit,
        approved outcome. Written out event by event, it renders and schedules exactly
        what :meth:`emit` does for the events ``scenarios.sale_events`` builds (the same
        draws in the same order, the same text: a test compares the two paths byte for
        byte), with far less interpreter work. The rare redelivery and late-tail draws
        come from their own generator, so filing those events after the main draws
        changes nothing.
        """
        disorder = self._disorder
        buffer = self._buffer
        t0 = tx.t0
        buffer.check_not_before_emitted(t0)
        random_ = disorder.random
        index_bits = disorder.getrandbits
        terminal_delays = self._terminal_delays
        issuer_delays = self._issuer_delays
        bursts = disorder.burst_lags
        burst_base = disorder.burst_base_minute
        seconds = SECOND_PREFIXES
        three = THREE_DIGITS
        terminal = tx.terminal
        terminal_middle, issuer_middle, suffix, terminal_shift, earliest_local = _heads(tx)
        money = f'","amount_minor":{tx.amount}{terminal.tail_prefix}{tx.card.card_token}"'
        refs = tx.refs
        count = self.count
        terminal_id, issuer_id = self._terminal_id, self._issuer_id
        # The request and the outcome, on the terminal's clock.
        request_local = t0 + terminal_shift
        if request_local < earliest_local:
            request_local = earliest_local
        outcome_local = shown + terminal_shift
        if outcome_local < earliest_local:
            outcome_local = earliest_local
        request_stamp = seconds.get(request_local // 1000) or second_prefix(request_local // 1000)
        outcome_stamp = seconds.get(outcome_local // 1000) or second_prefix(outcome_local // 1000)
        # The authorization and the debit, on the issuer's clock, with the feed's bursts.
        answered_stamp = seconds.get(answered // 1000) or second_prefix(answered // 1000)
        posted_stamp = seconds.get(posted // 1000) or second_prefix(posted // 1000)
        try:
            answered_burst = bursts[answered // 60_000 - burst_base]
            posted_burst = bursts[posted // 60_000 - burst_base]
        except IndexError:  # a minute not drawn yet
            answered_burst = disorder.burst_us(answered)
            posted_burst = disorder.burst_us(posted)
        # Draws in the generic order: per event its delay, then its redelivery/late draw.
        request_arrival = t0 * _US_PER_MS + terminal_delays[index_bits(_EXP_BITS)]
        request_draw = random_()
        answered_arrival = (
            answered * _US_PER_MS + issuer_delays[index_bits(_EXP_BITS)] + answered_burst
        )
        answered_draw = random_()
        posted_arrival = posted * _US_PER_MS + issuer_delays[index_bits(_EXP_BITS)] + posted_burst
        posted_draw = random_()
        outcome_arrival = shown * _US_PER_MS + terminal_delays[index_bits(_EXP_BITS)]
        outcome_draw = random_()
        items = (
            (
                request_arrival,
                "terminal",
                f'{{"source":"terminal","event":{{"event_id":"{terminal_id}{count + 1}",'
                f'"type":"request'
                f"{terminal_middle}{request_stamp}{three[request_local % 1000]}{suffix}"
                f"{money}}}}}\n",
            ),
            (
                answered_arrival,
                "issuer",
                f'{{"source":"issuer","event":{{"event_id":"{issuer_id}{count + 2}",'
                f'"type":"authorization'
                f"{issuer_middle}{answered_stamp}{three[answered % 1000]}Z"
                f"{money}{refs}{APPROVED_AUTHORIZATION}}}}}\n",
            ),
            (
                posted_arrival,
                "issuer",
                f'{{"source":"issuer","event":{{"event_id":"{issuer_id}{count + 3}","type":"debit'
                f"{issuer_middle}{posted_stamp}{three[posted % 1000]}Z{money}{refs}}}}}\n",
            ),
            (
                outcome_arrival,
                "terminal",
                f'{{"source":"terminal","event":{{"event_id":"{terminal_id}{count + 4}",'
                f'"type":"outcome'
                f"{terminal_middle}{outcome_stamp}{three[outcome_local % 1000]}{suffix}"
                f"{money}{refs}{APPROVED_OUTCOME}}}}}\n",
            ),
        )
        unusual = disorder.late_tail + disorder.redelivery
        if (
            request_draw < unusual
            or answered_draw < unusual
            or posted_draw < unusual
            or outcome_draw < unusual
        ):
            draws = (request_draw, answered_draw, posted_draw, outcome_draw)
            for item, draw in zip(items, draws, strict=True):
                if draw < unusual:
                    disorder.deliver_unusual(draw, item, buffer)
                else:
                    buffer.push_many((item,))
        else:
            buckets = buffer.buckets
            for item in items:
                second = item[0] // _US_PER_SECOND
                bucket = buckets.get(second)
                if bucket is None:
                    buckets[second] = [item]
                    heapq.heappush(buffer.heap, second)
                else:
                    bucket.append(item)
        self.count = count + 4


def _heads(tx: Txn) -> tuple[str, str, str, int, int]:
    """The per-transaction parts of its events' text, and the terminal's clock shift.

    In CONTRACT §1 field order: both sides' ``transmitted_at`` name the same second; the
    terminal writes its local offset (with ms on some terminals), the issuer side UTC
    to the second. Returns ``(terminal_middle, issuer_middle, offset_suffix,
    terminal_shift_ms, earliest_local_ms)``: the terminal's clock runs ``skew`` ms off, in
    local time, never so slow that the host's ``transmitted_at`` lands more than 120 s
    after ``occurred_at`` (CONTRACT §5).
    """
    terminal = tx.terminal
    t0 = tx.t0
    seconds = SECOND_PREFIXES
    suffix = terminal.merchant.offset_text
    offset_ms = terminal.offset_ms
    local = t0 + offset_ms
    stamp = seconds.get(local // 1000) or second_prefix(local // 1000)
    if terminal.ms_transmitted:
        terminal_time = f"{stamp}{THREE_DIGITS[local % 1000]}{suffix}"
    else:
        terminal_time = stamp[:-1] + suffix
    utc = seconds.get(t0 // 1000) or second_prefix(t0 // 1000)
    common = f'",{terminal.json_prefix}{tx.stan}","transmitted_at":"'
    return (
        f'{common}{terminal_time}","occurred_at":"',
        f'{common}{utc[:-1]}Z","occurred_at":"',
        suffix,
        terminal.skew_ms + offset_ms,
        t0 - MAX_CLOCK_SKEW_MS + offset_ms,
    )
