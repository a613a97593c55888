"""The baseline of the stream benchmarks: a plain Faust agent that only counts messages.

    .venv/bin/python bench/plain_faust_agent.py [--transactions 50000] [--seed 11]

Starts its own broker, produces the same capture as ``bench/stream_throughput.py`` to
fresh topics, then runs, in a child process, a Faust app (faust-streaming, at_least_once,
memory store, nothing of debitwatch) with one agent on both input topics whose body only
counts the raw messages (``async for _ in stream: n += 1``). The child stops itself when
it has counted every message and reports: seconds from process start, from its first
message to its last, and messages/s. This is what Faust's per-message path costs with
no work at all: the ceiling of any agent that takes its messages one at a time (the
issue quotes ~5,000/s). Results: ``bench/results/plain_faust_agent.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import faust

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import bench_arguments  # noqa: E402
from bench.stream_common import (  # noqa: E402
    fresh_settings,
    group_coordinator_ready,
    load_average,
    local_broker,
    run_header,
    scratch_dir,
)
from streams.produce import produce_capture  # noqa: E402
from streams.topics import create_topics  # noqa: E402


def child(bootstrap: str, app_id: str, topics: list[str], expected: int, out: Path) -> None:
    """The Faust app (runs in its own process: Faust owns the event loop)."""
    started = time.perf_counter()
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        autodiscover=False,
    )
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    seen = {"count": 0, "first": 0.0}

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for _ in stream:
            if not seen["count"]:
                seen["first"] = time.perf_counter()
            seen["count"] += 1
            if seen["count"] >= expected:
                now = time.perf_counter()
                out.write_text(
                    json.dumps(
                        {
                            "messages": seen["count"],
                            "seconds_from_start": round(now - started, 3),
                            "seconds_first_to_last": round(now - seen["first"], 3),
                            "events_per_second_first_to_last": round(
                                seen["count"] / (now - seen["first"]), 1
                            ),
                            "events_per_second_from_start": round(
                                seen["count"] / (now - started), 1
                            ),
                        }
                    )
                )
                os._exit(0)  # the figure is written; no need for Faust's clean stop

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()


def main() -> int:
    parser = bench_arguments(__doc__)
    parser.set_defaults(transactions=50_000)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    capture, result = run_header(args)
    with scratch_dir(False) as scratch, local_broker(scratch) as broker:
        settings = fresh_settings(broker, scratch / "state", "plain")
        create_topics(settings)
        group_coordinator_ready(settings)
        produced = produce_capture(settings, [capture])
        report = scratch / "plain.json"
        command = [
            sys.executable,
            __file__,
            "--child",
            broker.bootstrap,
            settings.app_id,
            settings.terminal_topic,
            settings.issuer_topic,
            str(produced.messages),
            str(report),
        ]
        result["load_average_at_start"] = load_average()
        with (scratch / "plain.log").open("wb") as log:
            process = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout, check=False
            )
        if not report.exists():
            tail = (scratch / "plain.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"the plain agent did not finish (exit {process.returncode}):\n{tail}")
        result["plain_faust_agent"] = json.loads(report.read_text())
        result["load_average_at_end"] = load_average()
    (args.out / "plain_faust_agent.json").write_text(json.dumps(result, indent=2) + "\n")
    figures = result["plain_faust_agent"]
    print(
        f"plain Faust agent: {figures['events_per_second_first_to_last']:,.0f} msgs/s first to "
        f"last message ({figures['messages']:,} in {figures['seconds_first_to_last']:.1f} s; "
        f"{figures['seconds_from_start']:.1f} s from process start)"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, bootstrap, app_id, terminal, issuer, expected, out = sys.argv
        child(bootstrap, app_id, [terminal, issuer], int(expected), Path(out))
    else:
        sys.exit(main())
