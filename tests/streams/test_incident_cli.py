"""``debitwatch train`` and the incident side of ``replay``/``evaluate``/``worker``, run as a
user runs them (docs/incidents.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.incident_features import FEATURES
from models.incident_model_file import load_model
from models.incident_scoring import DEFAULT_MODEL
from streams.cli import main
from streams.train import captures_hash

FLEET = ["--rate", "2", "--terminals", "100", "--merchants", "20"]


def simulate(folder: Path, name: str, *extra: str) -> tuple[Path, Path]:
    capture, truth = folder / f"{name}.jsonl", folder / f"{name}-truth.jsonl"
    code = main(["simulate", *FLEET, *extra, "-o", str(capture), "--truth", str(truth)])
    assert code == 0
    return capture, truth


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    return simulate(folder, "history", "--transactions", "20000", "--seed", "31")[0]


def test_train_writes_a_model_with_its_metadata(history: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.skops"
    assert main(["train", "--from", str(history), "-o", str(out)]) == 0
    loaded = load_model(out)
    assert loaded.metadata.features == FEATURES
    assert loaded.metadata.training_hash == captures_hash([history])
    assert loaded.metadata.trained_at.endswith("Z")


def test_train_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    assert main(["train", "--from", str(tmp_path / "missing.jsonl"), "-o", "x"]) == 3
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text("")
    assert main(["train", "--from", str(tiny), "-o", str(tmp_path / "m.skops")]) == 1


def test_replay_refuses_a_missing_or_foreign_model(history: Path, tmp_path: Path) -> None:
    missing = tmp_path / "none-here.skops"
    out = tmp_path / "a.jsonl"
    code = main(["replay", str(history), "-o", str(out), "-q", "--incident-model", str(missing)])
    assert code == 4
    not_a_model = tmp_path / "bad.skops"
    not_a_model.write_bytes(b"PK\x03\x04 not really a zip")
    code = main(
        ["replay", str(history), "-o", str(out), "-q", "--incident-model", str(not_a_model)]
    )
    assert code == 4


def test_the_worker_stops_at_start_on_a_missing_model(tmp_path: Path) -> None:
    env = {"DEBITWATCH_INCIDENT_MODEL": str(tmp_path / "gone.skops"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--web-port", "0"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 4
    assert "incident model not found" in done.stderr
    assert "debitwatch train" in done.stderr


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="run `make model` first")
def test_six_hours_with_incidents_are_detected_fast_and_quietly(tmp_path: Path) -> None:
    """A quarter of the day of docs/incidents.md (bench/incident_day.py has the full
    days): every injected incident found within 2 minutes of event time (median), and
    no more than one false incident."""
    capture, truth = simulate(
        tmp_path, "day", "--transactions", "43200", "--seed", "17", "--profile", "default",
        "--set", "incidents_per_day=48",
        "--set", "merchant_outage_share=0.25", "--set", "issuer_slowdown_share=0.25",
        "--set", "faulty_terminal_share=0.25", "--set", "duplicate_burst_share=0.25",
    )  # fmt: skip
    alerts = tmp_path / "alerts.jsonl"
    assert main(["replay", str(capture), "-o", str(alerts), "-q"]) == 0
    code = main(
        ["evaluate", "--truth", str(truth), str(alerts), "--span-days", "0.25",
         "--min-incident-detection", "0.95", "--max-incident-delay", "120",
         "--max-false-incidents", "4", "--min-cause-accuracy", "0.9"]
    )  # fmt: skip
    assert code == 0
    injected = [line for line in truth.read_text().splitlines() if "terminal_incident" in line]
    assert len(injected) >= 8
