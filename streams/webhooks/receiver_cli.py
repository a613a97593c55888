"""``debitwatch webhook-receiver``: the command line of :mod:`streams.webhooks.receiver`.

::

    debitwatch webhook-receiver --port 8080                  # secret: $DEBITWATCH_WEBHOOK_SECRET
    debitwatch webhook-receiver --port 8080 --record deliveries.jsonl --fail-with 503 --fail-for 30

Kept apart from the server so that every other command does not import aiohttp.
Exit codes: 0 stopped by SIGTERM/Ctrl-C; 2 usage error; 4 no usable secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from models.config import ConfigError

DEFAULT_SECRET_ENV: Final = "DEBITWATCH_WEBHOOK_SECRET"
DESCRIPTION: Final = (
    "Receive alert webhooks over HTTP, verify their Standard Webhooks signature (401 when "
    "it does not verify), print each accepted alert and optionally record every request. "
    "--fail-with makes it answer an error status instead, to rehearse an outage "
    "(docs/webhooks.md)."
)
EXIT_CONFIG: Final = 4


def add_parser(commands: Any) -> None:
    """Register ``webhook-receiver`` with the CLI (streams/cli.py)."""
    rc = commands.add_parser(
        "webhook-receiver", help="a receiver that verifies alert webhooks", description=DESCRIPTION
    )
    rc.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    rc.add_argument("--host", default="0.0.0.0", help="address to bind (default: %(default)s)")
    rc.add_argument(
        "--secret-env",
        default=DEFAULT_SECRET_ENV,
        metavar="NAME",
        help="environment variable holding the whsec_ secret (default: %(default)s)",
    )
    rc.add_argument(
        "--fail-with", type=_status, metavar="STATUS", help="answer this status instead of 204"
    )
    rc.add_argument(
        "--fail-for",
        type=float,
        metavar="S",
        help="only for S seconds from the first request (default: always)",
    )
    rc.add_argument("--retry-after", metavar="VALUE", help="Retry-After header on failures")
    rc.add_argument("--record", type=Path, metavar="FILE", help="append a JSON line per request")
    rc.add_argument(
        "--record-bodies", action="store_true", help="record the signed headers and raw body too"
    )
    rc.set_defaults(handler=run)


def _status(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 300 <= value <= 599:
        raise argparse.ArgumentTypeError(f"{text} is not an HTTP error status (300-599)")
    return value


def run(args: argparse.Namespace) -> int:
    from streams.webhooks.config import check_secret  # noqa: PLC0415 (imports Faust's settings)
    from streams.webhooks.receiver import Receiver, serve  # noqa: PLC0415 (aiohttp)

    err = Console(stderr=True)
    secret = os.environ.get(args.secret_env, "").strip()
    try:
        if not secret:
            raise ConfigError(f"environment variable {args.secret_env} is unset or empty")
        check_secret(secret, f"${args.secret_env}")
    except ConfigError as error:
        err.print(f"[red]debitwatch webhook-receiver:[/red] {error}", soft_wrap=True)
        return EXIT_CONFIG
    with contextlib.ExitStack() as stack:
        record = stack.enter_context(args.record.open("a")) if args.record else None
        receiver = Receiver(
            secret,
            fail_with=args.fail_with,
            fail_for=args.fail_for,
            retry_after=args.retry_after,
            record=record,
            record_bodies=args.record_bodies,
        )
        asyncio.run(serve(receiver, args.host, args.port))
    return 0
