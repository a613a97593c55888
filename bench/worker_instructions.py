"""Instructions per input message of the worker's two CPU stages, for an A/B of two trees.

    .venv/bin/python bench/worker_instructions.py [--lines 40000] [--against DIR]

On this noisy 2-core VM an end-to-end worker run moves ±10-15 % from one run to the
next, so a change worth 5 % of the worker cannot be seen there. Instruction counts
(valgrind cachegrind, ``--cache-sim=no``) do not depend on the machine's mood. Two
workloads, each minus a run that only imports and reads the sample:

* **ingest**: the ingest agent's routing of every message (decode, validate, re-key),
  in batches of 1,000 per source, as the worker calls it;
* **join**: the core the join runs (``debitwatch replay``, incident model ``default``)
  on the sample split by merchant into the worker's 4 join partitions, one replay each
  (each partition's tracker takes its own 15 s steps, as in a worker).

``--against DIR``: also measure the source tree in DIR (e.g. a ``git worktree`` of the
commit before a change) with this same script, and print both. Uses the first
``--lines`` lines of the 50,000-transaction capture of ``bench/stream_throughput.py``.
Results: ``bench/results/worker_instructions.json``. Needs valgrind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("baseline", "ingest", "join")
JOIN_PARTITIONS = 4


def run_workload(workload: str, sample: Path, parts: list[Path]) -> None:
    """One workload in this process (the child valgrind watches); imports from the
    current directory's tree, so the same script measures either side of an A/B."""
    sys.path.insert(0, os.getcwd())
    from models.capture import parse_line  # noqa: PLC0415
    from models.incident_scoring import load_scorer  # noqa: PLC0415
    from streams.replay import replay  # noqa: PLC0415
    from streams.worker import ingest  # noqa: PLC0415

    lines = [line for line in sample.read_bytes().splitlines() if line.strip()]
    scorer = load_scorer("default")
    if workload == "ingest":
        by_source: dict[str, list[bytes]] = {"terminal": [], "issuer": []}
        for line in lines:
            parsed = parse_line(line)
            assert isinstance(parsed, tuple), parsed
            by_source[parsed[0]].append(parsed[1])
        common: dict[str, Any] = {
            "topic": "pos.events",
            "partition": 0,
            "join_partitions": JOIN_PARTITIONS,
            "input_partitions": 4,
            "max_clock_skew": timedelta(seconds=120),
        }
        for source, raws in by_source.items():
            for start in range(0, len(raws), 1000):
                chunk = raws[start : start + 1000]
                times: list[int] = []
                if hasattr(ingest, "route_batch"):
                    messages = [(start + i, raw) for i, raw in enumerate(chunk)]
                    ingest.route_batch(source, messages, times=times, **common)  # type: ignore[arg-type]
                else:  # the tree before route_batch: one call per message
                    for i, raw in enumerate(chunk):
                        ingest.route(source, raw, offset=start + i, times=times, **common)  # type: ignore[arg-type]
    elif workload == "join":
        with open(os.devnull, "wb") as sink:
            for part in parts:
                replay([part], sink, incidents=scorer)


def split_by_join_partition(sample: Path, directory: Path) -> list[Path]:
    """The sample's lines per join partition (watermarks go to every partition)."""
    sys.path.insert(0, str(ROOT))
    import msgspec  # noqa: PLC0415

    from streams.worker.wire import join_partition  # noqa: PLC0415

    outs = [directory / f"part{p}.jsonl" for p in range(JOIN_PARTITIONS)]
    handles = [path.open("wb") for path in outs]
    for line in sample.read_bytes().splitlines(keepends=True):
        merchant = msgspec.json.decode(line).get("event", {}).get("merchant_id")
        for number, handle in enumerate(handles):
            if merchant is None or join_partition(merchant, JOIN_PARTITIONS) == number:
                handle.write(line)
    for handle in handles:
        handle.close()
    return outs


def instructions(tree: Path, workload: str, sample: Path, parts: list[Path]) -> int:
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--workload",
        workload,
        "--sample",
        str(sample),
        "--parts",
        *map(str, parts),
    ]
    result = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=True)
    match = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    assert match, result.stderr[-500:]
    return int(match.group(1).replace(",", ""))


def measure(tree: Path, sample: Path, parts: list[Path], lines: int) -> dict[str, Any]:
    counts = {w: instructions(tree, w, sample, parts) for w in WORKLOADS}
    commit = _git(tree, "rev-parse", "--short", "HEAD")
    dirty = _git(tree, "status", "--porcelain", "models", "streams")
    per_message = {
        w: round((counts[w] - counts["baseline"]) / lines) for w in WORKLOADS if w != "baseline"
    }
    return {"tree": str(tree), "commit": commit + ("+dirty" if dirty else ""), **per_message}


def _git(tree: Path, *arguments: str) -> str:
    done = subprocess.run(["git", *arguments], cwd=tree, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from bench.replay_throughput import bench_arguments, capture_for  # noqa: PLC0415

    parser = bench_arguments(__doc__ or "")
    parser.set_defaults(transactions=50_000)
    parser.add_argument("--lines", type=int, default=40_000)
    parser.add_argument("--against", type=Path, help="another source tree to measure")
    parser.add_argument("--workload", choices=WORKLOADS, help="(internal) run one workload")
    parser.add_argument("--sample", type=Path, help="(internal)")
    parser.add_argument("--parts", type=Path, nargs="*", default=[], help="(internal)")
    args = parser.parse_args()
    if args.workload:
        run_workload(args.workload, args.sample, args.parts)
        return 0
    full = capture_for(args.transactions, args.seed, args.data)
    with tempfile.TemporaryDirectory(prefix="dw-instructions-") as name:
        directory = Path(name)
        sample = directory / "sample.jsonl"
        with full.open("rb") as source, sample.open("wb") as target:
            for _ in range(args.lines):
                target.write(source.readline())
        parts = split_by_join_partition(sample, directory)
        trees = [ROOT] + ([args.against.resolve()] if args.against else [])
        results = [measure(tree, sample, parts, args.lines) for tree in trees]
    print(f"instructions per input message, first {args.lines:,} lines of {full.name}")
    for result in results:
        ingest, join = result["ingest"], result["join"]
        print(f"  {result['commit']:>16s}  ingest {ingest:>9,}  join {join:>9,}")
    args.out.mkdir(parents=True, exist_ok=True)
    output = {"capture": full.name, "lines": args.lines, "trees": results}
    (args.out / "worker_instructions.json").write_text(json.dumps(output, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
