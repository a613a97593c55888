"""The capture is valid contract input: every line decodes, in arrival order, no PANs,
unique keys, identical redeliveries, final watermarks; and runs are deterministic."""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict

import pytest

from models.events import TransactionEvent, Watermark
from streams.simulator import Simulation, SimulationConfig, resolve, write_capture
from streams.simulator.writer import write_lines
from tests.simulator.helpers import decoded, key_of, run

PROFILES = ["normal", "default", "storm"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_line_decodes_without_rejection(profile):
    lines = run(profile).lines
    events = list(decoded(lines))
    assert len(events) == len(lines)
    assert sum(isinstance(item.event, TransactionEvent) for item in events) > 8_000


@pytest.mark.parametrize("profile", PROFILES)
def test_same_seed_gives_identical_bytes(profile):
    first = run(profile, seed=7)
    again = run.__wrapped__(profile, seed=7)  # not the cached object: a second run
    assert first.capture == again.capture
    assert first.truth_bytes == again.truth_bytes


def test_different_seed_gives_different_bytes():
    assert run(seed=1).capture != run(seed=2).capture
    assert run(seed=1).truth_bytes != run(seed=2).truth_bytes


@pytest.mark.parametrize(
    ("profile", "sets"),
    [
        ("normal", ()),
        ("default", ()),
        ("storm", ()),
        # Redeliveries, late tails and feed bursts everywhere: the fast path's rare branches.
        (
            "default",
            ("redelivery=0.3", "late_tail=0.05", "issuer_burst_share=0.5", "late_feed=0.1"),
        ),
    ],
)
def test_fast_path_writes_the_same_bytes_as_the_judged_generic_path(profile, sets):
    """verify_all judges every sale and emits through the generic path; the default run
    emits plain matched sales through Emitter.emit_sale. Same draws, same bytes."""
    generic = run(profile, sets=sets, transactions=3_000, verify_all=True)
    fast = run(profile, sets=sets, transactions=3_000, verify_all=False)
    assert fast.capture == generic.capture
    assert fast.truth_bytes == generic.truth_bytes
    assert fast.stats == generic.stats


@pytest.mark.parametrize("profile", PROFILES)
def test_arrival_order_is_non_decreasing(profile):
    config = SimulationConfig(profile=resolve(profile), transactions=1_500, seed=3)
    previous = -1
    count = 0
    for arrival_us, source, event_json in Simulation(config):
        assert arrival_us >= previous
        assert source in ("terminal", "issuer")
        assert event_json.startswith(b"{") and event_json.endswith(b"}")
        previous = arrival_us
        count += 1
    assert count > 6_000


@pytest.mark.parametrize("profile", ["default", "storm"])
def test_redeliveries_are_byte_identical_lines(profile):
    result = run(profile)
    lines_by_id: dict[bytes, set[bytes]] = defaultdict(set)
    copies: Counter[bytes] = Counter()
    for line in result.lines:
        found = re.search(rb'"event_id":"([^"]+)"', line)
        assert found
        event_id = found.group(1)
        lines_by_id[event_id].add(line)
        copies[event_id] += 1
    assert all(len(variants) == 1 for variants in lines_by_id.values())
    redelivered = sum(count - 1 for count in copies.values())
    assert redelivered == result.stats.redelivered > 0


def test_no_two_transactions_share_a_key():
    """Each key has exactly one (deduplicated) terminal request: one transaction."""
    # A small fleet at a high rate makes terminals busy and STANs wrap and reset.
    lines = run(
        transactions=4_000,
        terminals=3,
        merchants=2,
        rate=50.0,
        start="2026-11-26T23:59:00Z",
        sets=("stan_near_wrap_share=0.5", "stan_reset_share=0.5"),
    ).lines
    requests: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    keys = set()
    for item in decoded(lines):
        if isinstance(item.event, TransactionEvent):
            keys.add(key_of(item.event))
            if item.source == "terminal" and item.event.step().name == "REQUEST":
                requests[key_of(item.event)].add(item.event.event_id)
    assert keys == set(requests)
    assert all(len(ids) == 1 for ids in requests.values())


def test_no_identifier_has_a_long_digit_run():
    """CONTRACT §6: a 13+ digit run could be a PAN. Timestamps are split by separators."""
    assert not re.search(rb"[0-9]{13}", run("storm").capture)


@pytest.mark.parametrize("final_watermarks", [True, False])
def test_capture_ends_with_far_future_watermarks(final_watermarks):
    lines = run(final_watermarks=final_watermarks).lines
    tail = list(decoded(lines[-2:]))
    watermarks = [item for item in tail if isinstance(item.event, Watermark)]
    if not final_watermarks:
        assert not any(isinstance(i.event, Watermark) for i in decoded(lines))
        return
    assert [(w.source, w.event.event_id) for w in watermarks] == [
        ("terminal", "wm-final-terminal"),
        ("issuer", "wm-final-issuer"),
    ]
    assert all(w.event.occurred_at.year == 9999 for w in watermarks)


def test_both_sides_spell_transmitted_at_differently_but_agree():
    offsets: Counter[bytes] = Counter()
    with_ms = 0
    for item in decoded(run().lines[:3_000]):
        if isinstance(item.event, TransactionEvent):
            found = re.search(rb'"transmitted_at":"([^"]+)"', item.raw)
            assert found
            text = found.group(1)
            if item.source == "issuer":
                assert text.endswith(b"Z") and b"." not in text
            else:
                offsets[text[-6:]] += 1
                with_ms += b"." in text
    assert len(offsets) >= 4  # +08:00, +05:30, +01:00, -05:00 ...
    assert with_ms > 0


def test_terminal_clock_skew_never_breaks_the_transmitted_at_rule():
    """Skew down to -120 s: transmitted_at is never > 120 s after occurred_at (§5)."""
    lines = run(sets=("max_clock_skew_s=120",), terminals=400).lines
    worst = max(
        (item.event.transmitted_at - item.event.occurred_at).total_seconds()
        for item in decoded(lines)
        if isinstance(item.event, TransactionEvent)
    )
    assert 100 < worst <= 120


def test_event_stream_and_line_batches_describe_the_same_capture():
    """The Kafka-style stream (arrival, source, event_json) frames into the file's bytes."""
    config = SimulationConfig(profile=resolve("storm"), transactions=1_000, seed=4)
    framed = io.BytesIO()
    write_capture(Simulation(config), framed)
    lines = io.BytesIO()
    write_lines(Simulation(config).lines(), lines)
    assert framed.getvalue() == lines.getvalue()
