"""The webhook sink: an agent on the alerts topic, a changelogged retry table, a dispatcher.

::

    debitwatch.alerts ── agent "webhooks" ──> table "webhooks" (changelogged: a FIFO of
      (partition p)        per endpoint whose     undelivered states per endpoint and alert,
                           filters match          the enqueued offset, disabled endpoints)
                                                         │
                           dispatcher task  <────────────┘  due heads, at most `concurrency`
                             │    POST, signed            per endpoint in flight
                             ├──> receiver: 2xx delivered / retry later / 410 disable
                             └──> <app_id>.webhooks.dlq  (after the last retry, a 410)

No alert state is lost: the agent returns a batch (and Faust may commit its offsets)
only once Kafka has acknowledged the batch's queue records and then its ``~offset``
checkpoint; if anything in the batch fails, its events are held (never acknowledged,
so never committed) and the worker stops. A state leaves its queue only once delivered
or dead-lettered (the dead letter acknowledged first), and the agent does nothing but
enqueue: dead letters are the dispatcher's, so a dead-letter topic in trouble cannot
fail a batch of alerts. A restarted or rebalanced worker rebuilds its queues
from the table and carries on where the last owner stopped: same ``webhook-id``, attempt
count and retry horizon. A partition's queues live on the worker that owns partition
``p`` of the alerts topic (the join's partition ``p``: co-partitioned), so no two
workers attempt the same delivery, and a worker losing a partition lets its in-flight
attempts finish and records their outcome before it lets go (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from typing import Any, Final

import faust
import msgspec
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT

from models.final_states import ALERT_DECODER
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.webhooks import payloads
from streams.webhooks.backoff import Decision, decide
from streams.webhooks.config import TABLE, Endpoint, dlq_topic, load_endpoints
from streams.webhooks.dead_letter import dead_letter
from streams.webhooks.ledger import (
    AlertQueue,
    DeliveryBook,
    DisabledMark,
    PendingState,
    QueueKey,
    decode_record,
    disabled_key,
    mark_record,
    offset_record,
    queue_key,
    queue_record,
)
from streams.webhooks.signing import Signer, webhook_id
from streams.webhooks.store import ChangelogWriteError, ChangelogWriter
from streams.webhooks.transport import new_session, post
from streams.worker.stopping import crash_worker

log = logging.getLogger("debitwatch.webhooks")
# The dispatcher's longest sleep when nothing is due: new states wake it at once.
_IDLE_WAIT: Final = 5.0


def install_webhooks(
    app: faust.App, settings: Settings, environ: Mapping[str, str] | None = None
) -> WebhookSink | None:
    """Add the webhook sink to ``app`` if any endpoint is configured (else nothing).

    Raises :class:`models.config.ConfigError` for a bad endpoint: the worker does not
    start with a webhook configuration it would half ignore.
    """
    endpoints = load_endpoints(environ)
    if not endpoints:
        return None
    sink = WebhookSink(app, settings, endpoints, dlq_topic=dlq_topic(settings, environ))
    sink.install()
    app.debitwatch_webhooks = sink  # type: ignore[attr-defined]  # for tests and web views
    log.info(
        "webhooks: %d endpoint(s): %s; dead letters to %s",
        len(endpoints),
        ", ".join(f"{e.name} ({e.format})" for e in endpoints),
        sink.dlq_topic,
    )
    return sink


class WebhookSink:
    """The agent, table, dispatcher and rebalance hooks of the webhook delivery."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        endpoints: list[Endpoint],
        *,
        dlq_topic: str,
        rng: random.Random | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.dlq_topic = dlq_topic
        self._signers = {endpoint.name: Signer(endpoint.secret) for endpoint in endpoints}
        # Jitter needs no cryptographic randomness, only independence between workers.
        self._rng = rng or random.Random()
        self.book = DeliveryBook()
        self.disabled: dict[str, DisabledMark] = {}
        self.table = app.Table(
            TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes
        )
        self.alerts = app.topic(
            settings.alerts_topic,
            partitions=settings.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        self._writer = ChangelogWriter(
            app,
            self.table,
            on_failure=self._fail,
            local=lambda: not app.should_stop,
            owns=lambda partition: partition in self.book.partitions,
        )
        self._running: collections.Counter[str] = collections.Counter()
        self._attempts: dict[QueueKey, asyncio.Task[None]] = {}
        # Internal errors in a row per queue, so their backoff grows even when no HTTP
        # attempt is made (a dead-letter topic failing a disabled endpoint's dead letters).
        self._errors: collections.Counter[QueueKey] = collections.Counter()
        self._wake = asyncio.Event()
        self._loading = asyncio.Lock()
        self._session: Any = None
        self._metrics: WorkerMetrics | None = None
        self._crashing: asyncio.Future[Any] | None = None
        self._undecodable = 0
        self._longest_timeout = max(endpoint.timeout for endpoint in endpoints)

    # ------------------------------------------------------------------ wiring

    def install(self) -> None:
        app = self.app

        @app.agent(self.alerts, name="webhooks")
        async def webhooks(stream: faust.StreamT[bytes]) -> None:
            async for events in stream.take_events(  # type: ignore[attr-defined]
                self.settings.batch_size, within=self.settings.batch_within
            ):
                await self.consume(events)

        @app.task  # type: ignore[untyped-decorator]
        async def deliver_webhooks() -> None:
            await self.dispatch()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def hand_over_webhooks(sender: Any, revoked: set[TP], **_: Any) -> None:
            await self.on_revoked(revoked)

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def finish_webhooks(sender: Any, **_: Any) -> None:
            await self.on_shutdown()

    @property
    def metrics(self) -> WorkerMetrics:
        """The worker's metrics (``create_app`` sets them after installing the sink)."""
        if self._metrics is None:
            metrics: WorkerMetrics = self.app.debitwatch_metrics  # type: ignore[attr-defined]
            metrics.webhook_pending.set_function(self.book.pending)
            metrics.webhook_disabled.set_function(lambda: len(self.disabled))
            self._metrics = metrics
        return self._metrics

    def _fail(self, error: BaseException) -> None:
        """A table write Kafka refused for good, or a failed batch: stop the worker (once)."""
        if self._crashing is not None:
            return
        log.error("webhooks: %s: stopping the worker", error)
        self._crashing = crash_worker(self.app, error)

    # ---------------------------------------------------------------- the agent

    async def consume(self, events: list[EventT[bytes]]) -> None:
        """Enqueue one batch of alert records; returns once Kafka holds all of it.

        Whatever goes wrong, the batch's events must not be committed: ``take_events``
        acknowledges them in a ``finally`` even when this raises, and the consumer
        commits acknowledged offsets even while the worker stops. So each event keeps
        one more reference (never released): Faust's commit cannot pass it, and the
        restarted worker reads the batch again. Cancelled too (the worker stopping
        mid-batch), without stopping the worker for it.
        """
        try:
            await self._consume(events)
        except BaseException as error:
            for event in events:
                event.message.incref()
            if not isinstance(error, asyncio.CancelledError):
                log.exception("webhooks: a batch of alerts could not be enqueued")
                self._fail(error)
            raise

    async def _consume(self, events: list[EventT[bytes]]) -> None:
        await self.ensure_loaded()
        by_partition: dict[int, list[EventT[bytes]]] = collections.defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        now = time.time()
        advanced: dict[int, int] = {}
        for partition, group in by_partition.items():
            start = self.book.offsets.get(partition, 0)
            last = start - 1
            for event in group:
                if partition not in self.book.partitions:
                    break  # revoked: never committed here, its new owner reads it
                offset = event.message.offset
                if offset < start:
                    continue  # enqueued before this worker restarted (see ledger.py)
                last = max(last, offset)
                await self._route(partition, offset, event.value, now)
            if last >= start:
                advanced[partition] = last + 1
        # The checkpoint only once the queue records before it are acknowledged: sent
        # with them, it could land while one of them was refused, and the next owner
        # would skip that state (streams/webhooks/store.py).
        await asyncio.gather(*(self._writer.acked(p) for p in advanced))
        for partition, offset in advanced.items():
            await self._writer.write(partition, [offset_record(partition, offset)])
        await asyncio.gather(*(self._writer.acked(p) for p in advanced))
        for partition, offset in advanced.items():
            if partition in self.book.partitions:
                self.book.offsets[partition] = offset  # its states may be attempted now
        self._wake.set()

    async def _route(self, partition: int, offset: int, raw: bytes, now: float) -> None:
        """Enqueue one alert state for every endpoint that wants it, in one write.

        A disabled endpoint's states are queued too: the dispatcher dead-letters them
        (a dead letter needs the dead-letter topic, and the agent must not depend on it).
        """
        try:
            alert = ALERT_DECODER.decode(raw)
        except msgspec.DecodeError:
            self._undecodable += 1
            if self._undecodable == 1 or self._undecodable % 1000 == 0:
                log.warning(
                    "alerts topic partition %d offset %d is not an alert record; skipped "
                    "(%d so far)", partition, offset, self._undecodable,
                )  # fmt: skip
            return
        message_id = webhook_id(alert)
        records: list[tuple[bytes, bytes | None]] = []
        for endpoint in self.endpoints.values():
            if not endpoint.accepts(alert):
                self.metrics.webhook_deliveries.labels(outcome="filtered").inc()
                continue
            state = PendingState(
                webhook_id=message_id,
                status=str(alert.status),
                deadline_passed=alert.deadline_passed,
                alert=raw,
                offset=offset,
                enqueued_at=now,
                next_attempt=now,
            )
            queue = self.book.enqueue(partition, endpoint.name, alert.alert_id, state)
            if queue is not None:
                records.append(queue_record(queue))
        # Written as they are now, before anything else can change them (store.py).
        await self._writer.write(partition, records)

    # ------------------------------------------------------------- the dispatcher

    async def dispatch(self) -> None:
        """Start due attempts until the worker stops; sleep until the next is due."""
        _ = self.metrics  # the gauges read the book from the first scrape on
        self._session = new_session(sum(e.concurrency for e in self.endpoints.values()))
        try:
            while not self.app.should_stop:
                wait = 1.0
                if not (self.app.rebalancing or self.app.in_recovery):
                    try:
                        await self.ensure_loaded()
                        wait = self._start_due()
                    except ConsumerNotStarted:
                        wait = 1.0
                    except Exception as error:
                        # As the agents do (mode.CrashingSupervisor): a worker whose
                        # deliveries stopped must not look healthy; its restart resumes
                        # them from the table.
                        log.exception("the webhook dispatcher failed: stopping the worker")
                        await crash_worker(self.app, error)
                        return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
        finally:
            if self._attempts:
                await asyncio.wait(list(self._attempts.values()), timeout=self._longest_timeout)
            await self._close_session()

    def _start_due(self) -> float:
        """Start every due attempt an endpoint has a free slot for; seconds to sleep."""
        now = time.time()
        for key in self.book.due(now, self._reserve_slot):
            self._attempts[key] = asyncio.ensure_future(self._attempt(key))
        upcoming = self.book.next_due()
        if upcoming is None:
            return _IDLE_WAIT
        if upcoming <= now:
            return 1.0  # due but no free slot: a finishing attempt wakes us first
        return min(upcoming - now, _IDLE_WAIT)

    def _reserve_slot(self, endpoint: str) -> bool:
        """Take one of the endpoint's ``concurrency`` slots, if one is free (the attempt
        gives it back when it ends)."""
        if self.app.should_stop or self._running[endpoint] >= self.endpoints[endpoint].concurrency:
            return False
        self._running[endpoint] += 1
        return True

    async def _attempt(self, key: QueueKey) -> None:
        endpoint = self.endpoints[key[0]]
        queue: AlertQueue | None = None
        head: PendingState | None = None
        try:
            queue = self.book.queues.get(key)
            if queue is None:
                return  # dropped before it started (its partition was revoked)
            head = queue.states[0]
            mark = self.disabled.get(endpoint.name)
            if mark is not None:
                gone = Decision("dead_letter", error=mark.error, reason="endpoint_disabled")
                await self._settle(endpoint, queue, head, gone, time.time())
                self._errors.pop(key, None)
                return
            started = time.time()
            if head.first_attempt is None:
                head.first_attempt = started
            head.attempts += 1
            head.last_attempt = started
            body = payloads.body(endpoint.format, head.alert)
            headers = self._signers[endpoint.name].headers(head.webhook_id, body, started)
            result = await post(
                self._session,
                endpoint.url,
                body,
                headers,
                endpoint.timeout,
                endpoint=endpoint.name,
            )
            self.metrics.webhook_latency.observe(result.seconds)
            if self.book.queues.get(key) is not queue:
                return  # handed over (revoked) meanwhile
            now = time.time()
            decision = decide(
                result.status,
                result.retry_after,
                result.error,
                failures=head.attempts,
                queued_at=head.enqueued_at,
                now=now,
                policy=endpoint.retry,
                rng=self._rng,
            )
            if decision.action == "retry" and endpoint.name in self.disabled:
                # Disabled (a 410 to another attempt) while this one was in flight: no
                # waiting for the retry time, its next turn dead-letters it.
                decision = Decision("retry", next_attempt=now, error=decision.error)
            await self._settle(endpoint, queue, head, decision, now)
            self._errors.pop(key, None)
        except ChangelogWriteError:
            pass  # the writer is stopping the worker; the state stays in the changelog
        except Exception as error:
            # A bug here must not stop deliveries of every other alert, nor retry this
            # one at once, forever: the head gets a backoff like any failed attempt, and
            # a dead letter past its horizon.
            log.exception("webhook attempt for %s to %s failed unexpectedly", key[1], key[0])
            if queue is not None and head is not None:
                await self._after_error(endpoint, queue, head, error)
        finally:
            self._running[endpoint.name] -= 1
            self._attempts.pop(key, None)
            self.book.finish(key)
            self._wake.set()

    async def _settle(
        self,
        endpoint: Endpoint,
        queue: AlertQueue,
        head: PendingState,
        decision: Decision,
        now: float,
    ) -> None:
        """Record what the attempt decided, in memory and in the table."""
        outcomes = self.metrics.webhook_deliveries
        key = queue.key
        if decision.action == "disable":
            await self._disable(endpoint, decision.error or "HTTP 410", now)
            # The state that met the 410 goes first, with every later one (_attempt).
            decision = Decision("dead_letter", error=decision.error, reason="endpoint_disabled")
        if decision.action == "delivered":
            self.book.pop_head(key)
            outcomes.labels(outcome="delivered").inc()
        elif decision.action == "retry":
            assert decision.next_attempt is not None
            head.next_attempt = decision.next_attempt
            head.last_error = decision.error
            outcomes.labels(outcome="retried").inc()
            log.debug(
                "webhook %s to %s: %s; attempt %d again in %.1f s",
                head.webhook_id, endpoint.name, decision.error, head.attempts + 1,
                decision.next_attempt - now,
            )  # fmt: skip
        else:
            # The dead letter is acknowledged before the state leaves its queue.
            reason = decision.reason or "retries_exhausted"
            await self._dead_letter(
                endpoint.name, queue.alert_id, head, reason, decision.error, now
            )
            if self.book.queues.get(key) is not queue:
                return  # handed over (revoked) meanwhile: its new owner has it
            self.book.pop_head(key)
            disabled = reason == "endpoint_disabled"
            outcomes.labels(outcome="disabled" if disabled else "dead_lettered").inc()
        await self._write_queue(queue.partition, key)

    async def _after_error(
        self, endpoint: Endpoint, queue: AlertQueue, head: PendingState, error: Exception
    ) -> None:
        """An attempt failed in our own code: schedule the head like a failed attempt."""
        if self.book.queues.get(queue.key) is not queue or queue.states[0] is not head:
            return  # the head had moved on already: nothing of it to reschedule
        now = time.time()
        self._errors[queue.key] += 1
        # Decided as if the receiver had not answered: a backoff, or past the horizon a
        # dead letter (reason retries_exhausted, last_error naming the error's class).
        decision = decide(
            None,
            None,
            f"internal error: {type(error).__name__}",
            failures=head.attempts + self._errors[queue.key],
            queued_at=head.enqueued_at,
            now=now,
            policy=endpoint.retry,
            rng=self._rng,
        )
        # In memory first: if recording it fails as well, the head still waits.
        head.next_attempt = decision.next_attempt or now + endpoint.retry.cap
        try:
            await self._settle(endpoint, queue, head, decision, now)
        except ChangelogWriteError:
            pass
        except Exception:
            log.exception(
                "webhook %s to %s: recording an internal error failed too; next try in %.0f s",
                head.webhook_id, endpoint.name, head.next_attempt - now,
            )  # fmt: skip

    async def _write_queue(self, partition: int, key: QueueKey) -> None:
        """Write the key's queue as it is now (another may have replaced an emptied one)."""
        current = self.book.queues.get(key)
        record = queue_record(current) if current is not None else (queue_key(*key), None)
        await self._writer.write(partition, [record])

    # -------------------------------------------------------- dead letters, 410

    async def _dead_letter(
        self,
        endpoint: str,
        alert_id: str,
        state: PendingState,
        reason: str,
        error: str | None,
        now: float,
    ) -> None:
        """Publish the dead letter and wait for Kafka's ack: only then may the state go."""
        record = dead_letter(endpoint, alert_id, state, reason, error, now)
        future = await self.app.producer.send(
            self.dlq_topic, alert_id.encode(), record, None, None, None
        )
        await future
        log.warning(
            "webhook %s (alert %s, %s) to %s dead-lettered: %s after %d attempt(s): %s",
            state.webhook_id, alert_id, state.status, endpoint, reason, state.attempts,
            error or state.last_error,
        )  # fmt: skip

    async def _disable(self, endpoint: Endpoint, error: str, now: float) -> None:
        """410 Gone: no more attempts; every queued state of it to the dead letters (by the
        dispatcher, each in its turn, as for any other dead letter)."""
        name = endpoint.name
        if name not in self.disabled:
            log.warning(
                "webhook endpoint %s answered %s: disabled until its url or revision "
                "changes (docs/webhooks.md)", name, error,
            )  # fmt: skip
        mark = DisabledMark(
            endpoint=name, partition=-1, fingerprint=endpoint.fingerprint, since=now, error=error
        )
        self.disabled[name] = mark
        self.book.hurry(name, now)
        for partition in sorted(self.book.partitions):
            await self._write_mark(mark, partition)

    async def _write_mark(self, mark: DisabledMark, partition: int) -> None:
        placed = msgspec.structs.replace(mark, partition=partition)
        await self._writer.write(partition, [mark_record(placed)])

    # ------------------------------------------------------- partitions, restore

    def _assigned(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.consumer.assignment()
            if tp.topic == self.settings.alerts_topic
        }

    async def ensure_loaded(self) -> None:
        """Load the queues of every assigned partition not in memory yet, from the table."""
        async with self._loading:
            missing = self._assigned() - self.book.partitions
            if not missing:
                return
            queues: dict[int, list[AlertQueue]] = {p: [] for p in missing}
            offsets: dict[int, int] = {}
            marks: list[DisabledMark] = []
            dormant: collections.Counter[str] = collections.Counter()
            for key, value in self.table.data.items():
                if value is None:
                    continue
                stored = decode_record(key, value)
                if stored is None or stored.partition not in missing:
                    continue
                if stored.queue is not None and stored.queue.endpoint not in self.endpoints:
                    # Not configured here: during a rolling configuration change another
                    # worker may still have it. Left in the table, untouched, for a
                    # worker that knows the endpoint (docs/webhooks.md).
                    dormant[stored.queue.endpoint] += len(stored.queue.states)
                elif stored.queue is not None:
                    queues[stored.partition].append(stored.queue)
                elif stored.offset is not None:
                    offsets[stored.partition] = stored.offset
                elif stored.mark is not None:
                    marks.append(stored.mark)
            for partition in sorted(missing):
                self.book.add_partition(partition, queues[partition], offsets.get(partition, 0))
            log.info(
                "webhooks: partitions %s: %d undelivered state(s) restored",
                sorted(missing),
                sum(len(q.states) for qs in queues.values() for q in qs),
            )
            if dormant:
                log.warning(
                    "webhooks: partitions %s: %s state(s) queued for endpoint(s) not "
                    "configured on this worker, kept in the retry table: %s",
                    sorted(missing), sum(dormant.values()), ", ".join(sorted(dormant)),
                )  # fmt: skip
            await self._apply_marks(marks, missing)

    async def _apply_marks(self, marks: list[DisabledMark], loaded: set[int]) -> None:
        """Disabled endpoints from the table: kept if their config did not change.

        Only table writes here (this runs in the agent too): the queues of a disabled
        endpoint are made due, and the dispatcher dead-letters them.
        """
        for mark in marks:
            endpoint = self.endpoints.get(mark.endpoint)
            if endpoint is None:
                continue  # not configured here: left for a worker that has it (dormant)
            if endpoint.fingerprint == mark.fingerprint:
                self.disabled.setdefault(mark.endpoint, mark)
                continue
            if mark.endpoint not in self.disabled:
                log.info(
                    "webhook endpoint %s enabled again: its url or revision changed since "
                    "its 410", mark.endpoint,
                )  # fmt: skip
            await self._writer.write(
                mark.partition, [(disabled_key(mark.endpoint, mark.partition), None)]
            )
        now = time.time()
        for name, mark in list(self.disabled.items()):
            self.book.hurry(name, now)
            for partition in sorted(loaded):
                await self._write_mark(mark, partition)

    async def on_revoked(self, revoked: set[TP]) -> None:
        """Let in-flight attempts of revoked partitions finish and record them, then let go."""
        topic = self.settings.alerts_topic
        partitions = {tp.partition for tp in revoked if tp.topic == topic} & self.book.partitions
        if not partitions:
            return
        self.book.closing |= partitions
        await self._finish_in_flight(
            [
                task
                for key, task in list(self._attempts.items())
                if key in self.book.queues and self.book.queues[key].partition in partitions
            ]
        )
        await self._writer.drain()
        self.book.drop_partitions(partitions)
        for key in [k for k in self._errors if k not in self.book.queues]:
            del self._errors[key]

    async def on_shutdown(self) -> None:
        """Stopping: in-flight attempts finish and their outcome reaches the changelog."""
        await self._finish_in_flight(list(self._attempts.values()))
        await self._writer.drain()
        await self._close_session()

    async def _finish_in_flight(self, tasks: list[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        # Each attempt ends by its own timeout; the margin covers recording the outcome.
        _done, pending = await asyncio.wait(tasks, timeout=self._longest_timeout + 5.0)
        for task in pending:
            task.cancel()  # its state stays queued: the next owner attempts it again

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
