"""simulate → replay → evaluate, through the CLI: the detector against the ground truth.

Every kind must be found exactly (precision and recall 1.0) on simulated traffic with
every fault of MISSION.md and realistic disorder, in each profile. The 1,000,000-sale
run quoted in the issue uses the same commands (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from models.capture import decode_line, feed_lines
from models.evaluation import evaluate
from models.events import Source, TransactionEvent, Watermark
from models.final_states import ALERT_DECODER
from models.instants import to_micros
from models.reconciler import Applied, Reconciler
from models.truth import TRUTH_DECODER
from streams.cli import EXIT_OK, EXIT_THRESHOLD, main


def simulate(
    tmp_path: Path, profile: str, transactions: int, seed: int, shards: int = 1
) -> tuple[Path, Path]:
    capture, truth = tmp_path / f"{profile}.jsonl", tmp_path / f"{profile}.truth"
    code = main(
        [
            "simulate",
            "--profile",
            profile,
            "--transactions",
            str(transactions),
            "--seed",
            str(seed),
            "-o",
            str(capture),
            "--truth",
            str(truth),
            "--shards",
            str(shards),
        ]
    )
    assert code == EXIT_OK
    return capture, truth


@pytest.mark.parametrize(
    ("profile", "transactions", "seed", "shards"),
    [
        ("default", 20_000, 5, 1),
        ("storm", 8_000, 6, 1),
        ("normal", 5_000, 7, 1),
        ("default", 10_000, 8, 2),
    ],
    ids=["default", "storm", "normal", "default-two-shards"],
)
def test_every_kind_is_found_exactly(
    tmp_path: Path, profile: str, transactions: int, seed: int, shards: int
) -> None:
    capture, truth = simulate(tmp_path, profile, transactions, seed, shards)
    alerts, dlq, summary = (tmp_path / name for name in ("a.jsonl", "d.jsonl", "s.json"))
    args = ["replay", str(capture), "-o", str(alerts), "--dlq", str(dlq)]
    assert main([*args, "--summary-json", str(summary), "-q"]) == EXIT_OK
    assert json.loads(summary.read_text())["rejected"] == {}
    assert dlq.read_bytes() == b""
    result = evaluate(
        [TRUTH_DECODER.decode(line) for line in truth.read_bytes().splitlines()],
        [ALERT_DECODER.decode(line) for line in alerts.read_bytes().splitlines()],
    )
    assert result.false_positive_ids == []
    assert result.false_negative_ids == []
    if profile == "normal":
        assert result.overall.true_positives == 0
    else:
        assert all(score.true_positives > 0 for score in result.per_kind.values())
        assert result.cause_accuracy >= 0.9
    verdict = [
        "evaluate",
        "--truth",
        str(truth),
        str(alerts),
        "--min-recall",
        "1",
        "--min-precision",
        "1",
    ]
    assert main(verdict) == EXIT_OK


def test_evaluate_fails_when_an_alert_is_missing(tmp_path: Path) -> None:
    capture, truth = simulate(tmp_path, "default", 3_000, 8)
    alerts = tmp_path / "a.jsonl"
    assert main(["replay", str(capture), "-o", str(alerts), "-q"]) == EXIT_OK
    firing = alerts.read_bytes().splitlines()
    alerts.write_bytes(b"\n".join(firing[1:]) + b"\n")  # drop one published alert
    assert (
        main(["evaluate", "--truth", str(truth), str(alerts), "--min-recall", "1"])
        == EXIT_THRESHOLD
    )


def test_fast_and_exact_decoding_agree_on_every_simulated_line(tmp_path: Path) -> None:
    """The replay's fast path accepts exactly what the exact path accepts, same event."""
    capture, _ = simulate(tmp_path, "storm", 1_500, 9)
    skew = timedelta(seconds=120)
    lines = [line for line in capture.read_bytes().splitlines() if line.strip()]

    class Recorder(Reconciler):
        seen: list[object]

        def apply_valid(
            self, source: Source, event: TransactionEvent, occurred: int, second: int,
            lane: int = 0,
        ) -> Applied:  # fmt: skip
            self.seen.append((source, event))
            return super().apply_valid(source, event, occurred, second, lane)

        def apply_watermark(self, source: Source, at_us: int, lane: int = 0) -> Applied:
            self.seen.append((source, "watermark", at_us))
            return super().apply_watermark(source, at_us, lane)

    recorder = Recorder()
    recorder.seen = []
    assert feed_lines(recorder, lines, skew) == []
    exact: list[object] = []
    for line in lines:
        decoded = decode_line(line, skew)
        assert isinstance(decoded, tuple)
        source, event = decoded
        if isinstance(event, Watermark):
            exact.append((source, "watermark", to_micros(event.occurred_at)))
        else:
            exact.append((source, event))
    assert recorder.seen == exact
