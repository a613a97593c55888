"""``debitwatch replay``: captures in, alerts and dead letters out (CONTRACT §4, §5, §6).

Run through ``streams.cli.main`` in-process (fast) and, once, as the installed console
script (what users run).
"""

from __future__ import annotations

import base64
import gc
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from models import pan
from models.validation import MAX_MESSAGE_BYTES
from streams.cli import EXIT_CONFIG, EXIT_IO, EXIT_OK, EXIT_THRESHOLD, main
from tests.factories import capture, capture_line, encode, event, far_future_watermark

GHOST = [
    ("terminal", event("request", 0.1, event_id="g-req", stan="000001")),
    ("issuer", event("authorization", 1.0, approved=True, event_id="g-auth", stan="000001")),
    ("issuer", event("debit", 1.2, event_id="g-debit", stan="000001")),
    ("terminal", event("outcome", 31.0, outcome="timeout", event_id="g-out", stan="000001")),
]
MATCHED = [
    ("terminal", event("request", 5.0, tx=5.0, stan="000002", event_id="m-req")),
    ("issuer", event("debit", 5.5, tx=5.0, stan="000002", event_id="m-debit")),
    (
        "terminal",
        event("outcome", 6.0, tx=5.0, stan="000002", outcome="approved", event_id="m-out"),
    ),
]
PAN = "4111111111111111"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def bad_lines() -> list[tuple[bytes, str]]:
    """One capture line per rejection reason, each with the reason it must get."""
    too_big = event("request", 2.0, stan="000009", padding="x" * MAX_MESSAGE_BYTES)
    return [
        (b"this is not json", "invalid_capture_line"),
        (b'{"source": "pos", "event": {}}', "invalid_capture_line"),
        # A capture line is JSON, so a broken event breaks the line (invalid_json is for
        # Kafka messages); an event that is JSON but not an object is the event's fault.
        (capture_line("terminal", b'{"type": "request"'), "invalid_capture_line"),
        (capture_line("terminal", b"[1, 2]"), "not_an_object"),
        (
            capture_line("terminal", encode({**event("request", 2.0), "amount_minor": "100"})),
            "wrong_type",
        ),
        (
            capture_line("issuer", encode({**event("debit", 2.0), "amount_minor": -5})),
            "negative_amount",
        ),
        (
            capture_line("issuer", encode({**event("debit", 2.0), "currency": "ABC"})),
            "unknown_currency",
        ),
        (capture_line("terminal", encode(event("bogus", 2.0))), "unknown_type"),
        (
            capture_line(
                "terminal",
                encode({k: v for k, v in event("request", 2.0).items() if k != "stan"}),
            ),
            "missing_field",
        ),
        (
            capture_line("terminal", encode(event("request", 0.0, tx=500.0))),
            "transmitted_after_occurred",
        ),
        (capture_line("terminal", encode(too_big)), "too_large"),
        (
            capture_line("issuer", encode({**event("debit", 2.0), "card_token": PAN})),
            "pan_detected",
        ),
        (b'{"source": "terminal", "note": "' + PAN.encode() + b'"', "pan_detected"),
        # The same card number with its first digit written as a JSON escape.
        (
            capture_line("issuer", encode(event("debit", 2.0))).replace(
                b'"tok_card_a"', b'"\\u0034' + PAN[1:].encode() + b'"'
            ),
            "pan_detected",
        ),
        # Nested deeper than any decoder recurses: refused, and the replay goes on.
        (
            capture_line(
                "terminal",
                encode(event("request", 2.0, nested=0)).replace(
                    b'"nested":0', b'"nested":' + b"[" * 20_000 + b"]" * 20_000
                ),
            ),
            "invalid_capture_line",
        ),
    ]


def test_bad_lines_go_to_the_dlq_and_lose_nothing_around_them(tmp_path: Path) -> None:
    bad = bad_lines()
    good = [capture_line(s, e) for s, e in GHOST + MATCHED]
    mixed: list[bytes] = []
    for index, line in enumerate(good):  # interleave: bad, good, bad, good, ...
        mixed += [bad[index % len(bad)][0], line]
    mixed += [line for line, _ in bad[len(good) :]]
    clean = write(tmp_path, "clean.jsonl", b"\n".join(good) + b"\n")
    dirty = write(tmp_path, "dirty.jsonl", b"\n".join(mixed) + b"\n")
    for path in (clean, dirty):
        assert (
            main(
                [
                    "replay",
                    str(path),
                    "-o",
                    str(path.with_suffix(".alerts")),
                    "--dlq",
                    str(path.with_suffix(".dlq")),
                    "-q",
                ]
            )
            == EXIT_OK
        )
    assert read_jsonl(dirty.with_suffix(".alerts")) == read_jsonl(clean.with_suffix(".alerts"))
    assert [a["kind"] for a in read_jsonl(clean.with_suffix(".alerts"))] == ["unmatched_debit"]
    records = read_jsonl(dirty.with_suffix(".dlq"))
    assert sorted(r["reason"] for r in records) == sorted(reason for _, reason in bad)
    for record in records:
        assert record["file"] == str(dirty)
        assert mixed[record["line"] - 1] in (line for line, _ in bad)
        stored = base64.b64decode(record["raw_base64"])
        assert not pan.contains_pan(stored)
        assert record["raw_size"] >= len(stored)
        assert record["detail"]


def test_dead_letter_of_an_event_keeps_the_event_bytes_and_masks_the_pan(tmp_path: Path) -> None:
    raw = encode({**event("debit", 2.0), "note": f"card {PAN}"})
    path = write(tmp_path, "c.jsonl", capture_line("issuer", raw) + b"\n")
    dlq = tmp_path / "dlq.jsonl"
    assert (
        main(["replay", str(path), "-o", str(tmp_path / "a.jsonl"), "--dlq", str(dlq), "-q"]) == 0
    )
    (record,) = read_jsonl(dlq)
    assert record["reason"] == "pan_detected"
    assert record["source"] == "issuer" and record["line"] == 1
    stored = base64.b64decode(record["raw_base64"])
    assert stored == raw.replace(PAN.encode(), b"411111******1111")


def test_no_card_number_reaches_any_output(tmp_path: Path) -> None:
    """§6: a PAN in the input is in neither the alerts, the DLQ nor the summary."""
    lines = [capture_line(s, e) for s, e in GHOST]
    lines.append(capture_line("terminal", encode({**event("request", 3.0), "extra": PAN})))
    lines.append(capture_line("issuer", encode({**event("debit", 3.0), "rrn": PAN[:13]})))
    path = write(tmp_path, "c.jsonl", b"\n".join(lines))
    outputs = [tmp_path / name for name in ("a.jsonl", "d.jsonl", "s.json")]
    code = main(
        [
            "replay",
            str(path),
            "-o",
            str(outputs[0]),
            "--dlq",
            str(outputs[1]),
            "--summary-json",
            str(outputs[2]),
            "-q",
        ]
    )
    assert code == EXIT_OK
    for output in outputs:
        assert output.stat().st_size > 0
        assert not pan.contains_pan(output.read_bytes()), output.name


def test_too_late_events_go_to_the_dlq(tmp_path: Path) -> None:
    config = write(tmp_path, "c.toml", b'[detection]\nretention = "1h"\n')
    items: list[tuple[str, dict[str, Any] | bytes]] = [
        ("terminal", event("request", 0.1, stan="000001")),
        ("terminal", event("request", 9_000.0, tx=9_000.0, stan="000002")),
        ("issuer", event("debit", 9_000.0, tx=9_000.0, stan="000002")),
        ("issuer", event("refund", 9_001.0, tx=0.0, stan="000001", event_id="late-refund")),
    ]
    path = write(tmp_path, "c.jsonl", capture(items))
    dlq = tmp_path / "dlq.jsonl"
    args = [
        "replay",
        str(path),
        "--config",
        str(config),
        "-o",
        str(tmp_path / "a"),
        "--dlq",
        str(dlq),
    ]
    assert main([*args, "-q"]) == EXIT_OK
    (record,) = read_jsonl(dlq)
    assert (record["reason"], record["event_id"], record["line"]) == ("too_late", "late-refund", 4)


def test_alerts_go_to_stdout_by_default_in_published_order(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    items: list[tuple[str, dict[str, Any] | bytes]] = [*GHOST, ("terminal", far_future_watermark())]
    path = write(tmp_path, "c.jsonl", capture(items))
    assert main(["replay", str(path), "-q"]) == EXIT_OK
    out = capsysbinary.readouterr().out.decode().splitlines()
    assert [json.loads(line)["kind"] for line in out] == ["unmatched_debit"]


def test_summary_counts_events_rejects_alerts_and_money(tmp_path: Path) -> None:
    lines = [capture_line(s, e) for s, e in GHOST + MATCHED + GHOST[:2]]  # 2 redeliveries
    lines.append(b"garbage")
    path = write(tmp_path, "c.jsonl", b"\n".join(lines) + b"\n\n")
    summary = tmp_path / "s.json"
    assert (
        main(["replay", str(path), "-o", str(tmp_path / "a"), "--summary-json", str(summary), "-q"])
        == 0
    )
    data = json.loads(summary.read_text())
    assert data["lines"] == 10
    assert data["events"] == 9 and data["duplicates"] == 2
    assert data["rejected"] == {"invalid_capture_line": 1}
    assert data["firing"] == {"unmatched_debit": 1}
    assert data["at_risk_by_currency"] == {"EUR": 12_550}


def test_several_captures_are_one_stream(tmp_path: Path) -> None:
    first = write(tmp_path, "1.jsonl", capture(list(GHOST[:2])))
    second = write(tmp_path, "2.jsonl", capture(list(GHOST[2:])))
    out = tmp_path / "a.jsonl"
    assert main(["replay", str(first), str(second), "-o", str(out), "-q"]) == EXIT_OK
    assert [a["evidence"] for a in read_jsonl(out)] == [["g-req", "g-auth", "g-debit", "g-out"]]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["replay", "/nonexistent/capture.jsonl"], EXIT_IO),
        (["replay", "{capture}", "--config", "/nonexistent.toml"], EXIT_CONFIG),
        (["replay", "{capture}", "--config", "{bad_config}"], EXIT_CONFIG),
        (["replay", "{capture}", "--fail-on-reject", "-o", "{out}"], EXIT_THRESHOLD),
        (["replay", "{capture}", "-o", "/nonexistent/dir/alerts.jsonl"], EXIT_IO),
    ],
    ids=["missing_capture", "missing_config", "unknown_setting", "fail_on_reject", "unwritable"],
)
def test_exit_codes(tmp_path: Path, args: list[str], code: int) -> None:
    capture_path = write(tmp_path, "c.jsonl", capture(list(GHOST)) + b"junk\n")
    bad_config = write(tmp_path, "bad.toml", b"[detection]\nretenion = 5\n")
    filled = [
        a.format(capture=capture_path, bad_config=bad_config, out=tmp_path / "a.jsonl")
        for a in args
    ]
    assert main([*filled, "-q"] if filled[0] == "replay" else filled) == code


def test_a_bad_gc_threshold_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = gc.get_threshold()
    monkeypatch.setenv("DEBITWATCH_GC_THRESHOLD", "often")
    capture_path = write(tmp_path, "c.jsonl", capture(list(GHOST)))
    try:
        assert main(["replay", str(capture_path), "-q"]) == EXIT_CONFIG
    finally:
        gc.set_threshold(*before)
    assert "DEBITWATCH_GC_THRESHOLD" in capsys.readouterr().err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay"])
    assert exited.value.code == 2


def test_console_script_runs_the_replay(tmp_path: Path) -> None:
    script = shutil.which("debitwatch") or str(Path(__file__).parents[2] / ".venv/bin/debitwatch")
    path = write(tmp_path, "c.jsonl", capture(list(GHOST)))
    result = subprocess.run(
        [script, "replay", str(path), "-o", str(tmp_path / "a.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "unmatched_debit" in result.stderr  # the summary table
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 1
