"""Instructions per capture line, stage by stage (valgrind cachegrind).

    .venv/bin/python bench/stage_instructions.py [--lines 40000]

Instruction counts do not depend on what else the machine is doing, so they show where
the replay's time goes even on a noisy VM. Each stage is measured by running the replay
with everything after it switched off, under ``valgrind --tool=cachegrind
--cache-sim=no``, minus a run that only imports and reads the file. Needs valgrind
(Debian package ``valgrind``). Uses the first ``--lines`` lines of the 1M capture of
``bench/replay_throughput.py``.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Each stage of the replay includes the ones before it; "decode" and "typed" are the
# decoders alone, for comparison.
STAGES = ["baseline", "decode", "typed", "read", "checks", "validate", "join", "all"]
LABELS = {
    "read": "read lines in blocks",
    "checks": "+ typed decode, block checks, loop",
    "validate": "+ validate()",
    "join": "+ the join (no window close)",
    "all": "+ window close, verdicts, alerts",
}


def run_stage(stage: str, capture: Path) -> None:
    """Run one stage in this process (the child valgrind watches)."""
    import msgspec  # noqa: PLC0415

    import models.capture as capture_module  # noqa: PLC0415
    import streams.replay as replay_module  # noqa: PLC0415
    from models.reconciler import Applied, Reconciler  # noqa: PLC0415

    lines = capture.read_bytes().splitlines()
    if stage == "baseline":
        return
    if stage == "decode":
        for line in lines:
            msgspec.json.decode(line)
        return
    if stage == "typed":
        decode = capture_module._TYPED_LINE.decode
        for line in lines:
            decode(line)
        return

    class Upto(Reconciler):
        def apply_valid(self, source, event, occurred, second, lane=0):
            if stage in ("checks", "validate"):
                return Applied.ACCEPTED
            return super().apply_valid(source, event, occurred, second, lane)

        def apply_watermark(self, source, at_us, lane=0):
            if stage in ("checks", "validate"):
                return Applied.ACCEPTED
            return super().apply_watermark(source, at_us, lane)

        def _close_passed(self, now: int) -> None:
            if stage != "join":
                super()._close_passed(now)

    if stage == "read":
        replay_module.feed_lines = lambda reconciler, lines, skew, lanes=None: []  # type: ignore[attr-defined,assignment]
    if stage == "checks":
        capture_module.validate = lambda event, skew: (0, 0)  # type: ignore[attr-defined,assignment]
    replay_module.Reconciler = Upto  # type: ignore[attr-defined]
    replay_module.replay([capture], io.BytesIO())


def instructions(stage: str, capture: Path) -> int:
    result = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--stage",
            stage,
            "--capture",
            str(capture),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    assert match, result.stderr[-500:]
    return int(match.group(1).replace(",", ""))


def main() -> int:
    from bench.replay_throughput import bench_arguments, capture_for  # noqa: PLC0415

    parser = bench_arguments(__doc__ or "")
    parser.add_argument("--lines", type=int, default=40_000)
    parser.add_argument("--stage", choices=STAGES, help="(internal) run one stage")
    parser.add_argument("--capture", type=Path, help="(internal) the sample to run")
    args = parser.parse_args()
    if args.stage:
        run_stage(args.stage, args.capture)
        return 0
    full = capture_for(args.transactions, args.seed, args.data)
    sample = args.data / f"{full.stem}.first{args.lines}.jsonl"
    with full.open("rb") as source, sample.open("wb") as target:
        for _ in range(args.lines):
            target.write(source.readline())
    base = instructions("baseline", sample)
    per_line = {s: (instructions(s, sample) - base) / args.lines for s in STAGES[1:]}
    print(f"instructions per line, first {args.lines:,} lines of {full.name}")
    print(f"  {'msgspec.json.decode alone':36s} {per_line['decode']:>9,.0f}")
    print(f"  {'typed decode alone (ours)':36s} {per_line['typed']:>9,.0f}")
    previous = 0.0
    for stage in STAGES[3:]:
        added = per_line[stage] - previous
        print(f"  {LABELS[stage]:36s} {per_line[stage]:>9,.0f}  (+{added:,.0f})")
        previous = per_line[stage]
    return 0


if __name__ == "__main__":
    sys.exit(main())
