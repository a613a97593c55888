"""Alert latency of one stream worker: from producing the message that closes a window
to the alert being readable in the alerts topic.

    .venv/bin/python bench/alert_latency.py [--rate 500] [--seconds 540]

Starts its own broker (``streams.kafka_local``, free ports, a temporary directory,
stopped at the end) and one ``debitwatch worker`` (at_least_once, RocksDB) on fresh
topics with the default windows (match window 300 s + grace 60 s) and an idle advance of
a day (no ticks). Then, for ``--seconds``:

* a producer (aiokafka, idempotent, ``acks=all``) sends transactions at a steady
  ``--rate`` events/s, four events each (terminal request, issuer authorization and
  debit, terminal outcome, 0.2 s apart), event times following the wall clock; one in
  ten ends "declined" after the debit: an ``unmatched_debit`` alert once its window
  closes;
* every ``--watermark-every`` seconds it sends a watermark at ``now - --watermark-lag``
  to every partition of both input topics;
* a consumer (no group) tails the alerts topic and notes each record's arrival time.

Which message closes a window: a window closes when its join partition's stream time
*passes* ``transmitted_at`` (to the second) + match window + grace (the alert's
``window_closed_at``), and stream time is the smaller over the two sources of each
source's progress: the smallest over its input partitions (lanes) of the largest
``occurred_at`` seen from each, **events included** (``models/stream_time.py``), not
only watermarks. With events flowing, a watermark behind the wall clock never closes a
window: the events do. So the sender replays the rule: for each join partition (the
events' merchants hashed as the worker does; by default 100 merchants of 5 terminals
each, ``--terminals`` and ``--terminals-per-merchant`` for a sparser fleet) it
records every message after which that partition's stream time went up, with the wall
time it was sent. The closing message of
an alert is the first of those past its ``window_closed_at``; latency = arrival of the
alert at the consumer - the wall time that message was sent. (Input partitions are read
in parallel, so the worker may pass the close on a message sent a little later than
that one, never earlier: the figure is an upper bound.) Also reported: the alert
record's own timestamp (when the worker sent it) and arrival - ``window_closed_at``
(event time follows the wall clock).

Windows first close ``match_window + grace`` after the start, so the default 540 s
gives about three minutes of alerts. The worker's RSS is sampled every ``--rss-every``
seconds with the transactions sent so far: run for 30 minutes at half the maximum
throughput, this is the memory soak (``bench/svg_chart.py`` plots it). Results go to
``bench/results/alert_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import heapq
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import machine  # noqa: E402
from bench.stream_common import (  # noqa: E402
    BROKER_JVM_OPTIONS,
    BenchWorker,
    CpuMeter,
    code_state,
    fresh_settings,
    group_coordinator_ready,
    load_average,
    loaded,
    local_broker,
    now_iso,
    percentile,
    scratch_dir,
    vm_status,
)
from bench.stream_throughput import profiler_prefix, render_profile  # noqa: E402
from models.config import DetectionConfig  # noqa: E402
from streams.kafka_clients import partition_counts  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import create_topics  # noqa: E402
from streams.worker.wire import join_partition  # noqa: E402

STEPS = (  # (seconds after the sale was sent, source, event type) of every transaction
    (0.0, "terminal", "request"),
    (0.2, "issuer", "authorization"),
    (0.4, "issuer", "debit"),
    (0.6, "terminal", "outcome"),
)
ANOMALY_EVERY = 10  # one transaction in ten: debited, then declined -> unmatched_debit
READY = re.compile(r"\[\^Worker\]: Ready")


def instant(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def micros_of(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


@dataclass
class Sale:
    sent: float
    terminal: str
    merchant: str
    stan: str
    anomaly: bool
    card: str
    amount: int


@dataclass
class Traffic:
    """What was sent, and when each join partition's stream time moved.

    Stream time of a join partition = min over the two sources, and over each source's
    input partitions (lanes), of the largest ``occurred_at`` that reached it from there,
    watermarks included (``models/stream_time.py``); events move it, not only
    watermarks. ``moves[p]`` lists, in send order, every message after which partition
    ``p``'s stream time (as the sender computes it from what it sent) went up: (stream
    time in µs, wall time it was sent, was a watermark).
    """

    partitions: int
    inputs: int  # partitions of each input topic
    events: int = 0
    transactions: int = 0
    anomalies: list[float] = field(default_factory=list)  # transmitted_at of each
    rounds: int = 0
    behind: float = 0.0  # the most the sender ran late on its schedule, seconds
    progress: list[dict[str, list[int]]] = field(default_factory=list)
    moves: list[list[tuple[int, float, bool]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.progress = [
            {"terminal": [0] * self.inputs, "issuer": [0] * self.inputs}
            for _ in range(self.partitions)
        ]
        self.moves = [[] for _ in range(self.partitions)]

    def reached(
        self, partition: int, source: str, lane: int, at_us: int, wall: float, mark: bool
    ) -> None:
        progress = self.progress[partition]
        lanes = progress[source]
        if at_us <= lanes[lane]:
            return
        before = min(min(each) for each in progress.values())
        lanes[lane] = at_us
        after = min(min(each) for each in progress.values())
        if after > before:
            self.moves[partition].append((after, wall, mark))


def event_bytes(sale: Sale, kind: str, occurred: float, event_id: str) -> bytes:
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": kind,
        "terminal_id": sale.terminal,
        "merchant_id": sale.merchant,
        "stan": sale.stan,
        "transmitted_at": instant(sale.sent),
        "occurred_at": instant(occurred),
        "amount_minor": sale.amount,
        "currency": "EUR",
        "card_token": sale.card,
    }
    if kind == "authorization":
        body.update(approved=True, response_code="00")
    elif kind == "outcome":
        body["outcome"] = "declined" if sale.anomaly else "approved"
    return msgspec.json.encode(body)


@dataclass(frozen=True)
class Fleet:
    """Who sells: ``terminals`` terminals taking turns (sale n on terminal n mod
    terminals), ``per_merchant`` consecutive terminals per merchant, ``cards`` cards
    in turn. The default (500 terminals, 5 each, 20,000 cards) is dense: at 1,750 sales/s
    each terminal sells 3.5 times a second, which makes the per-terminal state (the
    incident windows, the paid-again lookups) far larger than a real terminal's."""

    terminals: int = 500
    per_merchant: int = 5
    cards: int = 20_000

    def terminal(self, number: int) -> str:
        return f"T-{number % self.terminals:06d}"

    def merchant(self, number: int) -> str:
        return f"M-{number % self.terminals // self.per_merchant:05d}"


async def send_traffic(
    settings: Settings,
    rate: float,
    seconds: float,
    every: float,
    lag: float,
    traffic: Traffic,
    fleet: Fleet,
) -> Traffic:
    """Transactions at ``rate`` events/s and watermark rounds, for ``seconds``."""
    counts = partition_counts(settings, [settings.terminal_topic, settings.issuer_topic])
    topics = {"terminal": settings.terminal_topic, "issuer": settings.issuer_topic}
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    pending: list[tuple[float, int, Sale, str, str]] = []  # (due, seq, sale, source, type)
    seq = itertools.count()
    ids = itertools.count(1)
    stans: dict[str, int] = {}
    spacing = len(STEPS) / rate  # seconds between sales
    started = time.time()
    next_sale = started
    next_round = started + every
    sent_per_topic = dict.fromkeys(topics.values(), 0)
    joins: dict[str, int] = {}  # merchant -> join partition

    try:
        while True:
            now = time.time()
            if now - started >= seconds:
                break
            while next_sale <= now:
                number = traffic.transactions
                terminal = fleet.terminal(number)
                stan = stans.get(terminal, 0) + 1
                stans[terminal] = stan
                sale = Sale(
                    sent=next_sale,
                    terminal=terminal,
                    merchant=fleet.merchant(number),
                    stan=f"{stan % 1_000_000:06d}",
                    anomaly=number % ANOMALY_EVERY == ANOMALY_EVERY - 1,
                    card=f"tok_{number % fleet.cards}",
                    amount=1_000 + number % 9_000,
                )
                if sale.anomaly:
                    traffic.anomalies.append(sale.sent)
                for offset, source, kind in STEPS:
                    heapq.heappush(pending, (sale.sent + offset, next(seq), sale, source, kind))
                traffic.transactions += 1
                next_sale += spacing
            traffic.behind = max(traffic.behind, now - next_sale)
            while pending and pending[0][0] <= now:
                due, _, sale, source, kind = heapq.heappop(pending)
                topic = topics[source]
                partition = (sent_per_topic[topic] // 64) % counts[topic]
                sent_per_topic[topic] += 1
                value = event_bytes(sale, kind, due, f"lat-{next(ids)}")
                wall = time.time()
                await producer.send(topic, value, partition=partition)
                traffic.events += 1
                join = joins.get(sale.merchant)
                if join is None:
                    join = joins[sale.merchant] = join_partition(sale.merchant, traffic.partitions)
                traffic.reached(join, source, partition, micros_of(instant(due)), wall, False)
            if now >= next_round:
                mark = now - lag
                body = {"type": "watermark", "event_id": f"wm-{next(ids)}"}
                value = msgspec.json.encode({**body, "occurred_at": instant(mark)})
                micros = micros_of(instant(mark))
                wall = time.time()
                for topic in topics.values():
                    for partition in range(counts[topic]):
                        await producer.send(topic, value, partition=partition)
                for join in range(traffic.partitions):
                    for source, topic in topics.items():
                        for lane in range(counts[topic]):
                            traffic.reached(join, source, lane, micros, wall, True)
                traffic.rounds += 1
                next_round += every
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return traffic


async def tail_alerts(settings: Settings, stop: asyncio.Event) -> list[tuple[float, int, Any]]:
    """(arrival wall time, record timestamp in ms, decoded value) of every alert record."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False
    )
    tps = [TopicPartition(settings.alerts_topic, p) for p in range(settings.partitions)]
    await consumer.start()
    received: list[tuple[float, int, Any]] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            arrival = time.time()
            for records in batch.values():
                received.extend(
                    (arrival, record.timestamp, msgspec.json.decode(record.value))
                    for record in records
                )
    finally:
        await consumer.stop()
    return received


async def sample_memory(
    pid: int, traffic: Traffic, every: float, stop: asyncio.Event
) -> list[dict[str, float]]:
    """The worker's RSS and the transactions sent so far, every ``every`` seconds (the
    soak). Every transaction stays in the worker's state for the retention (7 days), so
    RSS grows with them; the figure that must stay flat is RSS per transaction."""
    started = time.monotonic()
    samples: list[dict[str, float]] = []
    while True:
        samples.append(
            {
                "seconds": round(time.monotonic() - started, 1),
                "rss_bytes": vm_status(pid)["VmRSS"],
                "transactions": traffic.transactions,
            }
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return samples


async def measure(
    settings: Settings, args: Any, worker_pid: int
) -> tuple[Traffic, list[tuple[float, int, Any]], list[dict[str, float]]]:
    stop = asyncio.Event()
    tail = asyncio.create_task(tail_alerts(settings, stop))
    traffic = Traffic(settings.partitions, settings.input_partitions)
    memory = asyncio.create_task(sample_memory(worker_pid, traffic, args.rss_every, stop))
    try:
        fleet = Fleet(args.terminals, args.terminals_per_merchant, args.cards)
        await send_traffic(
            settings,
            args.rate,
            args.seconds,
            args.watermark_every,
            args.watermark_lag,
            traffic,
            fleet,
        )
        await asyncio.sleep(args.drain)  # alerts still on their way
    finally:
        stop.set()
    return traffic, await tail, await memory


def latencies(
    traffic: Traffic, received: list[tuple[float, int, Any]], window_us: int
) -> dict[str, Any]:
    """Per firing alert: arrival - send time of the message that closed its window."""
    marks = [[at for at, _, _ in moves] for moves in traffic.moves]
    from_closing: list[float] = []
    worker_side: list[float] = []
    from_close_time: list[float] = []
    by_watermark = 0
    unmatched = 0
    firing = 0
    incident_alerts = 0
    for arrival, timestamp, alert in received:
        if alert.get("status") != "firing":
            continue
        if alert.get("window_closed_at") is None:  # terminal_incident: no window of its own
            incident_alerts += 1
            continue
        firing += 1
        close = micros_of(alert["window_closed_at"])
        partition = join_partition(alert["merchant_id"], traffic.partitions)
        # The first message after which the partition's stream time passed the close.
        index = bisect.bisect_right(marks[partition], close)
        if index == len(marks[partition]):
            unmatched += 1
            continue
        _, sent, was_mark = traffic.moves[partition][index]
        by_watermark += was_mark
        from_closing.append(arrival - sent)
        worker_side.append(timestamp / 1000 - sent)
        from_close_time.append(arrival - close / 1_000_000)
    closed_until = min((moves[-1][0] for moves in traffic.moves if moves), default=0)
    expected = sum(
        1 for sent in traffic.anomalies if int(sent) * 1_000_000 + window_us < closed_until
    )

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "count": len(ordered),
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
            "p90_ms": round(percentile(ordered, 0.90) * 1000, 1),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1) if ordered else float("nan"),
            "min_ms": round(ordered[0] * 1000, 1) if ordered else float("nan"),
        }

    return {
        "alerts_firing": firing,
        "incident_alerts_firing": incident_alerts,
        "alerts_expected_at_least": expected,
        "alerts_without_closing_message": unmatched,
        "closed_by_watermark": by_watermark,
        "closed_by_event": len(from_closing) - by_watermark,
        "alert_records": len(received),
        "from_closing_message_sent": summary(from_closing),
        "to_alert_record_timestamp": summary(worker_side),
        "from_wall_clock_passing_window_close": summary(from_close_time),
    }


def memory_summary(samples: list[dict[str, float]]) -> dict[str, Any]:
    """RSS per transaction held, over the run (from the first sample with traffic)."""
    first = samples[0]
    rows: list[dict[str, Any]] = []
    for sample in samples[1:]:
        held = sample["transactions"] - first["transactions"]
        grown = sample["rss_bytes"] - first["rss_bytes"]
        rows.append({**sample, "bytes_per_transaction": round(grown / held, 1) if held else None})
    per = [row["bytes_per_transaction"] for row in rows if row["bytes_per_transaction"]]
    return {
        "samples": [first, *rows],
        "rss_at_start_bytes": first["rss_bytes"],
        "rss_at_end_bytes": samples[-1]["rss_bytes"],
        "bytes_per_transaction_last": per[-1] if per else None,
        "bytes_per_transaction_max_after_5_min": max(
            (
                row["bytes_per_transaction"]
                for row in rows
                if row["seconds"] >= 300 and row["bytes_per_transaction"]
            ),
            default=None,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rate", type=float, default=500.0, help="events/s (default 500)")
    parser.add_argument("--seconds", type=float, default=540.0, help="traffic duration")
    parser.add_argument("--watermark-every", type=float, default=0.5)
    parser.add_argument("--watermark-lag", type=float, default=1.0, help="now - this")
    parser.add_argument("--match-window", type=float, default=300.0)
    parser.add_argument("--grace", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=5.0, help="wait after the traffic")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--rss-every", type=float, default=60.0, help="RSS sample, seconds")
    parser.add_argument("--terminals", type=int, default=500, help="terminals (default 500)")
    parser.add_argument("--terminals-per-merchant", type=int, default=5)
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument(
        "--pyinstrument",
        type=Path,
        help="run the worker under pyinstrument; text report here (latencies then include it)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    detection = DetectionConfig(
        match_window=args.match_window, grace=args.grace, idle_advance=86_400.0
    )
    window_us = int((args.match_window + args.grace) * 1_000_000)
    result: dict[str, Any] = {
        "date": now_iso(),
        "machine": machine(),
        "code": code_state(),
        "broker_jvm_options": list(BROKER_JVM_OPTIONS),
        "traffic": {
            "events_per_second": args.rate,
            "seconds": args.seconds,
            "events_per_transaction": len(STEPS),
            "anomaly_every": ANOMALY_EVERY,
            "terminals": args.terminals,
            "terminals_per_merchant": args.terminals_per_merchant,
            "cards": args.cards,
            "watermark_every_s": args.watermark_every,
            "watermark_lag_s": args.watermark_lag,
        },
        "detection": {"match_window": args.match_window, "grace": args.grace},
    }
    with scratch_dir(args.keep) as scratch, local_broker(scratch) as broker:
        settings = fresh_settings(broker, scratch / "state", "lat", detection=detection)
        create_topics(settings)
        group_coordinator_ready(settings)
        session = None if args.pyinstrument is None else scratch / "worker.pyisession"
        worker = BenchWorker(
            settings,
            name="lat",
            log_dir=scratch / "logs",
            loglevel="info",
            prefix=() if session is None else profiler_prefix(session),
        )
        worker.start()
        try:
            ready, _ = worker.wait_for_line(READY, timeout=120)
            print(f"worker ready {ready:.1f} s after start; traffic for {args.seconds:.0f} s")
            meter = CpuMeter({"broker": broker.pid or 0, "worker": worker.pid})
            traffic, received, memory = asyncio.run(measure(settings, args, worker.pid))
            result["cpu"] = meter.stop()
            result["worker_alive_at_end"] = worker.alive
        finally:
            with contextlib.suppress(Exception):
                if session is None:
                    worker.stop(timeout=60)
                else:
                    worker.interrupt()  # SIGINT: the profiler writes its session
        if session is not None:
            result["pyinstrument"] = {
                "report": str(args.pyinstrument),
                "self_time_by_package": render_profile(session, args.pyinstrument.resolve()),
            }
    result["sent"] = {
        "events": traffic.events,
        "transactions": traffic.transactions,
        "events_per_second": round(traffic.events / args.seconds, 1),
        "watermark_rounds": traffic.rounds,
        "sender_most_behind_s": round(traffic.behind, 3),
    }
    result["memory"] = memory_summary(memory)
    # The raw samples first: a failure in the analysis below must not lose a long soak.
    (args.out / "alert_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    result["latency"] = latencies(traffic, received, window_us)
    result["loaded_while_measuring"] = loaded(result["cpu"])
    result["load_average_at_end"] = load_average()
    (args.out / "alert_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    figures = result["latency"]
    produced = figures["from_closing_message_sent"]
    print(
        f"{figures['alerts_firing']:,} alerts (expected >= {figures['alerts_expected_at_least']:,}"
        f"; closed by an event {figures['closed_by_event']:,}, by a watermark "
        f"{figures['closed_by_watermark']:,}); latency from the closing message's send: "
        f"p50 {produced['p50_ms']} ms, "
        f"p99 {produced['p99_ms']} ms, max {produced['max_ms']} ms; "
        f"others used {result['cpu']['others_cores']} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
