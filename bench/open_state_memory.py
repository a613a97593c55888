"""Memory per open transaction, with 1,000,000 transactions open at once.

    .venv/bin/python bench/open_state_memory.py [--transactions 1000000] [--seed 11]

Feeds the simulated capture of ``bench/replay_throughput.py`` (default profile: most
sales have 4 events, some up to 8, ids like the simulator's) to one
:class:`~models.reconciler.Reconciler` whose window is 30 days, so every transaction
stays open, and its final watermarks are dropped. Then it reports two figures:

* **structural**: every object the reconciler keeps for its transactions, summed with
  ``sys.getsizeof`` (key strings, ``Txn`` objects, packed records, event-id tuples and
  strings, card tokens, the store's hash table, due-queue and recent-index slots;
  interned merchant ids counted once) — what the state costs;
* **RSS delta**: resident memory after minus before, divided by the open count — the
  upper bound, including allocator slack.

A second run uses 36-character UUID event ids (as many gateways send) on the same
transactions, to show how the figure scales with id length. Each run is its own process,
so one run's freed memory cannot hide the next one's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import bench_arguments, capture_for, machine  # noqa: E402
from models.capture import feed_lines  # noqa: E402
from models.config import DetectionConfig  # noqa: E402
from models.events import Source, TransactionEvent  # noqa: E402
from models.reconciler import Applied, Reconciler  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def structural_bytes(reconciler: Reconciler) -> int:
    size = sys.getsizeof
    store = reconciler.store
    total = size(store)
    merchants: set[int] = set()
    for key, txn in store.items():
        total += size(key) + size(txn) + size(txn.records) + size(txn.ids)
        total += size(txn.card_token)
        if txn.alerts is not None:
            total += size(txn.alerts)
        if id(txn.merchant_id) not in merchants:
            merchants.add(id(txn.merchant_id))
            total += size(txn.merchant_id)
    closing = reconciler._closing
    total += size(closing._heap) + size(closing._buckets)
    total += sum(size(bucket) for bucket in closing._buckets.values())
    recent = reconciler._recent
    total += size(recent) + sum(size(keys) for keys in recent.values())
    return total


class _AllOpen(Reconciler):
    """Keeps every transaction open: ignores watermarks (the capture's final far-future
    ones would close everything), and optionally swaps event ids for UUIDs."""

    uuid_ids = False

    def apply_watermark(self, source: Source, at_us: int, lane: int = 0) -> Applied:
        return Applied.WATERMARK

    def apply_valid(
        self, source: Source, event: TransactionEvent, occurred: int, second: int, lane: int = 0
    ) -> Applied:
        if self.uuid_ids:
            event.event_id = str(uuid.uuid5(_NAMESPACE, event.event_id))
        return super().apply_valid(source, event, occurred, second, lane)


_NAMESPACE = uuid.UUID(int=0)


def open_everything(capture: Path, uuid_ids: bool) -> dict[str, float]:
    config = DetectionConfig(match_window=30 * 86400.0)
    skew = timedelta(seconds=config.max_clock_skew)
    reconciler = _AllOpen(config)
    reconciler.uuid_ids = uuid_ids
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    with capture.open("rb") as handle:
        while block := [line.strip() for line in handle.readlines(1 << 22) if line.strip()]:
            feed_lines(reconciler, block, skew)
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    open_count = reconciler.open_transactions
    assert open_count == len(reconciler.store), "every transaction should still be open"
    events = reconciler.stats.events - reconciler.stats.duplicates
    return {
        "open_transactions": open_count,
        "events_held": events,
        "events_per_transaction": events / open_count,
        "structural_bytes_per_open_transaction": structural_bytes(reconciler) / open_count,
        "rss_delta_bytes_per_open_transaction": (after - before) / open_count,
        "seconds": seconds,
    }


def main() -> int:
    parser = bench_arguments(__doc__)
    parser.add_argument("--variant", choices=["simulator_ids", "uuid_ids"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    capture = capture_for(args.transactions, args.seed, args.data)
    if args.variant:
        print(json.dumps(open_everything(capture, args.variant == "uuid_ids")))
        return 0
    result: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "capture": capture.name,
    }
    for label in ("simulator_ids", "uuid_ids"):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                label,
                "--transactions",
                str(args.transactions),
                "--seed",
                str(args.seed),
                "--data",
                str(args.data),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        result[label] = figures
        print(
            f"{label:14s} {figures['open_transactions']:,} open, "
            f"{figures['events_per_transaction']:.2f} events each: "
            f"{figures['structural_bytes_per_open_transaction']:.0f} B structural, "
            f"{figures['rss_delta_bytes_per_open_transaction']:.0f} B RSS per open transaction"
        )
    (args.out / "open_state_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
