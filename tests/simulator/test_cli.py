"""``debitwatch simulate`` through its argv entry point: files, summary, exit codes."""

from __future__ import annotations

import argparse

import pytest

from models.truth import IncidentTruth, TruthRecord, decode_truth_line
from streams.simulator.cli_args import add_arguments, run_simulate


def test_writes_capture_truth_and_a_summary(tmp_path, capsys):
    capture, truth = tmp_path / "c.jsonl", tmp_path / "t.jsonl"
    code = run_simulate(
        ["-o", str(capture), "--truth", str(truth), "--transactions", "3000", "--profile", "storm"]
    )
    assert code == 0
    assert capture.read_bytes().count(b"\n") > 12_000
    lines = [decode_truth_line(line) for line in truth.read_bytes().splitlines()]
    records = [line for line in lines if isinstance(line, TruthRecord)]
    assert len(records) > 500
    assert all(isinstance(line, TruthRecord | IncidentTruth) for line in lines)
    summary = capsys.readouterr().err
    for text in ("3000 transactions", "events", "scenarios:", "expected alerts", " s "):
        assert text in summary
    assert "incidents (" in summary


def test_the_truth_has_a_line_per_incident_and_the_summary_counts_them(tmp_path, capsys):
    capture, truth = tmp_path / "c.jsonl", tmp_path / "t.jsonl"
    argv = ["-o", str(capture), "--truth", str(truth), "--transactions", "3000", "--rate", "2"]
    assert run_simulate([*argv, "--profile", "storm", "--set", "incidents_per_day=300"]) == 0
    lines = [decode_truth_line(line) for line in truth.read_bytes().splitlines()]
    incidents = [line for line in lines if isinstance(line, IncidentTruth)]
    assert len(incidents) >= 3
    summary = capsys.readouterr().err
    assert f"incidents ({len(incidents)}): " in summary
    for name in {incident.incident for incident in incidents}:
        assert f"{name} {sum(i.incident == name for i in incidents)}" in summary


def test_defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["-o", "c", "--truth", "t"])
    assert (args.transactions, args.profile, args.seed, args.rate) == (10_000, "default", 1, 20.0)
    assert args.start == "2026-11-26T20:00:00Z"
    assert args.final_watermarks is True
    assert (
        parser.parse_args(["-o", "c", "--truth", "t", "--no-final-watermarks"]).final_watermarks
        is False
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "network_falure=0.1"], "unknown --set name 'network_falure'"),
        (["--set", "redelivery=2"], "out of range"),
        (["--start", "yesterday"], "--start"),
        (["--start", "2026-11-26T20:00:00"], "no UTC offset"),
        (["--rate", "0"], "--rate must be > 0"),
        (["--terminals", "0"], "--terminals must be >= 1"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    argv = ["-o", str(tmp_path / "c"), "--truth", str(tmp_path / "t"), *extra]
    assert run_simulate(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_unknown_profile_is_an_argparse_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_simulate(["-o", str(tmp_path / "c"), "--truth", str(tmp_path / "t"), "--profile", "x"])
    assert exit_info.value.code == 2


def test_zero_transactions_writes_only_the_watermarks(tmp_path):
    capture, truth = tmp_path / "c.jsonl", tmp_path / "t.jsonl"
    assert run_simulate(["-o", str(capture), "--truth", str(truth), "--transactions", "0"]) == 0
    assert capture.read_bytes().count(b"watermark") == 2
    assert truth.read_bytes() == b""


def test_unwritable_output_exits_3(tmp_path, capsys):
    missing = tmp_path / "no-such-dir" / "c.jsonl"
    argv = ["-o", str(missing), "--truth", str(tmp_path / "t"), "--transactions", "10"]
    assert run_simulate(argv) == 3
    assert "cannot write" in capsys.readouterr().err
