"""``debitwatch topics|produce|alerts``: the operator's Kafka tools, and simulate's live mode.

``streams.cli`` registers these with :func:`add_parsers`; every handler takes the parsed
namespace and returns an exit code, and prints any failure as one line on stderr
(never a traceback)::

    debitwatch topics create            # idempotent: existing topics are reported
    debitwatch topics check             # exit 1 and one line per problem
    debitwatch produce capture.jsonl    # a recorded capture onto the input topics
    debitwatch alerts tail --from-beginning
    debitwatch alerts export -o alerts.jsonl --until-idle 5

Broker and topic names come from ``--config FILE`` (its ``[kafka]`` table) and the
``DEBITWATCH_*`` environment variables (``streams.settings``).

Exit codes: 0 done; 1 ``topics check`` found problems; 2 usage error; 3 a file cannot
be read or written, or the broker is unreachable or refused (e.g. a topic is missing);
4 invalid configuration; 130 interrupted (Ctrl-C; ``alerts tail`` ends that way with 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Final

from rich.console import Console

from models.config import ConfigError
from streams.settings import Settings

EXIT_OK: Final = 0
EXIT_PROBLEMS: Final = 1
EXIT_USAGE: Final = 2
EXIT_IO: Final = 3
EXIT_CONFIG: Final = 4
EXIT_INTERRUPTED: Final = 130

Handler = Callable[[argparse.Namespace], int]


class _FailedError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _settings(path: Path | None) -> Settings:
    try:
        return Settings.from_env(config_path=path)
    except ConfigError as error:
        raise _FailedError(str(error), EXIT_CONFIG) from error


def _guarded(name: str, body: Handler) -> Handler:
    """``body`` with every expected failure turned into one stderr line and an exit code."""

    def handler(args: argparse.Namespace) -> int:
        # Imported here: kafka-python takes ~0.2 s to import, which `debitwatch replay`
        # and the other offline commands should not pay for.
        from streams.kafka_clients import BrokerError, describe  # noqa: PLC0415

        try:
            return body(args)
        except _FailedError as failure:
            message, code = str(failure), failure.code
        except BrokerError as error:
            message, code = str(error), EXIT_IO
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            message, code = f"{where}{error.strerror or describe(error)}", EXIT_IO
        except KeyboardInterrupt:
            message, code = "interrupted", EXIT_INTERRUPTED
        print(f"debitwatch {name}: error: {message}", file=sys.stderr)
        return code

    return handler


# --- topics ------------------------------------------------------------------------------


def _topics_create(args: argparse.Namespace) -> int:
    from streams.topics import create_topics  # noqa: PLC0415 (the Kafka client is heavy)

    for outcome in create_topics(_settings(args.config)):
        state = "created" if outcome.created else "exists "
        print(f"{state}  {outcome.name}  ({outcome.role}, {outcome.partitions} partitions)")
    return EXIT_OK


def _topics_check(args: argparse.Namespace) -> int:
    from streams.topics import check_topics  # noqa: PLC0415

    settings = _settings(args.config)
    problems = check_topics(settings)
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        return EXIT_PROBLEMS
    print(f"ok: all topics as expected at {settings.bootstrap}")
    return EXIT_OK


# --- produce -----------------------------------------------------------------------------


def _produce(args: argparse.Namespace) -> int:
    from streams.produce import produce_capture  # noqa: PLC0415

    summary = produce_capture(_settings(args.config), args.captures)
    sent = ", ".join(f"{count:,} to {topic}" for topic, count in summary.events.items())
    marks = sum(summary.watermarks.values())
    print(
        f"sent {sum(summary.events.values()):,} events ({sent or 'none'}) and {marks:,} "
        f"watermarks ({sum(summary.watermark_messages.values()):,} messages: one per "
        f"partition) from {summary.lines:,} lines in {summary.seconds:.1f} s",
        file=sys.stderr,
    )
    if summary.not_capture_lines:
        print(
            f"skipped {summary.not_capture_lines:,} lines that are not capture lines "
            f"(first: {', '.join(summary.not_capture_examples)})",
            file=sys.stderr,
        )
    return EXIT_OK


# --- alerts ------------------------------------------------------------------------------


def _alerts_tail(args: argparse.Namespace) -> int:
    from streams.alerts_view import tail  # noqa: PLC0415

    probe = Console()
    console = probe if probe.is_terminal else Console(width=160)
    tail(_settings(args.config), args.from_beginning, console)
    return EXIT_OK


def _alerts_export(args: argparse.Namespace) -> int:
    from streams.alerts_view import export  # noqa: PLC0415

    count = export(_settings(args.config), args.output, args.until_idle)
    print(f"exported {count:,} alert records to {args.output}", file=sys.stderr)
    return EXIT_OK


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds >= 0")
    return value


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``topics``, ``produce`` and ``alerts`` on ``debitwatch``'s subparsers.

    Each leaf sets ``handler`` (namespace -> exit code), as the other subcommands do.
    """

    def leaf(parent: Any, name: str, body: Handler, label: str, **kwargs: Any) -> Any:
        parser = parent.add_parser(name, **kwargs)
        parser.add_argument(
            "--config", type=Path, metavar="FILE", help="TOML file with a [kafka] table"
        )
        parser.set_defaults(handler=_guarded(label, body))
        return parser

    topics = subparsers.add_parser(
        "topics",
        help="create or check the Kafka topics",
        description="Create the input, re-keyed, alerts and dead-letter topics, or check "
        "that they exist with the partition counts and settings the workers need.",
    )
    topic_commands = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    leaf(topic_commands, "create", _topics_create, "topics create",
         help="create missing topics (existing ones are left as they are)")  # fmt: skip
    leaf(topic_commands, "check", _topics_check, "topics check",
         help="exit 1 if a topic is missing or wrongly shaped")  # fmt: skip

    produce = leaf(
        subparsers,
        "produce",
        _produce,
        "produce",
        help="send capture files to the input topics",
        description="Send each event of capture files (CONTRACT §4) to its source's "
        "topic, byte for byte and without key; watermarks go to every partition.",
    )
    produce.add_argument("captures", nargs="+", type=Path, metavar="CAPTURE")

    alerts = subparsers.add_parser(
        "alerts",
        help="watch or export the alerts topic",
        description="Follow alert state changes live, or export them as JSON Lines.",
    )
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    tail = leaf(alert_commands, "tail", _alerts_tail, "alerts tail",
                help="print alert state changes as they happen, until Ctrl-C")  # fmt: skip
    tail.add_argument(
        "--from-beginning", action="store_true", help="start with the oldest alert kept"
    )
    export = leaf(alert_commands, "export", _alerts_export, "alerts export",
                  help="write the whole alerts topic as JSON Lines")  # fmt: skip
    export.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help="file to write ('-' for stdout)")  # fmt: skip
    export.add_argument(
        "--until-idle", type=_seconds, default=5.0, metavar="SECONDS",
        help="stop once the end is reached and nothing new came for this long "
        "(default: %(default)s)",
    )  # fmt: skip


# --- simulate --to-kafka -----------------------------------------------------------------


@contextmanager
def _optional_output(path: Path | None) -> Iterator[BinaryIO | None]:
    if path is None:
        yield None
    elif str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    else:
        with path.open("wb") as handle:
            yield handle


def simulate_to_kafka(args: argparse.Namespace, config: Any, *, start_now: bool) -> int:
    """``debitwatch simulate --to-kafka``: run :func:`streams.live.run_live` and write
    the truth. ``config`` is the run's ``SimulationConfig``; with ``start_now`` its
    event time starts at the wall clock's now."""
    from streams.live import Pace, now_ms, run_live, sigterm_interrupts  # noqa: PLC0415
    from streams.simulator.writer import write_truth  # noqa: PLC0415

    def body(args: argparse.Namespace) -> int:
        try:
            pace = Pace(
                speed=args.speed,
                max_lateness=args.max_lateness,
                final_watermark=args.final_watermarks,
            )
        except ValueError as error:
            raise _FailedError(str(error), EXIT_USAGE) from error
        settings = _settings(args.config)
        truth_dir = args.truth.resolve().parent
        if str(args.truth) != "-" and not truth_dir.is_dir():
            raise _FailedError(f"cannot write {args.truth}: no such directory", EXIT_IO)
        run = dataclasses.replace(config, start_ms=now_ms()) if start_now else config
        with ExitStack() as stack:
            capture = stack.enter_context(_optional_output(args.output))
            stack.enter_context(sigterm_interrupts())
            summary = run_live(settings, run, pace, capture_out=capture, progress=sys.stderr)
        sent = ", ".join(f"{source} {count:,}" for source, count in summary.events.items())
        print(
            f"debitwatch simulate: sent {sum(summary.events.values()):,} events "
            f"({sent or 'none'}) of {summary.transactions:,} transactions in "
            f"{summary.seconds:.1f} s, then {summary.watermark_messages} final watermark "
            f"messages",
            file=sys.stderr,
        )
        if summary.truth is None:
            print(
                "debitwatch simulate: interrupted: truth not written (the run is incomplete)",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        with _optional_output(args.truth) as out:
            assert out is not None
            count = write_truth(summary.truth, out)
        print(f"debitwatch simulate: wrote {count:,} expected alerts to {args.truth}",
              file=sys.stderr)  # fmt: skip
        return EXIT_OK

    return _guarded("simulate", body)(args)
