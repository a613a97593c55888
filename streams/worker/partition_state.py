"""One partition of the join: the core, its durable state, and crash-proof alert output.

Pure (no Kafka, no Faust), so every rule here is tested without a broker
(``tests/streams/test_partition_state.py``); :mod:`streams.worker.app` moves bytes
between it and Kafka.

What is durable, and why it is enough (docs/streaming.md has the worked example):

* every transaction's :meth:`~models.transaction.Txn.to_bytes`, written once per batch
  for the keys the batch changed (a tombstone for expired ones), and
* a :class:`Checkpoint`, written last in the batch: the two progresses and their
  lanes (per input partition, :class:`~models.stream_time.Progress`), the latest
  watermark of every input partition, and ``alerts_offset``, the next offset of this
  partition in the alerts topic once the batch's alerts were acknowledged.

After a crash, the worker restores both (Faust replays the changelog) and re-reads the
input from the last committed offset. Re-read events change nothing that the restored
state already holds (the core de-duplicates by ``event_id``); the rest is replayed and
republishes the same alert state changes. Those that did reach the alerts topic before
the crash are in the alerts partition after ``alerts_offset``: the worker reads them back
(``published``) and this class drops each regenerated (alert_id, status) once per copy
found there. A consumer of ``debitwatch.alerts`` therefore sees each state change once,
with ``at_least_once`` processing.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Final

import msgspec

from models.alerts import Alert, alert_id
from models.capture import LINE_PREFIX, event_bytes, feed_lines
from models.config import DetectionConfig
from models.dead_letter import DeadLetter, dead_letter
from models.deadlines import DeadlineConfig
from models.events import Source
from models.exposure import Exposure
from models.incidents import (
    EPISODE_PREFIX,
    SLOTS_PREFIX,
    IncidentConfig,
    IncidentScorer,
    IncidentTracker,
)
from models.incidents import FIRING as INCIDENT_FIRING
from models.instants import format_micros
from models.reconciler import Reconciler
from models.stream_time import NEVER, IdleAdvance, Lane, Progress
from models.transaction import FIRING, OVERDUE, Txn, split_key
from models.validation import Reason
from streams.worker.wire import (
    TickControl,
    WatermarkControl,
    decode_control,
    decode_origin,
    is_control,
    origin_lane,
)

_TERMINAL_PREFIX: Final = LINE_PREFIX["terminal"]
SOURCES: Final[tuple[Source, Source]] = ("terminal", "issuer")
# The incident tracker's states (models/incidents.py) are stored beside the
# transactions, under these prefixes: in the same changelog partition, written in the
# same batch as the transactions whose events they counted.
INCIDENT_PREFIXES: Final = (SLOTS_PREFIX, EPISODE_PREFIX)


class Checkpoint(msgspec.Struct, array_like=True):
    """The partition-wide part of the state (the transactions are stored one by one)."""

    terminal: int
    issuer: int
    # Per input partition, its latest watermark (they count once all partitions of the
    # topic have sent one).
    watermarks: dict[Source, dict[int, int]]
    alerts_offset: int
    lanes: dict[Source, dict[int, int]] = {}

    def encode(self) -> bytes:
        return _CHECKPOINT_ENCODER.encode(self)

    @classmethod
    def decode(cls, blob: bytes) -> Checkpoint:
        checkpoint: Checkpoint = _CHECKPOINT_DECODER.decode(blob)
        return checkpoint


_CHECKPOINT_ENCODER: Final = msgspec.json.Encoder()
_CHECKPOINT_DECODER: Final = msgspec.json.Decoder(Checkpoint)

# (alert_id, status, deadline_passed): an escalation past the regulatory deadline is a
# state change of its own (firing again, overdue), published once like the others.
AlertKey = tuple[str, str, bool]


class Incoming(msgspec.Struct, array_like=True, gc=False):
    """One message of the re-keyed topic: its value and its origin header."""

    value: bytes
    origin: bytes | None = None


class PartitionState:
    """The core of one join partition, restored from its durable state."""

    def __init__(
        self,
        partition: int,
        config: DetectionConfig,
        *,
        txns: Iterable[tuple[str, bytes]] = (),
        checkpoint: Checkpoint | None = None,
        published: Sequence[PublishedAlert] = (),
        wall_us: int = 0,
        incidents: IncidentScorer | None = None,
        incident_config: IncidentConfig | None = None,
        deadlines: DeadlineConfig | None = None,
    ) -> None:
        self.partition = partition
        self.unreadable_states = 0
        tracker = None if incidents is None else IncidentTracker(incidents, incident_config)
        store: dict[str, Txn] = {}
        for key, blob in txns:
            try:
                if key.startswith(INCIDENT_PREFIXES):
                    if tracker is not None:
                        tracker.load(key, blob)
                else:
                    store[key] = Txn.from_bytes(blob)
            except ValueError:
                # Not ours to judge (a past version, a stray producer): counted, skipped.
                self.unreadable_states += 1
        saved = checkpoint or Checkpoint(NEVER, NEVER, {}, 0)
        self.alerts_offset = saved.alerts_offset
        self._watermarks: dict[Source, dict[int, int]] = {
            source: dict(saved.watermarks.get(source, {})) for source in SOURCES
        }
        self.suppressed = 0
        self._skew = timedelta(seconds=config.max_clock_skew)
        # A checkpoint from before lanes has none: each input partition becomes a lane
        # again when next heard from, and the source waits for the ones behind it.
        progress = Progress(
            saved.terminal,
            saved.issuer,
            {source: dict(saved.lanes.get(source, {})) for source in SOURCES},
        )
        if tracker is not None:
            tracker.resume(progress.stream_time)
        self.reconciler = Reconciler(
            config,
            store=store,
            progress=progress,
            touched=set(),
            incidents=tracker,
            deadlines=deadlines,
        )
        # The money at risk of the alerts firing now (the metrics' gauge).
        self.exposure = Exposure.of_states(store.values())
        self._reported = (0, 0)  # late and duplicate events already counted in metrics
        self._published = self._not_yet_in_state(published)
        self._idle = IdleAdvance(config.idle_advance)
        progress = self.reconciler.progress
        for source in SOURCES:
            # A checkpoint from before lanes: the source's progress, as its lane 0.
            lanes = progress.lanes[source] or {0: progress.of(source)}
            for lane, at in lanes.items():
                if at != NEVER:
                    # A restarted worker counts silence from its own start.
                    self._idle.heard(source, progress, wall_us, lane)

    # ---------------------------------------------------------------- input

    def feed(self, messages: Sequence[Incoming], wall_us: int) -> list[DeadLetter]:
        """Apply a batch of re-keyed messages in order; the refused ones, as DLQ records."""
        dead: list[DeadLetter] = []
        heard: set[Lane] = set()
        run: list[Incoming] = []
        run_lanes: list[int] = []
        progress = self.reconciler.progress
        for message in messages:
            if not is_control(message.value):
                source: Source = (
                    "terminal" if message.value.startswith(_TERMINAL_PREFIX) else "issuer"
                )
                lane = origin_lane(message.origin)
                run.append(message)
                run_lanes.append(lane)
                heard.add((source, lane))
                continue
            self._feed_run(run, run_lanes, dead)
            run, run_lanes = [], []
            try:
                control = decode_control(message.value)
            except msgspec.DecodeError as error:
                dead.append(
                    dead_letter(Reason.INVALID_VALUE, f"bad control: {error}", message.value)
                )
                continue
            if isinstance(control, WatermarkControl):
                heard.update((control.source, lane) for lane in self._watermark(control))
            elif isinstance(control, TickControl):
                self.reconciler.advance(control.source, control.at_us, control.input_partition)
        self._feed_run(run, run_lanes, dead)
        for source, lane in heard:
            self._idle.heard(source, progress, wall_us, lane)
        return dead

    def _feed_run(self, run: list[Incoming], lanes: list[int], dead: list[DeadLetter]) -> None:
        if not run:
            return
        lines = [message.value for message in run]
        for problem in feed_lines(self.reconciler, lines, self._skew, lanes):
            message = run[problem.position]
            topic, partition, offset = decode_origin(message.origin)
            dead.append(
                dead_letter(
                    problem.rejection.reason,
                    problem.rejection.detail,
                    event_bytes(message.value),
                    source=problem.source,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    event_id=problem.event_id,
                )
            )

    def _watermark(self, control: WatermarkControl) -> list[int]:
        """A source's watermarks count once every one of its input partitions sent one;
        from then on each moves the lane of its partition (the source moves with its
        smallest lane).

        Returns the lanes it moved: only those are "heard" for idle advance (a watermark
        held back by a silent partition must not keep resetting the idle clock of a
        feed that otherwise says nothing).
        """
        seen = self._watermarks[control.source]
        if control.at_us > seen.get(control.input_partition, NEVER):
            seen[control.input_partition] = control.at_us
        self.reconciler.stats.watermarks += 1
        wanted = range(control.input_partitions)
        if not all(p in seen for p in wanted):
            return []
        lanes = self.reconciler.progress.lanes[control.source]
        moved: list[int] = []
        for lane in wanted:
            if seen[lane] > lanes.get(lane, NEVER):
                moved.append(lane)
                self.reconciler.advance(control.source, seen[lane], lane)
        return moved

    def due_ticks(self, wall_us: int) -> list[TickControl]:
        """Idle advances due now (CONTRACT §3), to be sent through the re-keyed topic.

        Only when they would make stream time pass a scheduled window close or expiry:
        a tick that closes nothing changes no verdict, and a partition whose windows are
        all closed (after a final far-future watermark, say) stays silent instead of
        writing a tick a second forever.
        """
        progress = self.reconciler.progress
        due = self._idle.due(progress, wall_us)
        next_due = self.reconciler.next_due()
        if not due or next_due is None:
            return []
        if progress.stream_time_after(due) <= next_due:
            return []
        return [
            TickControl(source=source, at_us=at, input_partition=lane) for source, lane, at in due
        ]

    def _not_yet_in_state(
        self, published: Sequence[PublishedAlert]
    ) -> collections.Counter[AlertKey]:
        """Of the records published after the checkpoint, those the restored state does
        not record yet: the ones replaying the input will publish again.

        A transaction's state records, per kind, the last published status and the
        detection time of its episode, which every record of the episode carries as
        ``detected_at``. Records up to the one matching that mark are already reflected
        (their transaction's state was written after them, before the crash); counting
        them would silently drop a later, legitimate change of the same alert.
        """
        marks: dict[str, tuple[str, str, bool]] = {}
        tracker = self.reconciler.incidents
        for episode in tracker.episodes.values() if tracker is not None else ():
            if episode.status == INCIDENT_FIRING:
                marks[episode.alert] = ("firing", format_micros(episode.detected_us), False)
        for txn in self.reconciler.store.values():
            if not txn.alerts:
                continue
            terminal_id, stan, second = split_key(txn.key)
            for kind, (status, detected_us) in txn.alerts.items():
                word = "firing" if status in (FIRING, OVERDUE) else "resolved"
                marks[alert_id(terminal_id, stan, second, kind)] = (
                    word,
                    format_micros(detected_us),
                    status == OVERDUE,
                )
        by_alert: dict[str, list[PublishedAlert]] = {}
        for record in published:
            by_alert.setdefault(record.alert_id, []).append(record)
        pending: collections.Counter[AlertKey] = collections.Counter()
        for alert, records in by_alert.items():
            mark = marks.get(alert)
            start = 0
            for index, record in enumerate(records):
                if (record.status, record.detected_at, record.deadline_passed) == mark:
                    start = index + 1
            for record in records[start:]:
                pending[(alert, record.status, record.deadline_passed)] += 1
        return pending

    # --------------------------------------------------------------- output

    def take_alerts(self) -> list[Alert]:
        """Alert state changes to publish: the core's, minus those already published."""
        alerts = self.reconciler.take_alerts()
        self.exposure.apply(alerts)
        published = self._published
        if not published:
            return alerts
        fresh: list[Alert] = []
        for alert in alerts:
            key = (alert.alert_id, str(alert.status), alert.deadline_passed)
            if published[key] > 0:
                published[key] -= 1
                if published[key] == 0:
                    del published[key]
                self.suppressed += 1
            else:
                fresh.append(alert)
        return fresh

    def take_writes(self) -> list[tuple[str, bytes | None]]:
        """The state of every key the core changed since the last call (None: deleted)."""
        touched = self.reconciler.touched or set()
        self.reconciler.touched = set()
        store = self.reconciler.store
        writes: list[tuple[str, bytes | None]] = []
        for key in touched:
            txn = store.get(key)
            if txn is None:
                self.exposure.forget(key)
            writes.append((key, None if txn is None else txn.to_bytes()))
        tracker = self.reconciler.incidents
        if tracker is not None:
            writes.extend(tracker.take_touched())
        return writes

    def counts_since_last(self) -> tuple[int, int]:
        """Late and duplicate events since the last call (what the metrics add)."""
        stats = self.reconciler.stats
        late, duplicates = self._reported
        self._reported = (stats.late, stats.duplicates)
        return stats.late - late, stats.duplicates - duplicates

    def incidents_firing(self) -> dict[str, int]:
        """Firing incidents by scope (terminal, merchant)."""
        tracker = self.reconciler.incidents
        counts: dict[str, int] = {}
        for episode in tracker.episodes.values() if tracker is not None else ():
            if episode.status == INCIDENT_FIRING:
                counts[episode.scope] = counts.get(episode.scope, 0) + 1
        return counts

    def checkpoint(self) -> Checkpoint:
        progress = self.reconciler.progress
        return Checkpoint(
            progress.terminal,
            progress.issuer,
            {source: dict(seen) for source, seen in self._watermarks.items()},
            self.alerts_offset,
            {source: dict(lanes) for source, lanes in progress.lanes.items()},
        )


class PublishedAlert(msgspec.Struct):
    """What the de-duplication needs of an alert record read back from the topic."""

    alert_id: str
    status: str
    detected_at: str
    deadline_passed: bool = False


_PUBLISHED: Final = msgspec.json.Decoder(PublishedAlert)


def published_since(values: Iterable[bytes | None]) -> list[PublishedAlert]:
    """Alert records read back from the alerts topic, in order; unreadable ones skipped."""
    records: list[PublishedAlert] = []
    for value in values:
        if value is None:
            continue
        try:
            records.append(_PUBLISHED.decode(value))
        except msgspec.DecodeError:
            continue
    return records
