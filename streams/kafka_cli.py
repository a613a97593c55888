"""``debitwatch kafka start|stop``: the local development broker of streams.kafka_local.

Register with ``add_kafka_parser(commands)`` on the top-level subparsers; the parser's
``handler`` is run_kafka. ``kafka start`` prints only the bootstrap address on stdout, so
scripts can do ``BOOTSTRAP=$(debitwatch kafka start)``; everything else goes to stderr.

Exit codes: 0 done (``stop`` also when no broker was running), 2 usage error (argparse),
3 the broker cannot be set up, started or stopped (KafkaLocalError; message on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from streams import kafka_local
from streams.kafka_local import KafkaLocalError

EXIT_OK = 0
EXIT_KAFKA = 3


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 65535")
    return value


def add_kafka_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``kafka start`` and ``kafka stop``; returns the ``kafka`` parser."""
    kafka = subparsers.add_parser(
        "kafka",
        help="start or stop a local single-node Kafka broker (development, tests, demo)",
        description="A real Apache Kafka 4 broker (KRaft, broker+controller in one JVM) on "
        "127.0.0.1, from the official jars on Maven Central (fetched once with Maven; needs "
        "Java 17+). See docs/kafka-local.md.",
    )
    actions = kafka.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    data_dir_help = (
        f"the broker's config, data, logs and pid (default: {kafka_local.DEFAULT_DATA_DIR})"
    )

    start = actions.add_parser(
        "start",
        help="start a broker in the background; print its bootstrap address",
        description="Start a broker in the background and wait until it answers; print its "
        "bootstrap address (127.0.0.1:PORT) on stdout. Data persist in --data-dir.",
    )
    start.add_argument("--port", type=port_number, default=9092, help="client port (default: 9092)")
    start.add_argument(
        "--controller-port",
        type=port_number,
        help="KRaft controller port (default: PORT+1 if free, else any free port)",
    )
    start.add_argument(
        "--data-dir", type=Path, default=kafka_local.DEFAULT_DATA_DIR, help=data_dir_help
    )

    stop = actions.add_parser(
        "stop",
        help="stop the broker of a data dir",
        description="Stop the broker started from --data-dir (SIGTERM, SIGKILL after 30 s). "
        "Its data are kept; delete the data dir to start afresh.",
    )
    stop.add_argument(
        "--data-dir", type=Path, default=kafka_local.DEFAULT_DATA_DIR, help=data_dir_help
    )
    kafka.set_defaults(handler=run_kafka)
    return kafka


def _start(args: argparse.Namespace, err: Console) -> None:
    if not kafka_local.jars_present():
        err.print("fetching the Kafka jars with Maven (first time only)...")
    bootstrap = kafka_local.start(
        port=args.port, data_dir=args.data_dir, controller_port=args.controller_port
    )
    print(bootstrap, flush=True)


def _stop(args: argparse.Namespace, err: Console) -> None:
    if kafka_local.stop(args.data_dir):
        err.print(f"stopped the Kafka broker of {escape(str(args.data_dir))}")
    else:
        err.print(f"no Kafka broker was running from {escape(str(args.data_dir))}")


def run_kafka(args: argparse.Namespace) -> int:
    """Run ``kafka start`` or ``kafka stop``: 0 when done, 3 on a KafkaLocalError."""
    err = Console(stderr=True)
    try:
        if args.kafka_command == "start":
            _start(args, err)
        else:
            _stop(args, err)
    except KafkaLocalError as error:
        err.print(
            f"[red]debitwatch kafka {args.kafka_command}:[/red] {escape(str(error))}",
            soft_wrap=True,
        )
        return EXIT_KAFKA
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m streams.kafka_cli start``) until cli.py has it."""
    parser = argparse.ArgumentParser(prog="debitwatch")
    add_kafka_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(["kafka", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
