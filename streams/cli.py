"""``debitwatch`` command line: replay, simulate, evaluate.

Exit codes (all subcommands, documented in docs/cli.md):

====  ==============================================================
0     done
1     ``evaluate``: a ``--min-*`` threshold was not met;
      ``replay --fail-on-reject``: some line was rejected
2     usage error (unknown option, bad value)
3     an input file cannot be read or an output cannot be written
4     invalid configuration file
====  ==============================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from models.config import ConfigError, DetectionConfig, load_config
from models.deadlines import DeadlineConfig, load_deadline_config
from models.evaluation import evaluate, evaluate_incidents
from models.final_states import ALERT_DECODER
from models.incident_model_file import LoadedModel, ModelError
from models.incident_scoring import load_scorer
from models.truth import IncidentTruth, TruthRecord, decode_truth_line
from streams import gc_policy, incident_report, report, train_cli
from streams.kafka_cli import add_kafka_parser
from streams.kafka_tools_cli import add_parsers as add_kafka_tools
from streams.replay import replay
from streams.settings import Settings
from streams.webhooks import receiver_cli as webhook_receiver_cli

EXIT_OK = 0
EXIT_THRESHOLD = 1
EXIT_USAGE = 2
EXIT_IO = 3
EXIT_CONFIG = 4


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        handle = path.open("wb", buffering=1 << 20)
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}", EXIT_IO) from error
    with handle:
        yield handle


def _console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or 120 columns in logs and pipes."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=120)


def _readable(paths: Sequence[Path]) -> None:
    for path in paths:
        if not path.is_file():
            raise CliError(f"cannot read {path}: no such file", EXIT_IO)


def _deadlines(path: Path | None) -> DeadlineConfig:
    if path is None:
        return DeadlineConfig()
    try:
        return load_deadline_config(path)
    except ConfigError as error:
        raise CliError(str(error), EXIT_CONFIG) from error


def _config(path: Path | None) -> DetectionConfig:
    if path is None:
        return DetectionConfig()
    try:
        return load_config(path)
    except ConfigError as error:
        raise CliError(str(error), EXIT_CONFIG) from error


def _cmd_replay(args: argparse.Namespace) -> int:
    captures: list[Path] = args.captures
    _readable(captures)
    config = _config(args.config)
    try:
        gc_policy.apply_for_replay()
    except ConfigError as error:
        raise CliError(f"$DEBITWATCH_GC_THRESHOLD: {error}", EXIT_CONFIG) from error
    err = _console(stderr=True)
    show_bar = err.is_terminal and not args.quiet
    total = sum(path.stat().st_size for path in captures)
    with contextlib.ExitStack() as stack:
        alerts_out = stack.enter_context(_output(args.output))
        dlq_out = stack.enter_context(_output(args.dlq)) if args.dlq else None
        bar = None
        if show_bar:
            bar = stack.enter_context(
                Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=err,
                    transient=True,
                )
            )
        task = bar.add_task("replaying", total=total) if bar else None

        def advance(done: int) -> None:
            if bar is not None and task is not None:
                bar.advance(task, done)

        summary = replay(
            captures,
            alerts_out,
            dlq_out=dlq_out,
            config=config,
            on_progress=advance if bar else None,
            incidents=_incident_scorer(args.incident_model),
            deadlines=_deadlines(args.config),
        )
    if not args.quiet:
        report.replay_summary(summary, err)
        if args.show_alerts:
            report.top_alerts(summary.final.firing(), args.show_alerts, err)
    if args.summary_json:
        args.summary_json.write_bytes(
            msgspec.json.encode(
                {
                    "lines": summary.lines,
                    "events": summary.events,
                    "watermarks": summary.watermarks,
                    "duplicates": summary.duplicates,
                    "late": summary.late,
                    "rejected": dict(summary.rejected),
                    "published": dict(summary.published),
                    "firing": dict(summary.firing),
                    "at_risk_by_currency": summary.at_risk_by_currency,
                    "seconds": round(summary.seconds, 3),
                }
            )
        )
    if args.fail_on_reject and summary.rejected:
        return EXIT_THRESHOLD
    return EXIT_OK


def stream_settings(config: Path | None) -> Settings:
    """Settings for the Kafka commands: environment and ``--config``."""
    try:
        return Settings.from_env(config_path=config)
    except ConfigError as error:
        raise CliError(str(error), EXIT_CONFIG) from error


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker.run import run_worker  # noqa: PLC0415 (Faust loads slowly)

    if args.config is not None:
        # The webhook endpoints ([[webhooks]]) are read from the same file, by name.
        os.environ["DEBITWATCH_CONFIG"] = str(args.config)
    try:
        run_worker(stream_settings(args.config), web_port=args.web_port, loglevel=args.loglevel)
    except (ModelError, ConfigError) as error:  # checked when the app is built, before Kafka
        raise CliError(str(error), EXIT_CONFIG) from error
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo  # noqa: PLC0415 (loads the Kafka clients)

    return run_demo(args)


def _incident_scorer(spec: str) -> LoadedModel | None:
    try:
        return load_scorer(spec)
    except ModelError as error:
        raise CliError(str(error), EXIT_CONFIG) from error


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped:
                yield stripped


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _readable([args.truth, args.alerts])
    try:
        lines = [decode_truth_line(line) for line in _read_lines(args.truth)]
        alerts = [ALERT_DECODER.decode(line) for line in _read_lines(args.alerts)]
    except msgspec.DecodeError as error:
        raise CliError(f"cannot parse input: {error}", EXIT_IO) from error
    truth = [line for line in lines if isinstance(line, TruthRecord)]
    injected = [line for line in lines if isinstance(line, IncidentTruth)]
    result = evaluate(truth, alerts)
    out = _console()
    report.evaluation(result, out)
    incidents = evaluate_incidents(injected, alerts)
    if injected or incidents.false_alerts:
        incident_report.incidents(incidents, out, args.span_days)
    if args.show_errors:
        for label, ids in (
            ("false positive", result.false_positive_ids),
            ("false negative", result.false_negative_ids),
        ):
            for alert_id in ids[: args.show_errors]:
                out.print(f"{label}: {alert_id}")
    failed = []
    if args.min_recall is not None and result.overall.recall < args.min_recall:
        failed.append(f"recall {result.overall.recall:.4f} < {args.min_recall}")
    if args.min_precision is not None and result.overall.precision < args.min_precision:
        failed.append(f"precision {result.overall.precision:.4f} < {args.min_precision}")
    for kind, score in result.per_kind.items():
        if args.min_recall is not None and score.recall < args.min_recall:
            failed.append(f"{kind} recall {score.recall:.4f} < {args.min_recall}")
        if args.min_precision is not None and score.precision < args.min_precision:
            failed.append(f"{kind} precision {score.precision:.4f} < {args.min_precision}")
    if args.min_cause_accuracy is not None and result.cause_accuracy < args.min_cause_accuracy:
        failed.append(f"cause accuracy {result.cause_accuracy:.4f} < {args.min_cause_accuracy}")
    if args.min_incident_detection is not None and (
        incidents.detection_rate < args.min_incident_detection
    ):
        failed.append(
            f"incident detection {incidents.detection_rate:.4f} < {args.min_incident_detection}"
        )
    delay = incidents.median_delay_s
    if (
        args.max_incident_delay is not None
        and delay is not None
        and delay > args.max_incident_delay
    ):
        failed.append(f"median incident delay {delay:.0f} s > {args.max_incident_delay:g} s")
    if args.max_false_incidents is not None:
        false = len(incidents.false_alerts) / (args.span_days or 1.0)
        if false > args.max_false_incidents:
            failed.append(f"false incidents {false:.2f} per day > {args.max_false_incidents:g}")
    for reason in failed:
        Console(stderr=True).print(f"[red]threshold not met:[/red] {reason}")
    return EXIT_THRESHOLD if failed else EXIT_OK


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from streams.simulator import cli_args as simulate_args  # noqa: PLC0415 (optional part)

    parser = argparse.ArgumentParser(
        prog="debitwatch",
        description="Detect ghost debits and terminal/bank disagreements in card payments.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rep = commands.add_parser(
        "replay",
        help="run captures through the detector offline",
        description="Replay capture files (JSON Lines, CONTRACT §4) through the detector "
        "and write every alert state change as JSON Lines.",
    )
    rep.add_argument("captures", nargs="+", type=Path, metavar="CAPTURE")
    rep.add_argument("-o", "--output", type=Path, help="alerts file (default: stdout)")
    rep.add_argument("--dlq", type=Path, help="write rejected lines here (JSON Lines)")
    rep.add_argument("--config", type=Path, help="TOML file with a [detection] table")
    rep.add_argument("--summary-json", type=Path, help="also write the summary as JSON")
    rep.add_argument("--fail-on-reject", action="store_true", help="exit 1 if any line is rejected")
    rep.add_argument(
        "--show-alerts", type=int, default=0, metavar="N", help="print the N most urgent"
    )
    rep.add_argument("-q", "--quiet", action="store_true", help="no summary, no progress bar")
    rep.add_argument(
        "--incident-model",
        default="default",
        metavar="PATH",
        help="incident model (skops file from `debitwatch train`); 'default': the one "
        "`make model` trains, 'none': no terminal_incident alerts",
    )
    rep.set_defaults(handler=_cmd_replay)

    sim = commands.add_parser(
        "simulate",
        help="generate labelled traffic: a capture and its ground truth",
        description="Generate simulated POS traffic with injected faults, deterministic by "
        "--seed: a capture (CONTRACT §4) and the alerts that must be firing at its end.",
    )
    simulate_args.add_arguments(sim)
    sim.set_defaults(handler=simulate_args.run)

    ev = commands.add_parser(
        "evaluate",
        help="score alerts against a ground truth",
        description="Precision, recall and F1 per kind of the alerts firing at the end of "
        "ALERTS against TRUTH, plus probable-cause accuracy.",
    )
    ev.add_argument("alerts", type=Path, metavar="ALERTS")
    ev.add_argument("--truth", type=Path, required=True, metavar="TRUTH")
    ev.add_argument("--min-recall", type=_ratio, help="exit 1 if any recall is lower")
    ev.add_argument("--min-precision", type=_ratio, help="exit 1 if any precision is lower")
    ev.add_argument("--show-errors", type=int, default=0, metavar="N", help="list N misses")
    ev.add_argument("--min-cause-accuracy", type=_ratio, help="exit 1 if cause accuracy is lower")
    ev.add_argument(
        "--min-incident-detection", type=_ratio, help="exit 1 if fewer incidents are detected"
    )
    ev.add_argument(
        "--max-incident-delay", type=float, metavar="S", help="exit 1 if the median delay is longer"
    )
    ev.add_argument(
        "--max-false-incidents", type=float, metavar="N", help="exit 1 above N per --span-days day"
    )
    ev.add_argument(
        "--span-days", type=float, metavar="D", help="event-time span of the capture, in days"
    )
    ev.set_defaults(handler=_cmd_evaluate)

    add_kafka_parser(commands)
    add_kafka_tools(commands)
    train_cli.add_parser(commands)
    webhook_receiver_cli.add_parser(commands)

    wk = commands.add_parser(
        "worker",
        help="run a stream worker (Faust) on Kafka",
        description="Run one stream worker of the debitwatch Faust app: ingest, re-key and "
        "join the input topics and publish alerts (docs/streaming.md). Settings come from "
        "DEBITWATCH_* environment variables and --config (docs/configuration.md).",
    )
    wk.add_argument("--web-port", type=int, help="HTTP port of this worker (default 6066)")
    wk.add_argument("--config", type=Path, help="TOML file with [kafka] and [detection]")
    wk.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    wk.set_defaults(handler=_cmd_worker)

    from streams import demo  # noqa: PLC0415 (its Kafka clients load only when it runs)

    dm = commands.add_parser(
        "demo",
        help="the live product: local Kafka, two workers, simulated traffic, evaluation",
        description=demo.DESCRIPTION,
    )
    demo.add_arguments(dm)
    dm.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CliError as error:
        Console(stderr=True).print(f"[red]debitwatch {args.command}:[/red] {error}")
        return error.code
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
