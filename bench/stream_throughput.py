"""End-to-end events/s of one stream worker next to the raw consume+decode rate, same run.

    .venv/bin/python bench/stream_throughput.py [--transactions 50000] [--seed 11]
        [--pyinstrument worker-profile.txt [--pyinstrument-workers 2]]

Starts its own broker (``streams.kafka_local``, free ports, a temporary directory,
stopped at the end), simulates a capture (default profile), and produces it to two sets
of fresh topics *before* any worker starts, so every figure is a catch-up over a backlog:

* **raw baseline**: one aiokafka consumer, no group, every partition of both input
  topics assigned, ``getmany(max_records=100000)``, ``msgspec.json.decode`` of each
  value and nothing else. It runs before and after the workers; the better pass is kept
  (as ``bench/replay_throughput.py`` does), so a neighbour's load during one pass does
  not flatter the ratio.
* **one worker, at_least_once** (RocksDB store, the defaults otherwise): seconds from
  starting the ``debitwatch worker`` process until every input and re-keyed message is
  committed (polled every 0.5 s, two zero-lag polls in a row as
  ``streams.cluster.wait_caught_up``; Faust commits every 2.8 s), events/s = input
  messages / those seconds. Broker timestamps split the time: the first re-keyed record
  (the ingest's first send) ends the start-up, the newest record of the state changelog
  (the join writes each partition's checkpoint into it last in every batch) ends the
  processing. ``idle_advance`` is set to a day: the capture's final watermarks close
  every window, and idle ticks (two per second and partition once the input is silent,
  for ever) would add messages to the re-keyed topic after the backlog is done.
* **two worker processes** of one consumer group, at_least_once, on their own set of
  topics (``--no-scale-out`` skips it): the scale-out figure is their rate over one
  worker's, same capture, same run;
* **the same with exactly_once**, on the second set of topics and its own app id; if
  the settings refuse it (they do: docs/streaming.md), it fails, or it does not catch up
  in ``--timeout`` seconds (or makes no progress for 3 minutes), the error is recorded.

Each worker's firing alerts are compared with ``debitwatch replay`` of the same capture.
``--pyinstrument OUT`` also runs an at_least_once worker under pyinstrument on a third
set of topics (after the measurements, so it does not slow them; stopped with SIGINT),
writes its text report next to OUT, named after the worker (``OUT-prof.txt``;
``.full.txt``: every frame), and the share of self time per package to the results;
``--pyinstrument-workers 2`` profiles a group of two (``OUT-prof-0.txt``,
``OUT-prof-1.txt``). Every run also records each worker's join batches from its
``/metrics`` (messages per batch, seconds in batches). Results go to
``bench/results/stream_throughput.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import bench_arguments  # noqa: E402
from bench.stream_common import (  # noqa: E402
    BROKER_JVM_OPTIONS,
    BenchWorker,
    Broker,
    CpuMeter,
    caught_up,
    fresh_settings,
    group_coordinator_ready,
    load_average,
    loaded,
    local_broker,
    run_header,
    scratch_dir,
    seconds_nearly_idle,
)
from models.config import ConfigError, DetectionConfig  # noqa: E402
from models.final_states import ALERT_DECODER, firing_set  # noqa: E402
from streams.cluster import lag_by_topic  # noqa: E402
from streams.kafka_clients import partition_counts, read_topic  # noqa: E402
from streams.produce import ProduceSummary, produce_capture  # noqa: E402
from streams.replay import replay  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import create_topics  # noqa: E402

MAX_RECORDS = 100_000
IDLE_ADVANCE = 86_400.0


# --------------------------------------------------------------------- raw baseline


async def _raw_consume(settings: Settings, topics: list[str]) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    counts = partition_counts(settings, topics)
    tps = [TopicPartition(topic, p) for topic in topics for p in range(counts[topic])]
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        decode = msgspec.json.decode
        messages = 0
        size = 0
        started = time.perf_counter()
        while pending:
            batch = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
            for tp, records in batch.items():
                for record in records:
                    value = record.value
                    decode(value)
                    size += len(value)
                messages += len(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {
        "messages": messages,
        "value_bytes": size,
        "seconds": round(seconds, 3),
        "events_per_second": round(messages / seconds, 1),
    }


def raw_baseline(settings: Settings) -> dict[str, Any]:
    result = asyncio.run(_raw_consume(settings, [settings.terminal_topic, settings.issuer_topic]))
    result["load_average"] = load_average()
    print(
        f"raw aiokafka consume + msgspec decode: {result['events_per_second']:,.0f} msgs/s "
        f"({result['messages']:,} in {result['seconds']:.2f} s)"
    )
    return result


# ----------------------------------------------------------------- broker timestamps


async def _edge_timestamps(settings: Settings, topic: str) -> tuple[int | None, int | None]:
    """(oldest first-record timestamp, newest last-record timestamp) over the partitions,
    in ms; committed records only."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    tps = [TopicPartition(topic, p) for p in range(partition_counts(settings, [topic])[topic])]
    await consumer.start()
    first: int | None = None
    last: int | None = None
    try:
        consumer.assign(tps)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            if ends[tp] <= begins[tp]:
                continue
            consumer.seek(tp, begins[tp])
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            for record in batch.get(tp, []):
                first = record.timestamp if first is None else min(first, record.timestamp)
            # The tail: a few records before the end (a transaction marker takes an offset).
            consumer.seek(tp, max(begins[tp], ends[tp] - 20))
            quiet_since = time.monotonic()
            while await consumer.position(tp) < ends[tp] and time.monotonic() - quiet_since < 3:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for record in batch.get(tp, []):
                    last = record.timestamp if last is None else max(last, record.timestamp)
                    quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return first, last


# --------------------------------------------------------------------------- workers


def run_worker(
    settings: Settings,
    broker: Broker,
    messages: int,
    log_dir: Path,
    name: str,
    timeout: float,
    prefix: list[str] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Start ``workers`` worker processes (one consumer group) on a backlog, wait until
    they caught up, stop them; the figures."""
    names = [name] if workers == 1 else [f"{name}-{i}" for i in range(workers)]
    group = [
        BenchWorker(
            settings,
            name=n,
            log_dir=log_dir,
            prefix=[part.replace("{worker}", n) for part in prefix or []],
        )
        for n in names
    ]
    worker = _Together(group)
    result: dict[str, Any] = {
        "processing_guarantee": settings.processing_guarantee,
        "store": settings.store,
        "workers": workers,
        "load_average_at_start": load_average(),
    }
    meter = CpuMeter({"broker": broker.pid or 0})
    for one in group:
        one.start()
        meter.add("worker" if workers == 1 else one.name, one.pid)
    try:
        caught_up(settings, worker, timeout)
        seconds = time.monotonic() - group[0].started
    except (TimeoutError, RuntimeError) as error:
        meter.stop()
        result.update(ok=False, error=str(error), log_tail=worker.log_tail(60), cpu=meter.result)
        with contextlib.suppress(Exception):
            result["lag_by_topic_at_failure"] = lag_by_topic(settings)
            result["log_errors"] = sorted(
                {
                    line.split("] ", 3)[-1][:160]
                    for one in group
                    for line in one.log_since_start().splitlines()
                    if "[ERROR]" in line or "[WARNING]" in line
                }
            )[:20]
        print(f"{name}: FAILED: {str(error).splitlines()[0]}")
        for one in group:
            if prefix:
                one.interrupt()
            else:
                one.stop(timeout=60)
        return result
    result["cpu"] = meter.stop()
    timelines = result["cpu"]["timeline_cores_per_second"]
    result["cpu"]["worker_seconds_nearly_idle"] = {
        one_name: seconds_nearly_idle(timelines[one_name])
        for one_name in timelines
        if one_name != "broker"
    }
    result["join"] = {one.name: join_batches(one) for one in group}
    exits = [one.interrupt() if prefix else one.stop(timeout=60) for one in group]
    result["exit_code"] = exits[0] if workers == 1 else exits
    result.update(
        ok=True,
        input_messages=messages,
        seconds_start_to_caught_up=round(seconds, 2),
        events_per_second=round(messages / seconds, 1),
    )
    first_rekeyed, _ = asyncio.run(_edge_timestamps(settings, settings.repartition_topic))
    last_checkpoint = max(
        (asyncio.run(_edge_timestamps(settings, topic))[1] or 0)
        for topic in settings.changelog_topics
    )
    if first_rekeyed is not None and last_checkpoint:
        startup = first_rekeyed / 1000 - group[0].started_wall
        processing = (last_checkpoint - first_rekeyed) / 1000
        result.update(
            seconds_start_to_first_rekeyed_record=round(startup, 2),
            seconds_first_rekeyed_to_last_checkpoint=round(processing, 2),
            events_per_second_while_processing=round(messages / processing, 1),
        )
    alerts = [
        ALERT_DECODER.decode(record.value)
        for record in read_topic(settings, settings.alerts_topic, until_idle=1.0)
    ]
    result["alert_records"] = len(alerts)
    by_kind_status: dict[str, int] = {}
    for alert in alerts:
        label = f"{alert.kind}/{alert.status}" + (
            "/deadline_passed" if alert.deadline_passed else ""
        )
        by_kind_status[label] = by_kind_status.get(label, 0) + 1
    result["alert_records_by_kind_status"] = dict(sorted(by_kind_status.items()))
    result["firing"] = firing_set(alerts)
    print(
        f"{name}: {result['events_per_second']:,.0f} msgs/s start to caught up "
        f"({seconds:.1f} s); start-up {result.get('seconds_start_to_first_rekeyed_record')} s, "
        f"processing {result.get('seconds_first_rekeyed_to_last_checkpoint')} s = "
        f"{result.get('events_per_second_while_processing', 0):,.0f} msgs/s; "
        f"{len(alerts):,} alert records; CPU {result['cpu']['cpu_seconds']}, "
        f"others {result['cpu']['others_cores']} cores; seconds under half a core "
        f"while working {result['cpu']['worker_seconds_nearly_idle']}"
    )
    return result


def join_batches(worker: BenchWorker) -> dict[str, Any]:
    """The worker's join, from its own counters: batches, messages per batch, seconds in
    batches (core, alerts, state writes). A join fed many small batches pays its
    per-batch costs (a state write per transaction touched, the checkpoint) more often."""
    try:
        samples = worker.metrics()
    except OSError as error:
        return {"error": str(error)}

    def total(name: str) -> float:
        return sum(sample.value for sample in samples if sample.name == name)

    batches = total("debitwatch_batch_duration_seconds_count")
    messages = total("debitwatch_join_messages_total")
    return {
        "batches": int(batches),
        "messages": int(messages),
        "messages_per_batch": round(messages / batches, 1) if batches else None,
        "seconds_in_batches": round(total("debitwatch_batch_duration_seconds_sum"), 2),
    }


class _Together:
    """Several workers seen as one by ``caught_up``: alive while all of them are."""

    def __init__(self, group: list[BenchWorker]) -> None:
        self.group = group
        self.name = ", ".join(one.name for one in group)

    @property
    def alive(self) -> bool:
        return all(one.alive for one in self.group)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {one.name}\n{one.log_tail(lines)}" for one in self.group)


PYINSTRUMENT = str(ROOT / ".venv/bin/pyinstrument")
# Where a sample's own (self) time is spent, by the file of its innermost Python frame;
# time in C (msgspec, rocksdict, sockets) counts for the Python frame that called it.
PACKAGES = (
    ("idle (event loop waiting for I/O)", ("/selectors.py", "/epoll.poll")),
    ("our core (models/)", ("/models/",)),
    ("our worker (streams/)", ("/streams/",)),
    ("faust", ("/faust/",)),
    ("aiokafka", ("/aiokafka/",)),
    ("mode", ("/mode/",)),
    ("asyncio", ("/asyncio/",)),
    ("kafka-python", ("/kafka/",)),
    ("logging", ("/logging/",)),
)


def profiler_prefix(session: Path) -> list[str]:
    """The interpreter command that runs a worker under pyinstrument (5 ms samples),
    its session written to ``session`` when the worker gets SIGINT."""
    return [PYINSTRUMENT, "-i", "0.005", "-r", "pyisession", "-o", str(session)]


def render_profile(session: Path, text: Path) -> dict[str, float]:
    """Text reports of a pyinstrument session (``text``, and ``.full.txt`` with every
    frame) and the share of self time per package, from its pstats rendering."""
    load = [PYINSTRUMENT, "--load", str(session)]
    subprocess.run([*load, "-r", "text", "-o", str(text)], check=True)
    full = text.with_suffix(".full.txt")
    subprocess.run([*load, "-r", "text", "--show-all", "-o", str(full)], check=True)
    stats_path = session.with_suffix(".pstats")
    subprocess.run([*load, "-r", "pstats", "-o", str(stats_path)], check=True)
    table: Any = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    shares: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, self_time, _cum, _callers) in table.items():
        where = f"{filename}/{function}"  # C functions: "<built-in>", "epoll.poll"
        package = next(
            (name for name, marks in PACKAGES if any(mark in where for mark in marks)),
            "other",
        )
        shares[package] = shares.get(package, 0.0) + self_time
    total = sum(shares.values()) or 1.0
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    return {name: round(seconds / total, 4) for name, seconds in ranked}


def replay_firing(capture: Path, settings: Settings, scratch: Path) -> Any:
    out = scratch / "replay-alerts.jsonl"
    with out.open("wb") as handle:
        replay([capture], handle, config=settings.detection)
    lines = out.read_bytes().splitlines()
    return firing_set([ALERT_DECODER.decode(line) for line in lines if line])


def prepared(
    broker: Broker, scratch: Path, label: str, capture: Path, **changes: Any
) -> tuple[Settings, ProduceSummary]:
    detection = DetectionConfig(idle_advance=IDLE_ADVANCE)
    settings = fresh_settings(broker, scratch / "state", label, detection=detection, **changes)
    create_topics(settings)
    group_coordinator_ready(settings)
    summary = produce_capture(settings, [capture])
    print(
        f"{label}: produced {summary.messages:,} messages in {summary.seconds:.1f} s "
        f"({summary.messages / summary.seconds:,.0f}/s)"
    )
    return settings, summary


def main() -> int:
    parser = bench_arguments(__doc__)
    parser.set_defaults(transactions=50_000)
    parser.add_argument("--timeout", type=float, default=900.0, help="per worker run, seconds")
    parser.add_argument("--pyinstrument", type=Path, help="also profile a worker; text report")
    parser.add_argument(
        "--pyinstrument-workers",
        type=int,
        default=1,
        help="worker processes in the profiled run (one report each; default 1)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--no-scale-out",
        dest="scale_out",
        action="store_false",
        help="skip the run with two worker processes",
    )
    parser.add_argument(
        "--batch-size", type=int, help="the workers' batch_size (default: the settings')"
    )
    parser.add_argument(
        "--fetch-max-wait",
        type=float,
        help="the workers' fetch_max_wait in seconds (default: the settings'; Faust's is 1.5)",
    )
    parser.add_argument(
        "--gc-threshold",
        help="the workers' gc_threshold (default: the settings'; CPython's is 700,10,10)",
    )
    args = parser.parse_args()
    # Worker settings other than the defaults, for every run.
    tuned: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("batch_size", "fetch_max_wait", "gc_threshold")
        if getattr(args, name) is not None
    }
    capture, result = run_header(args)
    result["broker_jvm_options"] = list(BROKER_JVM_OPTIONS)
    with scratch_dir(args.keep) as scratch, local_broker(scratch) as broker:
        alo, produced = prepared(broker, scratch, "alo", capture, **tuned)
        try:
            eos: Settings | None = prepared(
                broker, scratch, "eos", capture, processing_guarantee="exactly_once", **tuned
            )[0]
        except ConfigError as error:
            eos, refused = None, str(error)
            print(f"exactly_once: refused by the settings: {refused}")
        messages = produced.messages
        result["input"] = {
            "messages": messages,
            "events": sum(produced.events.values()),
            "watermark_messages": sum(produced.watermark_messages.values()),
            "produce_seconds": round(produced.seconds, 2),
            "partitions": {"input": alo.input_partitions, "join": alo.partitions},
            "batch_size": alo.batch_size,
            "fetch_max_wait": alo.fetch_max_wait,
            "gc_threshold": alo.gc_threshold,
        }
        before = raw_baseline(alo)
        logs = scratch / "logs"
        runs = {"at_least_once": run_worker(alo, broker, messages, logs, "alo", args.timeout)}
        if args.scale_out:
            two, _ = prepared(broker, scratch, "two", capture, **tuned)
            runs["at_least_once_2_workers"] = run_worker(
                two, broker, messages, logs, "two", args.timeout, workers=2
            )
        if eos is not None:
            runs["exactly_once"] = run_worker(eos, broker, messages, logs, "eos", args.timeout)
        else:
            runs["exactly_once"] = {"ok": False, "error": f"refused by Settings: {refused}"}
        after = raw_baseline(alo)
        expected = replay_firing(capture, alo, scratch)
        for run in runs.values():
            firing = run.pop("firing", None)
            if firing is not None:
                run["firing_alerts"] = len(firing)
                run["firing_equals_replay"] = firing == expected
        if args.pyinstrument is not None:
            profiled, _ = prepared(broker, scratch, "prof", capture, **tuned)
            report = args.pyinstrument.resolve()
            # One session per worker process: "{worker}" becomes its name (prof, prof-0, …).
            session = report.with_name(f"{report.stem}-{{worker}}.pyisession")
            prefix = profiler_prefix(session)
            profile = run_worker(
                profiled,
                broker,
                messages,
                logs,
                "prof",
                args.timeout,
                prefix,
                workers=args.pyinstrument_workers,
            )
            profile.pop("firing", None)
            profile["self_time_by_package"] = {
                name: render_profile(
                    Path(str(session).replace("{worker}", name)),
                    report.with_name(f"{report.stem}-{name}{report.suffix}"),
                )
                for name in profile["join"]
            }
            result["pyinstrument_run"] = {"report": str(report), **profile}
    raw = before if before["events_per_second"] >= after["events_per_second"] else after
    result["raw_aiokafka_decode"] = {
        "events_per_second": raw["events_per_second"],
        "passes": {"before": before, "after": after},
        "max_records": MAX_RECORDS,
    }
    result["replay_firing_alerts"] = len(expected)
    result["workers"] = runs
    result["ratio_e2e_to_raw"] = {
        name: round(run["events_per_second"] / raw["events_per_second"], 4)
        for name, run in runs.items()
        if run.get("ok")
    }
    result["ratio_processing_to_raw"] = {
        name: round(run["events_per_second_while_processing"] / raw["events_per_second"], 4)
        for name, run in runs.items()
        if run.get("events_per_second_while_processing")
    }
    single, pair = runs["at_least_once"], runs.get("at_least_once_2_workers", {})
    if single.get("ok") and pair.get("ok"):
        result["scale_out_2_workers"] = {
            "e2e": round(pair["events_per_second"] / single["events_per_second"], 3),
            "while_processing": round(
                pair.get("events_per_second_while_processing", 0)
                / single.get("events_per_second_while_processing", 1),
                3,
            ),
        }
        print(f"  two workers / one: {result['scale_out_2_workers']}")
    result["loaded_while_measuring"] = [
        name for name, run in runs.items() if loaded(run.get("cpu", {}))
    ]
    result["load_average_at_end"] = load_average()
    (args.out / "stream_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw baseline (better pass): {raw['events_per_second']:,.0f} msgs/s")
    for name, ratio in result["ratio_e2e_to_raw"].items():
        print(f"  {name}: ratio e2e/raw {ratio:.3f}")
    for name, run in runs.items():
        if not run.get("ok"):
            print(f"  {name}: failed: {run['error'].splitlines()[0]}")
    if result["loaded_while_measuring"]:
        print(f"note: others used > 0.5 core during {result['loaded_while_measuring']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
