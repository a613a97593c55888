"""Restart of a stream worker holding 1,000,000 open transactions: how long until it
has its state back, and its memory then.

    .venv/bin/python bench/recovery.py [--open 1000000]

Starts its own broker (``streams.kafka_local``, free ports, a temporary directory,
stopped at the end), creates fresh topics and produces ``--open`` minimal valid terminal
``request`` events, one per transaction, ``transmitted_at`` spread over five minutes, no
issuer event and no watermark: stream time never moves (it is the smaller of the two
sources' progress, and the issuer is never heard from; the idle advance is set to 30
days), so every window stays open. Then:

1. **build**: one worker (at_least_once, RocksDB) runs until it has committed every
   message (1M keys in the ``txns`` table and its changelog), and is stopped cleanly
   (SIGTERM: Faust commits, flushes and closes RocksDB).
2. **restart, local state**: one more request is produced (the join loads its state on
   its first batch), and a worker is started with the same data directory: RocksDB is
   there, Faust only reads the changelog past the offsets it had persisted.
3. **fresh worker, empty data directory**: the same, on a new directory: the whole
   changelog goes into a new RocksDB first, read in whole batches by the worker's store
   (``streams/worker/changelog_catch_up.py``; its log line gives records and seconds),
   and Faust's recovery reads whatever that left (before the store: all of it).

For 2 and 3: seconds from starting the process until the worker logs "restored
partitions [...]: N states in X s" (the join's restore, ``--loglevel info``; this
script runs the worker itself for that), Faust's own milestones from the log's
timestamps, and the worker's RSS (``/proc/PID/status`` VmRSS; VmHWM is the peak) at that
moment. Results go to ``bench/results/recovery.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import machine  # noqa: E402
from bench.stream_common import (  # noqa: E402
    BROKER_JVM_OPTIONS,
    BenchWorker,
    Broker,
    CpuMeter,
    caught_up,
    code_state,
    directory_bytes,
    fresh_settings,
    group_coordinator_ready,
    load_average,
    loaded,
    local_broker,
    now_iso,
    scratch_dir,
    vm_status,
)
from models.config import DetectionConfig  # noqa: E402
from streams.kafka_clients import end_offsets  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import create_topics  # noqa: E402

# The join's restore line; it says "states" (transactions and incident states) and counts
# the unreadable ones since the incident tracker; "transactions" before that.
RESTORED = re.compile(
    r"restored partitions \[([0-9, ]*)\]: (\d+) (?:transactions|states)"
    r"(?: \(\d+ unreadable\))? in ([0-9.]+) s"
)
# Faust's own milestones at INFO, first occurrence of each (from the log's timestamps).
MILESTONES = {
    "group_assigned": re.compile(r"Setting newly assigned partitions"),
    "changelog_caught_up": re.compile(r"changelog catch-up of"),
    "changelog_read_started": re.compile(r"Recovery\]: active offsets at start of reading"),
    "changelog_restored": re.compile(r"Recovery\]: Restore complete"),
    "faust_ready": re.compile(r"\[\^Worker\]: Ready"),
    "state_restored": RESTORED,
}
CATCH_UP = re.compile(r"changelog catch-up of \[([0-9, ]*)\]: (\d+) records in ([0-9.]+) s")
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
BASE = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
SPREAD_SECONDS = 300


def request(number: int, total: int) -> bytes:
    """A minimal valid terminal request; transaction ``number`` of ``total``."""
    sent = BASE + timedelta(seconds=number * SPREAD_SECONDS // max(total, 1))
    instant = sent.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'{{"event_id":"r-{number}","type":"request","terminal_id":"T-{number // 1000:06d}",'
        f'"merchant_id":"M-{number % 200:03d}","stan":"{number % 1000:06d}",'
        f'"transmitted_at":"{instant}","occurred_at":"{instant}","amount_minor":'
        f'{1000 + number % 9000},"currency":"EUR","card_token":"tok_{number % 50_000}"}}'
    ).encode()


async def _produce(settings: Settings, first: int, count: int, total: int) -> float:
    partitions = settings.input_partitions
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for number in range(first, first + count):
            partition = (number // 256) % partitions
            await producer.send(
                settings.terminal_topic, request(number, total), partition=partition
            )
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


def produce(settings: Settings, first: int, count: int, total: int) -> float:
    return asyncio.run(_produce(settings, first, count, total))


def milestones(log: str, started_wall: float) -> dict[str, float]:
    """Seconds from the process start to the first log line of each milestone."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        stamp = LOG_TIME.match(line)
        if stamp is None:
            continue
        for name, pattern in MILESTONES.items():
            if name not in found and pattern.search(line):
                moment = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                found[name] = round(moment.timestamp() - started_wall, 2)  # local time
    return found


def restart(
    settings: Settings, broker: Broker, name: str, log_dir: Path, timeout: float
) -> dict[str, Any]:
    """Start a worker, wait for its "restored partitions" line; figures; stop it."""
    worker = BenchWorker(settings, name=name, log_dir=log_dir, loglevel="info")
    meter = CpuMeter({"broker": broker.pid or 0})
    worker.start()
    meter.add("worker", worker.pid)
    result: dict[str, Any] = {"data_dir": name, "load_average_at_start": load_average()}
    try:
        seconds, line = worker.wait_for_line(RESTORED, timeout)
        memory = vm_status(worker.pid)
        match = RESTORED.search(line)
        assert match is not None
        result.update(
            ok=True,
            seconds_start_to_restored=round(seconds, 2),
            restored_transactions=int(match.group(2)),
            restored_partitions=match.group(1),
            join_restore_seconds_logged=float(match.group(3)),
            rss_bytes=memory.get("VmRSS"),
            peak_rss_bytes=memory.get("VmHWM"),
        )
        result["cpu"] = meter.stop()
        caught_up(settings, worker, timeout)  # the poke, processed and committed
    except (TimeoutError, RuntimeError) as error:
        result.update(ok=False, error=str(error), log_tail=worker.log_tail(40))
        if not meter.result:
            result["cpu"] = meter.stop()
    finally:
        stopping = time.monotonic()
        result["exit_code"] = worker.stop(timeout=600)
        result["stop_seconds"] = round(time.monotonic() - stopping, 2)
    log = worker.log_since_start()
    result["milestones_s"] = milestones(log, worker.started_wall)
    result["changelog_catch_up"] = [
        {"partitions": found[0], "records": int(found[1]), "seconds": float(found[2])}
        for found in CATCH_UP.findall(log)
    ]
    print(
        f"{name}: restored {result.get('restored_transactions')} transactions "
        f"{result.get('seconds_start_to_restored')} s after start "
        f"(milestones {result['milestones_s']}); RSS {result.get('rss_bytes', 0) / 2**20:,.0f} "
        f"MiB; others used {result['cpu'].get('others_cores')} cores"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--open", type=int, default=1_000_000, help="open transactions")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per step, seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    total = args.open
    result: dict[str, Any] = {
        "date": now_iso(),
        "machine": machine(),
        "code": code_state(),
        "broker_jvm_options": list(BROKER_JVM_OPTIONS),
        "open_transactions": total,
    }
    detection = DetectionConfig(idle_advance=30 * 86_400.0)
    with scratch_dir(args.keep) as scratch, local_broker(scratch) as broker:
        settings = fresh_settings(broker, scratch / "state", "rec", detection=detection)
        create_topics(settings)
        group_coordinator_ready(settings)
        seconds = produce(settings, 0, total, total)
        print(f"produced {total:,} requests in {seconds:.1f} s ({total / seconds:,.0f}/s)")
        result["produce_seconds"] = round(seconds, 2)
        logs = scratch / "logs"

        builder = BenchWorker(settings, name="w1", log_dir=logs, loglevel="info")
        meter = CpuMeter({"broker": broker.pid or 0})
        builder.start()
        meter.add("worker", builder.pid)
        try:
            seconds = caught_up(settings, builder, args.timeout, stall=600)
            memory = vm_status(builder.pid)
            build_cpu = meter.stop()
        except BaseException:
            with contextlib.suppress(Exception):
                builder.stop(timeout=60)
            raise
        stopping = time.monotonic()
        code = builder.stop(timeout=600)
        stop_seconds = time.monotonic() - stopping
        changelog = end_offsets(settings, f"{settings.app_id}-txns-changelog")
        result["build"] = {
            "seconds_start_to_caught_up": round(seconds, 2),
            "events_per_second": round(total / seconds, 1),
            "rss_bytes_caught_up": memory.get("VmRSS"),
            "peak_rss_bytes": memory.get("VmHWM"),
            "stop_seconds": round(stop_seconds, 2),
            "exit_code": code,
            "txns_changelog_records": sum(changelog.values()),
            "rocksdb_bytes": directory_bytes(builder.settings.data_dir),
            "cpu": build_cpu,
        }
        print(
            f"built: {total:,} open transactions in {seconds:.1f} s, RSS "
            f"{(memory.get('VmRSS') or 0) / 2**20:,.0f} MiB, stopped in {stop_seconds:.1f} s; "
            f"{sum(changelog.values()):,} changelog records"
        )

        produce(settings, total, 1, total + 2)  # the join restores on its first batch
        result["restart_local_state"] = restart(settings, broker, "w1", logs, args.timeout)
        produce(settings, total + 1, 1, total + 2)
        result["fresh_empty_data_dir"] = restart(settings, broker, "w2", logs, args.timeout)
    result["loaded_while_measuring"] = [
        name
        for name in ("restart_local_state", "fresh_empty_data_dir")
        if loaded(result[name].get("cpu", {}))
    ]
    result["load_average_at_end"] = load_average()
    (args.out / "recovery.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
