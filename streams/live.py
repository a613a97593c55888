"""Live simulated traffic: the generator's events sent to Kafka at the pace they happen.

``debitwatch simulate --to-kafka`` runs the same :class:`Simulation` as the offline
capture, with event time starting at the wall clock's now, and sends each event when
the wall clock reaches ``start + (arrival - start) / speed``. ``speed`` compresses event
time so a demo does not wait for real windows: at 30, a 5-minute match window plus a
minute of grace closes 12 s of wall time after the sale.

Two things differ from a recorded capture, on purpose:

* **the long tail is cut short.** A few events arrive hours late (a lagging issuer
  feed, a late redelivery). Any arrival later than ``max_lateness`` seconds of event
  time after the planned end of traffic is sent at that point instead, still after
  everything else and long after its window closed, so it stays a late event; the
  verdicts and the ground truth do not depend on *how* late it is (CONTRACT §4).
* **the final watermarks go to every partition.** When the traffic ends, or on Ctrl-C
  or SIGTERM, a far-future watermark is sent to every partition of both input topics
  (a worker only counts a watermark seen on all of them), so every open window closes
  and every verdict is published.

The ground truth is written only when the run completed: after an interrupt some
sales have events still unsent, and a truth for them would be wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import BinaryIO, Final, TextIO

from models.truth import TruthRecord
from streams.produce import Sender
from streams.settings import Settings
from streams.simulator.encode import capture_line, final_watermark
from streams.simulator.generator import Simulation, SimulationConfig

SOURCES: Final = ("terminal", "issuer")
_US: Final = 1_000_000


@dataclasses.dataclass(frozen=True)
class Pace:
    """How fast to send. ``speed``: event-time seconds per wall-clock second;
    ``max_lateness``: event-time seconds after the planned end beyond which late
    arrivals are sent at once; ``progress_every``: wall-clock seconds between lines."""

    speed: float = 1.0
    max_lateness: float = 900.0
    progress_every: float = 5.0
    final_watermark: bool = True

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError("--speed must be > 0")
        if not self.max_lateness >= 0:
            raise ValueError("--max-lateness must be >= 0")


@dataclasses.dataclass
class LiveSummary:
    """What a live run sent. ``truth`` is None when the run was interrupted."""

    events: Counter[str] = dataclasses.field(default_factory=Counter)
    watermark_messages: int = 0
    transactions: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    truth: list[TruthRecord] | None = None


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM behave like Ctrl-C while the block runs (main thread only), so that
    ``kill`` and container stops also send the final watermarks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def now_ms() -> int:
    """The wall clock in integer milliseconds: where a live run's event time starts."""
    return time.time_ns() // 1_000_000


class _Progress:
    """One line every few seconds on stderr: how far the run is and whether it keeps up.

    The event time shown is the wall clock's projection (start + elapsed x speed): the
    time the traffic has reached, whatever the late events being sent carry.
    """

    def __init__(
        self, out: TextIO | None, pace: Pace, start_us: int, clock: Callable[[], float]
    ) -> None:
        self._out, self._pace, self._start_us, self._clock = out, pace, start_us, clock
        self._started = clock()
        self._next = self._started + pace.progress_every

    def due(self) -> bool:
        return self._out is not None and self._clock() >= self._next

    def show(self, summary: LiveSummary, behind: float) -> None:
        if self._out is None:
            return
        now = self._clock()
        self._next = now + self._pace.progress_every
        elapsed = now - self._started
        event_us = self._start_us + elapsed * self._pace.speed * _US
        event_time = datetime.fromtimestamp(event_us / _US, UTC).strftime("%H:%M:%S")
        sent = sum(summary.events.values())
        lag = f", {behind:.1f} s behind" if behind > 1.0 else ""
        print(
            f"live: {elapsed:5.0f} s, event time {event_time}Z, "
            f"{summary.transactions} transactions, {sent} events sent{lag}",
            file=self._out,
            flush=True,
        )


def run_live(
    settings: Settings,
    config: SimulationConfig,
    pace: Pace,
    *,
    capture_out: BinaryIO | None = None,
    progress: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LiveSummary:
    """Send ``config``'s simulation to the input topics, paced by ``clock``.

    ``config.start_ms`` is event time at the moment this is called. ``capture_out``
    also receives every event sent, as a capture (for an offline replay of the same
    traffic). Ctrl-C (KeyboardInterrupt) ends the run early, cleanly. Raises
    BrokerError if the broker is unreachable or a topic is missing.
    """
    summary = LiveSummary()
    sender = Sender(settings, [settings.source_topic(source) for source in SOURCES])
    try:
        # The simulation's own final watermarks would reach one partition each: useless.
        simulation = Simulation(dataclasses.replace(config, final_watermarks=False))
        start_us = config.start_ms * 1000
        planned_end_us = start_us + round(config.transactions / config.rate * _US)
        latest_us = planned_end_us + round(pace.max_lateness * _US)
        wall_start = clock()
        shown = _Progress(progress, pace, start_us, clock)
        try:
            for arrival_us, source, data in simulation:
                due = wall_start + (min(arrival_us, latest_us) - start_us) / _US / pace.speed
                while (wait := due - clock()) > 0:
                    if shown.due():
                        shown.show(summary, 0.0)
                    sleep(min(wait, pace.progress_every))
                sender.send_event(settings.source_topic(source), data)
                summary.events[source] += 1
                summary.transactions = simulation.stats.transactions
                if capture_out is not None:
                    capture_out.write(capture_line(source, data))
                if shown.due():
                    shown.show(summary, clock() - due)
        except KeyboardInterrupt:
            summary.interrupted = True
        else:
            summary.truth = simulation.truth
            summary.transactions = simulation.stats.transactions
        if pace.final_watermark:
            for source in SOURCES:
                mark = final_watermark(source)
                summary.watermark_messages += sender.send_watermark(
                    settings.source_topic(source), mark
                )
                if capture_out is not None:
                    capture_out.write(capture_line(source, mark))
        sender.close()
    except BaseException:
        sender.abort()
        raise
    summary.seconds = clock() - wall_start
    return summary
