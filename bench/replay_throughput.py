"""Replay throughput against the decode-only rate of the same lines, in the same run.

    .venv/bin/python bench/replay_throughput.py [--transactions 1000000] [--seed 11]

Generates (or reuses) a simulated capture (default profile), then measures on it:

* decode-only baselines, parsing each line and nothing else: ``msgspec.json.decode``
  (the fastest parser we have, the ratio the goal is set against), ``orjson.loads``
  when installed, and the standard library's ``json.loads``;
* ``debitwatch replay`` end to end (read, validate, join, judge, score, write alerts)
  through the same function the CLI calls, alerts written to /dev/null.

The baselines run before *and* after the replay and the better of the two is kept, so
a neighbour's load during one pass does not flatter the ratio. Results go to
``bench/results/replay_throughput.json`` and are quoted in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams import gc_policy  # noqa: E402
from streams.replay import replay  # noqa: E402


def capture_for(transactions: int, seed: int, directory: Path) -> Path:
    path = directory / f"capture-default-{transactions}-s{seed}.jsonl"
    if not path.exists():
        started = time.perf_counter()
        subprocess.run(
            [
                str(ROOT / ".venv/bin/debitwatch"),
                "simulate",
                "--transactions",
                str(transactions),
                "--seed",
                str(seed),
                "-o",
                str(path),
                "--truth",
                str(path.with_suffix(".truth")),
            ],
            check=True,
        )
        print(f"simulated {transactions:,} transactions in {time.perf_counter() - started:.1f} s")
    return path


def lines_per_second(lines: list[bytes], parse: Callable[[bytes], object]) -> float:
    started = time.perf_counter()
    for line in lines:
        parse(line)
    return len(lines) / (time.perf_counter() - started)


def baselines(lines: list[bytes]) -> dict[str, float]:
    rates = {
        "msgspec.json.decode": lines_per_second(lines, msgspec.json.decode),
        "json.loads": lines_per_second(lines, json.loads),
    }
    try:
        import orjson  # noqa: PLC0415 (optional)
    except ImportError:
        pass
    else:
        rates["orjson.loads"] = lines_per_second(lines, orjson.loads)
    return rates


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def bench_arguments(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark here takes: which capture, where results go."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser


def main() -> int:
    args = bench_arguments(__doc__).parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine()
    capture = capture_for(args.transactions, args.seed, args.data)
    lines = [line for line in capture.read_bytes().splitlines() if line.strip()]
    print(f"capture: {capture.name}, {len(lines):,} lines, {capture.stat().st_size:,} bytes")

    before = baselines(lines)
    gc_policy.apply_for_replay()  # what `debitwatch replay` runs with
    with open(os.devnull, "wb") as sink:
        summary = replay([capture], sink)
    after = baselines(lines)
    replay_rate = summary.lines / summary.seconds
    decode = {name: max(before[name], after[name]) for name in before}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "capture": {"path": capture.name, "lines": len(lines), "bytes": capture.stat().st_size},
        "decode_only_lines_per_second": decode,
        "decode_only_passes": {"before": before, "after": after},
        "replay": {
            "lines_per_second": replay_rate,
            "seconds": summary.seconds,
            "events": summary.events,
            "alerts_published": sum(summary.published.values()),
            "rejected": sum(summary.rejected.values()),
        },
        "ratio_to_decode_only": {name: replay_rate / rate for name, rate in decode.items()},
    }
    (args.out / "replay_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"replay: {replay_rate:,.0f} lines/s ({summary.seconds:.1f} s)")
    for name, rate in decode.items():
        print(f"  vs {name:20s} {rate:12,.0f} lines/s  ratio {replay_rate / rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
