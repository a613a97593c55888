"""What scoring costs: incident model and deadlines on, against incident scoring off.

    .venv/bin/python bench/scoring_cost.py [--transactions 50000] [--seed 11]

Two measurements on the same capture (default profile: 1,000 terminals, 200 merchants,
20 sales/s), each with ``incident_model = none`` ("before": what the workers did before
the incident model) and ``default`` ("after"):

* **the core**: ``debitwatch replay`` in this process, CPU seconds per event (best of
  two alternating passes each, so a neighbour's load in one pass does not decide);
* **one stream worker** on a local broker (as ``bench/stream_throughput.py``: a fresh
  backlog per run, start to caught up): the worker process's CPU seconds per input
  message, the figure the issue's "at most 15 % of the worker's per-event cost" is
  about, and its events/s.

Deadlines and the severity score are computed in both runs (they run only when an alert
is published: a few per thousand events). Results: ``bench/results/scoring_cost.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay_throughput import bench_arguments
from bench.stream_common import local_broker, run_header, scratch_dir
from bench.stream_throughput import prepared, run_worker
from models.incident_scoring import load_scorer
from streams.replay import replay

MODELS = ("none", "default")


def core_cost(capture: Path) -> dict[str, Any]:
    """CPU microseconds per event of the replay, per model setting (best of two)."""
    best: dict[str, float] = {}
    events = 0
    for _ in range(2):
        for spec in MODELS:
            scorer = load_scorer(spec)
            started = time.process_time()
            with open(os.devnull, "wb") as sink:
                summary = replay([capture], sink, incidents=scorer)
            seconds = time.process_time() - started
            events = summary.events
            best[spec] = min(best.get(spec, float("inf")), seconds)
    per_event = {spec: round(best[spec] / events * 1e6, 2) for spec in MODELS}
    return {
        "events": events,
        "cpu_us_per_event": per_event,
        "added": round(per_event["default"] / per_event["none"] - 1, 4),
    }


def main() -> int:
    parser = bench_arguments(__doc__)
    parser.set_defaults(transactions=50_000)
    parser.add_argument("--timeout", type=float, default=900.0, help="per worker run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    capture, result = run_header(args)
    result["core"] = core_cost(capture)
    print(f"core: {result['core']}")
    workers: dict[str, Any] = {}
    with scratch_dir(args.keep) as scratch, local_broker(scratch) as broker:
        for spec in MODELS:
            settings, produced = prepared(
                broker, scratch, f"score-{spec}", capture, incident_model=spec
            )
            run = run_worker(
                settings, broker, produced.messages, scratch, f"worker-{spec}", args.timeout
            )
            run.pop("firing", None)
            cpu = run.get("cpu", {}).get("cpu_seconds", {}).get("worker")
            if run.get("ok") and cpu:
                run["worker_cpu_us_per_message"] = round(cpu / produced.messages * 1e6, 1)
            workers[spec] = run
    result["worker"] = workers
    before = workers["none"].get("worker_cpu_us_per_message")
    after = workers["default"].get("worker_cpu_us_per_message")
    if before and after:
        result["worker_added"] = round(after / before - 1, 4)
    print(f"worker CPU per message: none {before} us, default {after} us")
    (args.out / "scoring_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
