"""Incident detection on simulated days: the figures of docs/incidents.md.

    .venv/bin/python bench/incident_day.py [--model PATH] [--seed 5]

Three simulated days of a 100-terminal, 20-merchant fleet at 2 sales/s (172,800 sales,
24 h of event time; per terminal the same traffic as the default 1,000 terminals at
20/s), each run through ``debitwatch simulate``, ``replay`` and ``evaluate`` exactly as a
user would (the commands are printed):

* **incidents**: the default profile plus 24 injected incidents a day, the four types
  in equal shares: detection rate, median delay from onset, false incidents;
* **everyday**: the default profile (~3 % single-sale anomalies), no incidents: false
  incidents per day;
* **normal**: the normal profile (no anomalies at all), no incidents: the same.

Results: ``bench/results/incident_day.json`` and the ``evaluate`` tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay_throughput import machine
from bench.stream_common import code_state, now_iso
from models.evaluation import evaluate_incidents
from models.final_states import ALERT_DECODER
from models.truth import IncidentTruth, decode_truth_line

DEBITWATCH = [sys.executable, "-m", "streams.cli"]
FLEET = ["--transactions", "172800", "--rate", "2", "--terminals", "100", "--merchants", "20"]
INCIDENTS = [
    "--set", "incidents_per_day=24",
    "--set", "merchant_outage_share=0.25", "--set", "issuer_slowdown_share=0.25",
    "--set", "faulty_terminal_share=0.25", "--set", "duplicate_burst_share=0.25",
]  # fmt: skip
DAYS: dict[str, list[str]] = {
    "incidents": ["--profile", "default", *INCIDENTS],
    "everyday": ["--profile", "default"],
    "normal": ["--profile", "normal"],
}


def run(command: list[str]) -> str:
    print("$ debitwatch " + " ".join(command[3:]), flush=True)
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: an evaluate threshold not met, still a result
        raise SystemExit(f"failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout + done.stderr


def day(name: str, seed: int, model: str, folder: Path) -> dict[str, Any]:
    capture, truth, alerts = (folder / f"{name}-{part}.jsonl" for part in ("c", "t", "a"))
    run([*DEBITWATCH, "simulate", *DAYS[name], *FLEET, "--seed", str(seed),
         "-o", str(capture), "--truth", str(truth)])  # fmt: skip
    started = time.perf_counter()
    run([*DEBITWATCH, "replay", str(capture), "-o", str(alerts), "--incident-model", model, "-q"])
    replay_seconds = time.perf_counter() - started
    report = run([*DEBITWATCH, "evaluate", "--truth", str(truth), str(alerts),
                  "--span-days", "1", "--min-incident-detection", "0.95",
                  "--max-incident-delay", "120", "--max-false-incidents", "1"])  # fmt: skip
    print(report, flush=True)
    lines = [decode_truth_line(line) for line in truth.read_bytes().splitlines() if line]
    injected = [line for line in lines if isinstance(line, IncidentTruth)]
    published = [ALERT_DECODER.decode(line) for line in alerts.read_bytes().splitlines() if line]
    score = evaluate_incidents(injected, published)
    return {
        "seed": seed,
        "injected": score.injected,
        "detected": score.detected,
        "detection_rate": round(score.detection_rate, 4),
        "by_type": score.by_type,
        "median_delay_s": score.median_delay_s,
        "delays_s": sorted(score.delays_s),
        "incident_alerts_matching": sum(score.alerts_per_incident.values()),
        "false_incidents": len(score.false_alerts),
        "replay_seconds": round(replay_seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--model", default="default", help="incident model (replay's option)")
    parser.add_argument("--seed", type=int, default=5, help="seed of the first day")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"date": now_iso(), "machine": machine(), "code": code_state()}
    with tempfile.TemporaryDirectory(prefix="dw-incident-day-") as name:
        for offset, day_name in enumerate(DAYS):
            result[day_name] = day(day_name, args.seed + offset, args.model, Path(name))
            print(f"{day_name}: {json.dumps(result[day_name])}", flush=True)
    (args.out / "incident_day.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
