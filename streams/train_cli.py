"""``debitwatch train --from CAPTURE... -o MODEL`` (the incident model, docs/incidents.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from models.config import ConfigError, load_config
from models.incident_model import IncidentModel
from streams.train import THRESHOLD_QUANTILE, train

DESCRIPTION = (
    "Fit the incident model on captures of NORMAL traffic (no incidents): they are "
    "replayed through the core, every per-terminal feature row the workers would score "
    "is collected, and the model is saved as a skops file with its metadata (features, "
    "training-data hash, date). Workers load it from incident_model (docs/configuration.md)."
)


def add_parser(commands: Any) -> None:
    tr = commands.add_parser("train", help="fit the incident model", description=DESCRIPTION)
    tr.add_argument(
        "--from", dest="captures", nargs="+", type=Path, required=True, metavar="CAPTURE"
    )
    tr.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL")
    tr.add_argument("--config", type=Path, help="TOML file with a [detection] table")
    tr.add_argument(
        "--threshold-quantile",
        type=float,
        default=THRESHOLD_QUANTILE,
        help="training rows' quantile past which a row is abnormal (default: %(default)s)",
    )
    tr.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    for path in args.captures:
        if not path.is_file():
            err.print(f"[red]debitwatch train:[/red] cannot read {path}")
            return 3
    try:
        config = load_config(args.config) if args.config else None
    except ConfigError as error:
        err.print(f"[red]debitwatch train:[/red] {error}")
        return 4
    params: dict[str, Any] = {"threshold_quantile": args.threshold_quantile}
    try:
        summary = train(args.captures, args.output, model=IncidentModel(**params), config=config)
    except ValueError as error:
        err.print(f"[red]debitwatch train:[/red] {error}")
        return 1
    err.print(
        f"debitwatch train: {summary.rows:,} feature rows from {summary.transactions_seen:,} "
        f"events in {summary.seconds:.1f} s; threshold {summary.threshold:.4f}; "
        f"training data sha256 {summary.training_hash[:16]}...; wrote {summary.path}"
    )
    return 0
