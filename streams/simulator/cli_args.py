"""``debitwatch simulate``: the command-line face of the generator.

``streams.cli`` owns the top-level parser and calls :func:`add_arguments` for the
``simulate`` subcommand and :func:`run` with the parsed namespace; :func:`run_simulate`
does both for callers that hold an argv list (tests, scripts)::

    debitwatch simulate -o capture.jsonl --truth truth.jsonl \\
        --transactions 100000 --profile storm --seed 7 --set redelivery=0.05

With ``--to-kafka`` the same traffic goes to the input topics instead, live, paced by
the wall clock (:mod:`streams.live`); event time starts now unless ``--start`` is given::

    debitwatch simulate --to-kafka --rate 20 --duration 600 --speed 30 --truth truth.jsonl

Exit codes (those of ``debitwatch``): 0 on success, 2 on a usage error (unknown profile
or ``--set`` name, a value out of range, a bad ``--start``), like argparse's own errors,
3 when an output file cannot be written or (``--to-kafka``) the broker cannot be used,
4 for an invalid ``--config`` file, 130 when a live run was interrupted (Ctrl-C,
SIGTERM; the final watermarks are still sent, the truth is not written).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO, Final

from streams.simulator.generator import DEFAULT_START, Simulation, SimulationConfig
from streams.simulator.incidents import INCIDENT_TYPES
from streams.simulator.profiles import PROFILES, SETTABLE, ProfileError, resolve
from streams.simulator.shards import AUTO_SHARD_FROM, AUTO_SHARDS, auto_shards, run_sharded
from streams.simulator.timefmt import parse_instant_ms
from streams.simulator.writer import write_lines, write_truth

_PROG: Final = "debitwatch simulate"
USAGE_ERROR: Final = 2
IO_ERROR: Final = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``."""
    parser.add_argument(
        "-o", "--output", metavar="CAPTURE", type=Path,
        help="capture file to write (JSON Lines, CONTRACT §4); '-' for stdout; required "
        "unless --to-kafka (then optional: a copy of what was sent)",
    )  # fmt: skip
    parser.add_argument(
        "--truth", required=True, metavar="TRUTH", type=Path,
        help="ground-truth file to write: one line per alert firing at the end and one "
        "per injected incident",
    )  # fmt: skip
    parser.add_argument(
        "--transactions", type=int, default=10_000, metavar="N",
        help="primary transactions to simulate (default: %(default)s); follow-up "
        "sales (paying again, a second card) come on top",
    )  # fmt: skip
    parser.add_argument(
        "--profile", default="default", choices=sorted(PROFILES),
        help="traffic profile: normal = benign only, default ~3%% anomalies, "
        "storm ~25%% anomalies and heavier disorder (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="RNG seed (default: %(default)s)")
    parser.add_argument(
        "--start", default=DEFAULT_START, metavar="RFC3339", action=_Given,
        help="event time of the first transaction (default: %(default)s; with "
        "--to-kafka: now)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=float, default=20.0, metavar="TPS",
        help="mean transactions per second of event time (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--merchants", type=int, default=200, metavar="M")
    parser.add_argument("--terminals", type=int, default=1_000, metavar="T")
    parser.add_argument("--cards", type=int, default=50_000, metavar="C")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="override one rate or knob of the profile (repeatable); names: "
        + ", ".join(SETTABLE),
    )  # fmt: skip
    parser.add_argument(
        "--no-final-watermarks", dest="final_watermarks", action="store_false",
        help="do not end the capture with a far-future watermark per source (with "
        "--to-kafka: per partition of each input topic)",
    )  # fmt: skip
    parser.add_argument(
        "--shards", default="auto", metavar="N",
        help="generate in N independent parts in parallel and merge them (default: auto, "
        f"{AUTO_SHARDS} from {AUTO_SHARD_FROM:,} transactions, else 1); the output depends "
        "on N, never on the machine",
    )  # fmt: skip
    live = parser.add_argument_group(
        "live traffic (--to-kafka)",
        "send the events to the input topics as they happen instead of writing a file; "
        "--rate and --duration are in event time, --speed compresses it",
    )
    live.add_argument(
        "--to-kafka", action="store_true",
        help="send to Kafka (broker and topics from --config and DEBITWATCH_* variables)",
    )  # fmt: skip
    live.add_argument(
        "--duration", type=float, metavar="S",
        help="seconds of traffic: --transactions becomes rate x S",
    )  # fmt: skip
    live.add_argument(
        "--speed", type=float, default=1.0, metavar="X",
        help="event-time seconds per wall-clock second (default: %(default)s)",
    )  # fmt: skip
    live.add_argument(
        "--max-lateness", type=float, default=900.0, metavar="S",
        help="events due more than S event-time seconds after the traffic ends are sent "
        "then instead (default: %(default)s)",
    )  # fmt: skip
    live.add_argument("--config", type=Path, metavar="FILE", help="TOML file with a [kafka] table")


class _Given(argparse.Action):
    """Store the value and remember it was given (``--start`` means "now" by default
    with ``--to-kafka``, the fixed date otherwise)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def _config(args: argparse.Namespace) -> SimulationConfig:
    """The run's config from parsed arguments; ValueError (or ProfileError) if unusable."""
    profile = resolve(args.profile, args.overrides)
    try:
        start_ms = parse_instant_ms(args.start)
    except ValueError as error:
        raise ValueError(f"--start: {error}") from None
    for name in ("transactions", "merchants", "terminals", "cards"):
        minimum = 0 if name == "transactions" else 1
        if getattr(args, name) < minimum:
            raise ValueError(f"--{name} must be >= {minimum}")
    if not args.rate > 0:
        raise ValueError("--rate must be > 0")
    transactions = args.transactions
    if args.duration is not None:
        if not args.duration >= 0:
            raise ValueError("--duration must be >= 0")
        transactions = round(args.rate * args.duration)
    return SimulationConfig(
        profile=profile,
        transactions=transactions,
        seed=args.seed,
        start_ms=start_ms,
        rate=args.rate,
        merchants=args.merchants,
        terminals=args.terminals,
        cards=args.cards,
        final_watermarks=args.final_watermarks,
    )


def _open(stack: ExitStack, path: Path) -> BinaryIO:
    if str(path) == "-":
        return sys.stdout.buffer
    return stack.enter_context(path.open("wb"))


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.items()) or "none"


def run(args: argparse.Namespace) -> int:
    """Run ``debitwatch simulate``; return the exit code."""
    try:
        config = _config(args)
    except (ProfileError, ValueError) as error:
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if args.to_kafka:
        from streams.kafka_tools_cli import simulate_to_kafka  # noqa: PLC0415 (Kafka client)

        return simulate_to_kafka(args, config, start_now=not getattr(args, "start_given", False))
    if args.output is None:
        print(f"{_PROG}: error: -o/--output is required (or --to-kafka)", file=sys.stderr)
        return USAGE_ERROR
    if args.shards == "auto":
        shards = auto_shards(config.transactions)
    elif args.shards.isdigit() and int(args.shards) >= 1:
        shards = int(args.shards)
    else:
        print(f"{_PROG}: error: --shards must be 'auto' or a number >= 1", file=sys.stderr)
        return USAGE_ERROR
    started = time.perf_counter()
    # The run allocates millions of short-lived, acyclic objects: the cyclic collector
    # would only re-scan the in-flight buffer over and over (~5 % of the run).
    collecting = gc.isenabled()
    gc.disable()
    try:
        with ExitStack() as stack:
            out = _open(stack, args.output)
            if shards == 1:
                simulation = Simulation(config)
                write_lines(simulation.lines(), out)
                stats, truth = simulation.stats, simulation.truth
                incidents = simulation.incidents
            else:
                scratch = None if str(args.output) == "-" else str(Path(args.output).parent)
                stats, truth, incidents = run_sharded(config, shards, out, scratch)
        with ExitStack() as stack:
            write_truth(truth, _open(stack, args.truth), incidents)
    except OSError as error:
        print(f"{_PROG}: error: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return IO_ERROR
    finally:
        if collecting:
            gc.enable()
    seconds = time.perf_counter() - started
    scenarios = dict(sorted(stats.scenarios.items(), key=lambda item: (-item[1], item[0])))
    alerts = dict(sorted(stats.alerts.items()))
    injected = {name: stats.incidents[name] for name in INCIDENT_TYPES if stats.incidents[name]}
    print(
        f"{_PROG}: {stats.transactions} transactions (+{stats.follow_ups} follow-up sales), "
        f"{stats.events} events, {stats.lines} lines ({stats.redelivered} redelivered, "
        f"{stats.late_tail} late tail) in {seconds:.2f} s "
        f"[profile {config.profile.name}, seed {config.seed}, shards {shards}]\n"
        f"  scenarios: {_counts(scenarios)}\n"
        f"  expected alerts ({len(truth)}): {_counts(alerts)}; "
        f"{stats.paid_again} ghosts paid again\n"
        f"  incidents ({len(incidents)}): {_counts(injected)}; "
        f"{sum(stats.incident_sales.values())} sales hit\n"
        f"  wrote {args.output} and {args.truth}",
        file=sys.stderr,
    )
    return 0


def run_simulate(argv: Sequence[str]) -> int:
    """Parse ``argv`` (the arguments after ``simulate``) and run; return the exit code."""
    parser = argparse.ArgumentParser(prog=_PROG, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))
