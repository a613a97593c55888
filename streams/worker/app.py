"""The Faust app: two agents, one table, one timer (docs/streaming.md).

::

    pos.terminal.events ─┐                       ┌─> debitwatch.dlq (refused input)
                         ├─ ingest ──> <app>-events-by-merchant ── join ──┼─> debitwatch.alerts
    bank.issuer.events ──┘   validate,    (re-keyed by transaction,       └─> table txns (and a
                             re-key,       partitioned by merchant)           checkpoint each)
                             copy watermarks                                  (changelogged)

``join`` keeps one :class:`~streams.worker.partition_state.PartitionState` per assigned
partition, in memory, and the table as its durable copy: written once per batch for
the keys the batch changed, read back only when a partition is (re)assigned. It never
uses Faust's ``join`` (a stub) nor windowed tables (their expiry is wall-clock time).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import faust
import faust.streams
import mode
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, EventT

from models.dead_letter import DeadLetter
from models.events import Source
from models.incident_scoring import load_scorer
from models.incidents import merchant_of_state
from models.transaction import Txn
from streams.settings import Settings
from streams.worker import handoff
from streams.worker.ingest import route
from streams.worker.partition_state import (
    INCIDENT_PREFIXES,
    Checkpoint,
    Incoming,
    PartitionState,
    PublishedAlert,
    published_since,
)
from streams.worker.state_writer import CHECKPOINT_PREFIX, StateWriter, checkpoint_key
from streams.worker.wire import ORIGIN_HEADER, TICK_KEY, encode_control, join_partition

log = logging.getLogger("debitwatch.worker")
_ENCODER = msgspec.json.Encoder()


def wall_us() -> int:
    return time.time_ns() // 1000


def create_app(settings: Settings) -> faust.App:
    """A Faust app for ``settings``; ``debitwatch worker`` runs it (streams.worker.run)."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_port=settings.web_port,
        autodiscover=False,
        # How long the group waits for a silent (crashed) worker before its partitions
        # move: Kafka Streams' default, where Faust's is 60 s.
        broker_session_timeout=settings.session_timeout,
        # Batches of sends, not one request per message (measured: docs/PERFORMANCE.md).
        producer_linger=0.005,
        # An agent that fails stops the worker (and its supervisor restarts it from the
        # changelog), rather than leaving a live worker with a dead join.
        agent_supervisor=mode.CrashingSupervisor,
        producer_max_batch_size=256 * 1024,
    )
    skew = timedelta(seconds=settings.detection.max_clock_skew)
    # Loaded at start: a missing or mismatched model stops the worker here, with the
    # reason, instead of on the first partition it is given.
    incident_scorer = load_scorer(settings.incident_model)
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(settings.terminal_topic, settings.issuer_topic, **raw)
    rekeyed = app.topic(settings.repartition_topic, partitions=settings.partitions, **raw)
    alerts = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
    dlq = app.topic(settings.dlq_topic, **raw)
    # bytes keys and values: Faust's "raw" codec, the core does its own encoding.
    txns = app.Table("txns", partitions=settings.partitions, key_type=bytes, value_type=bytes)

    states: dict[int, PartitionState] = {}
    lock = asyncio.Lock()
    input_counts: dict[str, int] = {}

    def input_partitions(topic: str) -> int:
        count = input_counts.get(topic)
        if count is None:
            count = app.consumer.topic_partitions(topic) or settings.input_partitions
            input_counts[topic] = count
        return count

    async def send(
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Send through Faust's producer; returns a future of the record's metadata.

        Straight to the producer: ``Topic.send`` adds a FutureMessage, callbacks and a
        sensor call per message (a third of the ingest's time, measured), and Faust
        still flushes this producer before every commit.
        """
        return await app.producer.send(topic.get_topic_name(), key, value, partition, None, headers)

    def fail(error: BaseException) -> None:
        """A state write Kafka refused for good: stop before anything commits past it."""
        log.error("a state write was not delivered (%s): stopping the worker", error)
        crashing.append(asyncio.ensure_future(app.crash(error)))

    crashing: list[asyncio.Future[Any]] = []
    writer = StateWriter(app, txns, on_failure=fail)

    async def send_dead(record: DeadLetter) -> None:
        await send(dlq, None, _ENCODER.encode(record))

    @app.task  # type: ignore[untyped-decorator]
    async def tune_transport() -> None:
        """A measured change to Faust's consumer, made once at start (handoff.py)."""
        handoff.install(app.consumer)

    @app.agent(inputs, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_within
        ):
            for event in events:
                message = event.message
                source: Source = (
                    "terminal" if message.topic == settings.terminal_topic else "issuer"
                )
                routed = route(
                    source,
                    event.value,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    join_partitions=settings.partitions,
                    input_partitions=input_partitions(message.topic),
                    max_clock_skew=skew,
                )
                if isinstance(routed, DeadLetter):
                    await send_dead(routed)
                    continue
                for out in routed:
                    await send(rekeyed, out.key, out.value, out.partition, out.headers)

    def assigned_partitions() -> set[int]:
        return {
            tp.partition
            for tp in app.consumer.assignment()
            if tp.topic == settings.repartition_topic
        }

    async def ensure_loaded() -> None:
        """Restore every assigned partition that has no state in memory yet."""
        missing = assigned_partitions() - states.keys()
        if not missing:
            return
        started = time.monotonic()
        await writer.drain()
        saved: dict[int, Checkpoint] = {}
        by_partition: dict[int, list[tuple[str, bytes]]] = {p: [] for p in missing}
        partitions = settings.partitions
        unreadable = 0  # states of no known shape: skipped (a past version, a stray write)
        for key, blob in txns.data.items():
            if blob is None:
                continue
            if key.startswith(CHECKPOINT_PREFIX):
                partition = int(key[len(CHECKPOINT_PREFIX) :])
                if partition in missing:
                    saved[partition] = Checkpoint.decode(blob)
                continue
            text = key.decode()
            try:
                merchant_id = (
                    merchant_of_state(blob)
                    if text.startswith(INCIDENT_PREFIXES)
                    else Txn.merchant_of(blob)
                )
            except ValueError:
                unreadable += 1
                continue
            partition = join_partition(merchant_id, partitions)
            if partition in by_partition:
                by_partition[partition].append((text, blob))
        published = await read_published(
            {p: (saved[p].alerts_offset if p in saved else 0) for p in missing}
        )
        now = wall_us()
        for partition in sorted(missing):
            states[partition] = PartitionState(
                partition,
                settings.detection,
                txns=by_partition[partition],
                checkpoint=saved.get(partition),
                published=published[partition],
                wall_us=now,
                incidents=incident_scorer,
                deadlines=settings.deadlines,
            )
        log.info(
            "restored partitions %s: %d states (%d unreadable) in %.1f s",
            sorted(missing),
            sum(len(v) for v in by_partition.values()),
            unreadable,
            time.monotonic() - started,
        )

    async def read_published(
        since: dict[int, int],
    ) -> dict[int, list[PublishedAlert]]:
        """The alert records each partition published after its checkpoint."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",  # an aborted transaction published nothing
        )
        await consumer.start()
        try:
            tps = [TopicPartition(settings.alerts_topic, p) for p in since]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            values: dict[int, list[bytes | None]] = {p: [] for p in since}
            for tp in tps:
                consumer.seek(tp, since[tp.partition])
            pending = {tp for tp in tps if ends[tp] > since[tp.partition]}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                for tp, records in batch.items():
                    values[tp.partition].extend(r.value for r in records)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return {p: published_since(v) for p, v in values.items()}

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget(sender: Any, revoked: set[TP], **_: Any) -> None:
        for tp in revoked:
            if tp.topic == settings.repartition_topic:
                states.pop(tp.partition, None)

    async def publish(state: PartitionState, dead: list[DeadLetter]) -> None:
        """Alerts first (acknowledged), then dead letters, then the state, checkpoint last
        (one changelog partition: Kafka keeps them in this order)."""
        partition = state.partition
        pending = [
            await send(alerts, alert.alert_id.encode(), _ENCODER.encode(alert), partition)
            for alert in state.take_alerts()
        ]
        if pending:
            delivered = await asyncio.gather(*pending)
            state.alerts_offset = max(meta.offset for meta in delivered) + 1
        for record in dead:
            await send_dead(record)
        records: list[tuple[bytes, bytes | None]] = [
            (key.encode(), blob) for key, blob in state.take_writes()
        ]
        records.append((checkpoint_key(partition), state.checkpoint().encode()))
        await writer.write(partition, records)

    @app.agent(rekeyed, name="join")
    async def join(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.batch_size, within=settings.batch_within
        ):
            async with lock:
                await ensure_loaded()
                by_partition: dict[int, list[EventT[bytes]]] = collections.defaultdict(list)
                for event in events:
                    by_partition[event.message.partition].append(event)
                now = wall_us()
                for partition, group in by_partition.items():
                    state = states.get(partition)
                    if state is None:
                        continue  # revoked while buffered: its new owner reprocesses it
                    dead = state.feed([_incoming(event) for event in group], now)
                    await publish(state, dead)

    @app.timer(interval=settings.tick_interval)  # type: ignore[untyped-decorator]
    async def idle_advance() -> None:
        """CONTRACT §3: a silent source's progress moves on; sent through the topic."""
        if app.rebalancing or app.in_recovery:
            return
        async with lock:
            await ensure_loaded()  # a partition with no traffic since (re)assignment too
            now = wall_us()
            for partition, state in list(states.items()):
                for tick in state.due_ticks(now):
                    await send(rekeyed, TICK_KEY, encode_control(tick), partition)

    app.debitwatch_states = states  # type: ignore[attr-defined]  # for the web views
    return app


def _incoming(event: EventT[bytes]) -> Incoming:
    headers = event.message.headers
    origin = None
    if headers:
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        for name, value in pairs:
            if name == ORIGIN_HEADER:
                origin = value
    return Incoming(event.value, origin)
