"""The undelivered alert states of one worker: what the ``webhooks`` table holds (pure).

One record per (endpoint, alert) with undelivered states, in the changelogged table,
keyed ``q<US><endpoint><US><alert_id>``: an :class:`AlertQueue`, the FIFO of that alert's
states not yet delivered to that endpoint, in the order the alerts topic published
them. Only the head is ever attempted, so a ``resolved`` never overtakes its
``firing``; the record is rewritten after every change and deleted when it empties.

Beside the queues, per join partition ``p``:

* ``~offset<US><p>``: the next alerts-topic offset to enqueue. Sent once Kafka has
  acknowledged the queue records of a batch, in the same changelog partition, so a
  worker that restarts from an older committed offset skips alert states it had
  enqueued already (and perhaps delivered), and never skips one whose queue record the
  changelog lacks. A state is attempted only once the checkpoint past it is
  acknowledged (:meth:`DeliveryBook.due`): otherwise a worker killed after a 2xx but
  before that checkpoint would enqueue the state again on restart and deliver it a
  second time. A receiver sees a redelivery only when it never acknowledged the state.
* ``~disabled<US><endpoint><US><p>``: the endpoint answered 410 Gone (docs/webhooks.md).

:class:`DeliveryBook` is the in-memory view of the partitions a worker owns: due
queues by time (a heap), the in-flight set, per-endpoint concurrency.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Final

import msgspec

US: Final = "\x1f"  # ASCII unit separator: in no endpoint name and no alert id
QUEUE_PREFIX: Final = b"q" + US.encode()
OFFSET_PREFIX: Final = b"~offset" + US.encode()
DISABLED_PREFIX: Final = b"~disabled" + US.encode()

QueueKey = tuple[str, str]  # (endpoint name, alert_id)


class PendingState(msgspec.Struct, kw_only=True):
    """One alert state not yet delivered to one endpoint.

    ``alert``: the alerts-topic record as published (the payload is made from it at
    each attempt). Times are Unix seconds (wall clock). ``attempts`` counts HTTP
    attempts made; ``first_attempt`` starts the retry horizon (``max_age``).
    """

    webhook_id: str
    status: str
    deadline_passed: bool
    alert: bytes
    offset: int
    enqueued_at: float
    attempts: int = 0
    first_attempt: float | None = None
    last_attempt: float | None = None
    next_attempt: float = 0.0
    last_error: str | None = None


class AlertQueue(msgspec.Struct, kw_only=True):
    """The undelivered states of one alert for one endpoint, oldest first."""

    endpoint: str
    alert_id: str
    partition: int
    states: list[PendingState]

    @property
    def key(self) -> QueueKey:
        return (self.endpoint, self.alert_id)


class DisabledMark(msgspec.Struct, kw_only=True):
    """An endpoint disabled by a 410: bound to the config it was disabled under."""

    endpoint: str
    partition: int
    fingerprint: str
    since: float
    error: str


_ENCODER: Final = msgspec.msgpack.Encoder()
_QUEUE: Final = msgspec.msgpack.Decoder(AlertQueue)
_MARK: Final = msgspec.msgpack.Decoder(DisabledMark)


def queue_key(endpoint: str, alert_id: str) -> bytes:
    return QUEUE_PREFIX + f"{endpoint}{US}{alert_id}".encode()


def offset_key(partition: int) -> bytes:
    return OFFSET_PREFIX + str(partition).encode()


def disabled_key(endpoint: str, partition: int) -> bytes:
    return DISABLED_PREFIX + f"{endpoint}{US}{partition}".encode()


def encode_queue(queue: AlertQueue) -> bytes:
    return _ENCODER.encode(queue)


def queue_record(queue: AlertQueue) -> tuple[bytes, bytes | None]:
    """The table write for ``queue``: its encoding, or a deletion once it is empty."""
    key = queue_key(queue.endpoint, queue.alert_id)
    return (key, encode_queue(queue) if queue.states else None)


def offset_record(partition: int, offset: int) -> tuple[bytes, bytes]:
    return (offset_key(partition), str(offset).encode())


def mark_record(mark: DisabledMark) -> tuple[bytes, bytes]:
    return (disabled_key(mark.endpoint, mark.partition), _ENCODER.encode(mark))


class Stored(msgspec.Struct):
    """What one table record is, once decoded (see :func:`decode_record`)."""

    partition: int
    queue: AlertQueue | None = None
    offset: int | None = None
    mark: DisabledMark | None = None


def decode_record(key: bytes, value: bytes) -> Stored | None:
    """A table record, or None for a key of no known shape (skipped, never fatal)."""
    try:
        if key.startswith(QUEUE_PREFIX):
            queue = _QUEUE.decode(value)
            return Stored(queue.partition, queue=queue)
        if key.startswith(OFFSET_PREFIX):
            return Stored(int(key[len(OFFSET_PREFIX) :]), offset=int(value))
        if key.startswith(DISABLED_PREFIX):
            mark = _MARK.decode(value)
            return Stored(mark.partition, mark=mark)
    except (msgspec.DecodeError, ValueError):
        return None
    return None


class DeliveryBook:
    """The queues of the partitions this worker owns, and which are due when.

    Not thread-safe and not async: the worker's event loop calls it between awaits.
    """

    def __init__(self) -> None:
        self.queues: dict[QueueKey, AlertQueue] = {}
        # Per partition, the acknowledged ``~offset`` checkpoint: states at or past it
        # are queued but not attempted yet (see the module's docstring).
        self.offsets: dict[int, int] = {}
        self.partitions: set[int] = set()
        self.in_flight: set[QueueKey] = set()
        self.closing: set[int] = set()  # being revoked: no new attempts
        self._heap: list[tuple[float, int, QueueKey]] = []
        self._order = itertools.count()

    # ------------------------------------------------------------------ state

    def add_partition(self, partition: int, queues: Iterable[AlertQueue], offset: int) -> None:
        self.partitions.add(partition)
        self.closing.discard(partition)
        self.offsets[partition] = offset
        for queue in queues:
            if queue.states:
                self.queues[queue.key] = queue
                self._schedule(queue)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.partitions -= gone
        self.closing -= gone
        for partition in gone:
            self.offsets.pop(partition, None)
        for key in [k for k, q in self.queues.items() if q.partition in gone]:
            del self.queues[key]
            self.in_flight.discard(key)
        # Their heap entries are skipped when popped (no queue under the key).

    def enqueue(
        self, partition: int, endpoint: str, alert_id: str, state: PendingState
    ) -> AlertQueue | None:
        """Append ``state`` to its alert's queue; None if that state is queued already."""
        key = (endpoint, alert_id)
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = AlertQueue(
                endpoint=endpoint, alert_id=alert_id, partition=partition, states=[]
            )
        elif any(s.webhook_id == state.webhook_id for s in queue.states):
            return None
        queue.states.append(state)
        if len(queue.states) == 1:
            self._schedule(queue)
        return queue

    def pop_head(self, key: QueueKey) -> PendingState:
        queue = self.queues[key]
        head = queue.states.pop(0)
        if not queue.states:
            del self.queues[key]
        return head

    def pending(self) -> int:
        """Undelivered states (the ``debitwatch_webhook_pending_deliveries`` gauge)."""
        return sum(len(q.states) for q in self.queues.values())

    def of_endpoint(self, endpoint: str) -> list[AlertQueue]:
        return [q for q in self.queues.values() if q.endpoint == endpoint]

    # ------------------------------------------------------------- scheduling

    def due(self, now: float, may_start: Callable[[str], bool]) -> list[QueueKey]:
        """Queues whose head is due at ``now``, marked in flight; oldest due first.

        ``may_start(endpoint)`` is asked before each one and may take one of the
        endpoint's slots (a True means the attempt starts); a due queue it refuses stays
        due for the next call, as does one whose head is not covered by its partition's
        acknowledged checkpoint yet.
        """
        started: list[QueueKey] = []
        deferred: list[tuple[float, int, QueueKey]] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            when, _order, key = entry
            queue = self.queues.get(key)
            if (
                queue is None
                or key in self.in_flight
                or queue.states[0].next_attempt != when
                or queue.partition not in self.partitions
            ):
                continue  # stale: the head changed, or was rescheduled meanwhile
            if (
                queue.partition in self.closing
                or queue.states[0].offset >= self.offsets.get(queue.partition, 0)
                or not may_start(queue.endpoint)
            ):
                deferred.append(entry)
                continue
            self.in_flight.add(key)
            started.append(key)
        for entry in deferred:
            heapq.heappush(self._heap, entry)
        return started

    def finish(self, key: QueueKey) -> None:
        """The attempt on ``key``'s head is over: schedule whatever is now its head."""
        self.in_flight.discard(key)
        queue = self.queues.get(key)
        if queue is not None:
            self._schedule(queue)

    def hurry(self, endpoint: str, now: float) -> None:
        """Make every queue of ``endpoint`` due at ``now`` (its endpoint was disabled:
        their states go to the dead letters without waiting for their retry time).

        In memory only: a restarted worker hurries them again when it loads the mark.
        Queues in flight are left alone: their attempt reschedules them when it ends.
        """
        for queue in self.of_endpoint(endpoint):
            head = queue.states[0]
            if queue.key not in self.in_flight and head.next_attempt > now:
                head.next_attempt = now
                self._schedule(queue)

    def next_due(self) -> float | None:
        """The earliest scheduled time (maybe of a stale entry: waking early is harmless)."""
        return self._heap[0][0] if self._heap else None

    def _schedule(self, queue: AlertQueue) -> None:
        head = queue.states[0]
        heapq.heappush(self._heap, (head.next_attempt, next(self._order), queue.key))
