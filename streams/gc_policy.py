"""How often CPython's cyclic garbage collector runs in a worker or a replay.

The core holds every open transaction as a few container objects (a ``Txn``, its lists
of ids and alerts), hundreds of thousands to millions of them, and allocates a few
short-lived tuples and lists per event that reference counting alone frees. With
CPython's default thresholds (700, 10, 10) the collector starts every 700 net
allocations and, every hundred of those, walks older generations that the open
transactions fill: 11.5 % of a replay's CPU on the 200,000-transaction capture
(2.0 of 17.4 s, 1,540 collections), and a full collection over a few million objects
stalls the event loop for a second or more (docs/PERFORMANCE.md, "The garbage
collector"). The defaults here start a young collection every 50,000 allocations and
the full one rarely; cycles are still collected, later. ``"700,10,10"`` restores
CPython's behaviour (``DEBITWATCH_GC_THRESHOLD``).
"""

from __future__ import annotations

import gc
import os
from typing import Final

from models.config import ConfigError

DEFAULT_THRESHOLD: Final = "50000,20,100"


def parse_threshold(text: str) -> tuple[int, int, int]:
    """``"g0,g1,g2"`` as three positive integers (``gc.set_threshold``'s arguments)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(
            f"gc_threshold must be three positive integers like {DEFAULT_THRESHOLD!r} "
            f"(CPython's own: '700,10,10'), got {text!r}"
        )
    return values[0], values[1], values[2]


def apply(threshold: str = DEFAULT_THRESHOLD, *, freeze: bool = False) -> None:
    """Set the collector's thresholds; with ``freeze``, also move everything alive now
    (the imported libraries, the app) out of the collector's sight for good, as
    ``gc.freeze`` does: objects made at start-up are never garbage."""
    gc.set_threshold(*parse_threshold(threshold))
    if freeze:
        gc.collect()
        gc.freeze()


def apply_for_replay() -> None:
    """The policy of ``debitwatch replay`` (and of a benchmark timing it in-process):
    the worker's variable ``DEBITWATCH_GC_THRESHOLD`` if set, else the default."""
    apply(os.environ.get("DEBITWATCH_GC_THRESHOLD") or DEFAULT_THRESHOLD)
