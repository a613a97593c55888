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
from datetime import timedelta
from typing import Any, Final

import faust
import faust.streams
import mode
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from models.dead_letter import DeadLetter
from models.events import Source
from models.incident_scoring import load_scorer
from models.incidents import merchant_of_state
from models.stream_time import NEVER
from models.transaction import Txn
from streams.api.routes import install_api
from streams.metrics import (
    ObservedScorer,
    PartitionView,
    StateCollector,
    WorkerMetrics,
    version,
)
from streams.settings import Settings
from streams.webhooks import install_webhooks
from streams.worker import batch_feed
from streams.worker.batch_feed import Batch, BatchFeed
from streams.worker.batch_send import NO_HEADERS, send_records
from streams.worker.changelog_catch_up import STORE_URL as CATCH_UP_STORE_URL
from streams.worker.event_order import EventTimeOrder, Routed
from streams.worker.fetch_wait import set_fetch_max_wait
from streams.worker.ingest import route_batch
from streams.worker.partition_state import (
    INCIDENT_PREFIXES,
    Checkpoint,
    Incoming,
    PartitionState,
    PublishedAlert,
    published_since,
)
from streams.worker.state_writer import CHECKPOINT_PREFIX, StateWriter, checkpoint_key
from streams.worker.stopping import crash_worker
from streams.worker.web import install_metrics_page
from streams.worker.wire import ORIGIN_HEADER, TICK_KEY, encode_control, join_partition

log = logging.getLogger("debitwatch.worker")
_ENCODER = msgspec.json.Encoder()


# RocksDB memory per partition of the table (one database each). Faust's defaults are
# sized for large values: 64 MiB write buffers, up to 3 of them, and a 2 GiB block cache,
# per partition. The join writes ~150-byte states once per batch and reads the table
# only when a partition is assigned; with four busy partitions the write buffers alone
# were hundreds of MiB of the worker's RSS (docs/PERFORMANCE.md, "Alert latency and the
# memory soak": 1,561 -> 992 bytes per transaction held after 10 minutes).
ROCKSDB_OPTIONS: Final = {
    "write_buffer_size": 16 * 1024**2,
    "max_write_buffer_number": 2,
    "block_cache_size": 64 * 1024**2,
}


def wall_us() -> int:
    return time.time_ns() // 1000


def create_app(settings: Settings) -> faust.App:
    """A Faust app for ``settings``; ``debitwatch worker`` runs it (streams.worker.run)."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        # Faust's RocksDB store, restored from the changelog in whole batches
        # (changelog_catch_up.py).
        store=CATCH_UP_STORE_URL if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_port=settings.web_port,
        # Faust's own pages would serve table contents (/table/) and the cluster's
        # addresses (/router/) without the API token; the API routes by itself
        # (streams/api/peers.py), so they are off.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        autodiscover=False,
        # How long the group waits for a silent (crashed) worker before its partitions
        # move: Kafka Streams' default, where Faust's is 60 s.
        broker_session_timeout=settings.session_timeout,
        table_standby_replicas=settings.standby_replicas,
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
    loaded_model = load_scorer(settings.incident_model)
    metrics = WorkerMetrics(
        version=version(),
        model_version="none" if loaded_model is None else loaded_model.metadata.model_version,
    )
    incident_scorer = (
        None if loaded_model is None else ObservedScorer(loaded_model, metrics.incident_score)
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(settings.terminal_topic, settings.issuer_topic, **raw)
    rekeyed = app.topic(settings.repartition_topic, partitions=settings.partitions, **raw)
    alerts = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
    dlq = app.topic(settings.dlq_topic, **raw)
    # bytes keys and values: Faust's "raw" codec, the core does its own encoding.
    txns = app.Table(
        "txns",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=ROCKSDB_OPTIONS if settings.store == "rocksdb" else None,
    )

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
        crashing.append(crash_worker(app, error))

    crashing: list[asyncio.Future[Any]] = []
    writer = StateWriter(app, txns, on_failure=fail)

    def producer() -> Any:
        """aiokafka's producer under Faust's (for whole batches: batch_send.py)."""
        return app.producer._ensure_producer()  # type: ignore[attr-defined]

    # Whole fetched batches for the two agents (batch_feed.py); the bound is the records
    # fetched and not yet taken, per agent.
    ingest_feed = BatchFeed(
        app, [settings.terminal_topic, settings.issuer_topic], settings.batch_size
    )
    join_feed = BatchFeed(app, [settings.repartition_topic], settings.batch_size)
    batch_feed.install(app.consumer, [ingest_feed, join_feed])
    set_fetch_max_wait(app.consumer, settings.fetch_max_wait)

    async def send_dead(record: DeadLetter) -> None:
        metrics.rejected.labels(reason=str(record.reason)).inc()
        await send(dlq, None, _ENCODER.encode(record))

    @app.agent(inputs, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        rekeyed_topic = rekeyed.get_topic_name()
        ingest_feed.register(stream)
        order = EventTimeOrder()
        while True:
            # Held events (event_order.py) go out as soon as nothing new is queued.
            batches = await ingest_feed.take(wait=not order.holding)
            counts: collections.Counter[tuple[str, str]] = collections.Counter()
            fresh: dict[TP, tuple[Batch, list[Routed]]] = {}
            for batch in batches:
                topic, partition = batch.tp
                source: Source = "terminal" if topic == settings.terminal_topic else "issuer"
                partitions_of_topic = input_partitions(topic)
                times: list[int] = []
                results = route_batch(
                    source,
                    [(record.offset, record.value) for record in batch.records],
                    topic=topic,
                    partition=partition,
                    join_partitions=settings.partitions,
                    input_partitions=partitions_of_topic,
                    max_clock_skew=skew,
                    counts=counts,
                    times=times,
                )
                routed = list(map(Routed, times, results, batch.records))
                earlier = fresh.get(batch.tp)
                if earlier is None:
                    fresh[batch.tp] = (batch, routed)
                else:  # two fetches of one partition in this round
                    first, routed_before = earlier
                    joined_batch = first._replace(records=first.records + batch.records)
                    fresh[batch.tp] = (joined_batch, routed_before + routed)
            ordered, done = order.round(fresh, app.consumer_generation_id, flush=not batches)
            by_partition: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = (
                collections.defaultdict(list)
            )
            dead: list[DeadLetter] = []
            for item in ordered:
                result = item.result
                if isinstance(result, DeadLetter):
                    dead.append(result)
                    continue
                for out in result:
                    by_partition[out.partition].append((out.key, out.value, out.headers))
            for join_partition_number, records in by_partition.items():
                await send_records(producer(), rekeyed_topic, join_partition_number, records)
            for record in dead:
                await send_dead(record)
            metrics.count_events(counts)
            ingest_feed.ack(done)

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
        restored = 0
        for partition in sorted(missing):
            restored += len(by_partition[partition])
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
        took = time.monotonic() - started
        metrics.recovery.set(took)
        metrics.recovered_states.inc(restored)
        log.info(
            "restored partitions %s: %d states (%d unreadable) in %.1f s",
            sorted(missing),
            restored,
            unreadable,
            took,
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

    joined = asyncio.Event()  # a first assignment came (possibly an empty one)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def count_rebalance(sender: Any, assigned: set[TP], **_: Any) -> None:
        metrics.rebalances.inc()
        joined.set()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget(sender: Any, revoked: set[TP], **_: Any) -> None:
        for tp in revoked:
            if tp.topic == settings.repartition_topic:
                states.pop(tp.partition, None)

    async def publish(state: PartitionState, dead: list[DeadLetter]) -> None:
        """Alerts first (acknowledged), then dead letters, then the state, checkpoint last
        (one changelog partition: Kafka keeps them in this order)."""
        partition = state.partition
        fresh = state.take_alerts()
        if fresh:
            delivery = await send_records(
                producer(),
                alerts.get_topic_name(),
                partition,
                ((alert.alert_id.encode(), _ENCODER.encode(alert), NO_HEADERS) for alert in fresh),
            )
            next_offset = await delivery.next_offset()
            assert next_offset is not None
            state.alerts_offset = next_offset
            metrics.count_alerts(fresh, wall_us())
        for record in dead:
            await send_dead(record)
        records: list[tuple[bytes, bytes | None]] = [
            (key.encode(), blob) for key, blob in state.take_writes()
        ]
        records.append((checkpoint_key(partition), state.checkpoint().encode()))
        await writer.write(partition, records)

    @app.agent(rekeyed, name="join")
    async def join(stream: faust.StreamT[bytes]) -> None:
        async for batches in join_feed.subscribe(stream):
            async with lock:
                await ensure_loaded()
                began = time.perf_counter()
                by_partition: dict[int, list[Batch]] = collections.defaultdict(list)
                for batch in batches:
                    by_partition[batch.tp.partition].append(batch)
                now = wall_us()
                events = 0
                for partition, group in by_partition.items():
                    state = states.get(partition)
                    if state is None:
                        continue  # revoked while queued: its new owner reprocesses it
                    incoming = [_incoming(record) for batch in group for record in batch.records]
                    events += len(incoming)
                    dead = state.feed(incoming, now)
                    await publish(state, dead)
                    late, duplicates = state.counts_since_last()
                    metrics.late.inc(late)
                    metrics.duplicates.inc(duplicates)
                metrics.batch_events.inc(events)
                metrics.batch_duration.observe(time.perf_counter() - began)
            join_feed.ack(batches)

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

    def ready() -> bool:
        """Every assigned partition's state is restored (what /readyz answers)."""
        if not joined.is_set() or app.rebalancing or app.in_recovery:
            return False
        try:
            assigned = assigned_partitions()
        except ConsumerNotStarted:
            return False
        # Once in the group, a spare worker (more workers than partitions) has nothing
        # to restore: ready.
        return assigned <= states.keys()

    def views() -> dict[int, PartitionView]:
        return {p: _view(state) for p, state in list(states.items())}

    metrics.registry.register(
        StateCollector(views, data_dir=settings.data_dir, lag=lambda: _consumer_lag(app, settings))
    )

    # The web port (docs/api.md, docs/metrics.md) and the webhook sink (docs/webhooks.md).
    install_metrics_page(app, metrics, ready)
    install_api(app, settings)
    install_webhooks(app, settings)

    app.debitwatch_states = states  # type: ignore[attr-defined]  # for the web views
    app.debitwatch_metrics = metrics  # type: ignore[attr-defined]
    app.debitwatch_ready = ready  # type: ignore[attr-defined]
    return app


def _view(state: PartitionState) -> PartitionView:
    reconciler = state.reconciler
    return PartitionView(
        open_transactions=lambda: reconciler.open_transactions,
        oldest_open_us=lambda: reconciler.oldest_open_us,
        stream_time_us=lambda: (
            None if reconciler.progress.stream_time <= NEVER else reconciler.progress.stream_time
        ),
        exposure=state.exposure.totals,
        incidents_firing=state.incidents_firing,
    )


def _consumer_lag(app: faust.App, settings: Settings) -> dict[str, int]:
    """Messages behind the last fetched high-water mark, per input stream, of this
    worker's assigned partitions (Faust keeps the read offsets; no broker round trip)."""
    consumer = app.consumer
    streams = {
        settings.terminal_topic: "terminal",
        settings.issuer_topic: "issuer",
        settings.repartition_topic: "by_merchant",
    }
    lag: dict[str, int] = dict.fromkeys(streams.values(), 0)
    try:
        assignment = consumer.assignment()
    except ConsumerNotStarted:
        return lag
    # Faust's own records of the last offset read and committed per partition.
    read, committed = consumer._read_offset, consumer._committed_offset  # type: ignore[attr-defined]
    for tp in assignment:
        stream = streams.get(tp.topic)
        if stream is None:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet (no metadata for it): nothing known to be behind
            continue
        last = read.get(tp)
        done = last + 1 if last is not None else committed.get(tp)
        if done is not None:
            lag[stream] += max(0, (highwater or 0) - done)
    return lag


def _incoming(record: Any) -> Incoming:
    """A fetched record of the re-keyed topic (aiokafka's ``ConsumerRecord``)."""
    origin = None
    for name, value in record.headers or ():
        if name == ORIGIN_HEADER:
            origin = value
    return Incoming(record.value, origin)
