"""What two processes at once can reach on this machine, with no Kafka at all.

    .venv/bin/python bench/scale_ceiling.py [--transactions 50000] [--seed 11] [--rounds 2]

The scale-out goal of issue 7 (two worker processes ≥ 1.7 times one) assumes that two
processes on two cores each run as fast as one alone. This measures that assumption on
the worker's own per-event work: ``debitwatch replay`` of the same capture (read,
validate, join, score, write; one process, no broker), first alone, then two copies
started together. Per round, the better of the two alone-runs is kept, and the figures
are:

* ``pair_throughput_ratio``: lines both copies got through per second of wall time,
  over one copy alone (2.0: the two cores are as good as two machines);
* ``cpu_seconds_per_copy`` alone and in the pair: the same work, so CPU seconds that
  grow in the pair say the cores slow each other down (shared caches, memory
  bandwidth, or vCPUs that share a host core), not that anything waits.

The same is run for a pure-Python loop (no I/O, no allocation beyond small ints), as a
reading of the machine alone. Nothing else should run meanwhile: ``others_cores`` in the
result says what did. Results go to ``bench/results/scale_ceiling.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import bench_arguments  # noqa: E402
from bench.stream_common import load_average, machine_busy_seconds, run_header  # noqa: E402

DEBITWATCH = str(ROOT / ".venv" / "bin" / "debitwatch")
# About 10 s of one core here: long enough that start-up is noise.
LOOP = "n = 0\nfor i in range(120_000_000):\n    n += i & 7\n"


def run_together(commands: list[list[str]]) -> dict[str, Any]:
    """Start every command at once; wall seconds until the last ends, CPU of each (its
    resource usage at exit), and what the rest of the machine used meanwhile."""
    busy_before = machine_busy_seconds()
    started = time.monotonic()
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in commands
    ]
    cpu: list[float] = []
    for command, process in zip(commands, processes, strict=True):
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{command} exited {process.returncode}")
        cpu.append(round(usage.ru_utime + usage.ru_stime, 2))
    wall = time.monotonic() - started
    others = max(0.0, machine_busy_seconds() - busy_before - sum(cpu))
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": cpu,
        "others_cores": round(others / wall, 2),
    }


def ceiling(command: list[str], rounds: int) -> dict[str, Any]:
    """One copy alone (better of two) and two copies at once, ``rounds`` times."""
    results: list[dict[str, Any]] = []
    for _ in range(rounds):
        alone = min((run_together([command]) for _ in range(2)), key=lambda r: r["wall_seconds"])
        pair = run_together([command, command])
        results.append(
            {
                "alone": alone,
                "pair": pair,
                "pair_throughput_ratio": round(2 * alone["wall_seconds"] / pair["wall_seconds"], 3),
                "cpu_seconds_per_copy": {
                    "alone": alone["cpu_seconds"][0],
                    "pair": round(sum(pair["cpu_seconds"]) / 2, 2),
                },
            }
        )
    return {"command": command, "rounds": results}


def main() -> int:
    parser = bench_arguments(__doc__)
    parser.set_defaults(transactions=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    capture, result = run_header(args)
    result["load_average_at_start"] = load_average()
    result["cpu_count"] = os.cpu_count()
    replay = [DEBITWATCH, "replay", str(capture), "-o", os.devnull]
    result["replay"] = ceiling(replay, args.rounds)
    result["python_loop"] = ceiling([sys.executable, "-c", LOOP], args.rounds)
    result["load_average_at_end"] = load_average()
    (args.out / "scale_ceiling.json").write_text(json.dumps(result, indent=2) + "\n")
    for name in ("replay", "python_loop"):
        for number, one in enumerate(result[name]["rounds"], 1):
            print(
                f"{name} round {number}: alone {one['alone']['wall_seconds']} s, "
                f"two at once {one['pair']['wall_seconds']} s: "
                f"{one['pair_throughput_ratio']}x one; CPU per copy "
                f"{one['cpu_seconds_per_copy']['alone']} s alone, "
                f"{one['cpu_seconds_per_copy']['pair']} s in the pair"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
