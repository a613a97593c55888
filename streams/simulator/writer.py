"""File consumers of a simulation: the capture (CONTRACT §4) and the truth (JSON Lines).

Writing is batched: lines are joined and written a few thousand at a time, which keeps
the per-line cost to one bytes concatenation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import BinaryIO, Final

from models.truth import TRUTH_ENCODER, IncidentTruth, TruthRecord
from streams.simulator.encode import capture_line
from streams.simulator.ordering import Arrival, Line

_BATCH: Final = 4_096
_TEXT: Final = itemgetter(2)


def write_capture(arrivals: Iterable[Arrival], out: BinaryIO) -> int:
    """Write every arrival as a capture line; return the number of lines written."""
    batch: list[bytes] = []
    lines = 0
    for _, source, data in arrivals:
        batch.append(capture_line(source, data))
        if len(batch) >= _BATCH:
            out.write(b"".join(batch))
            lines += len(batch)
            batch.clear()
    out.write(b"".join(batch))
    return lines + len(batch)


def write_lines(batches: Iterable[list[Line]], out: BinaryIO) -> int:
    """Write batches of framed lines (``Simulation.lines``): the fast path of the CLI."""
    lines = 0
    pending: list[str] = []
    for batch in batches:
        pending.append("".join(map(_TEXT, batch)))
        lines += len(batch)
        if len(pending) >= 64:
            out.write("".join(pending).encode())
            pending.clear()
    out.write("".join(pending).encode())
    return lines


def write_truth(
    records: Iterable[TruthRecord], out: BinaryIO, incidents: Sequence[IncidentTruth] = ()
) -> int:
    """Write one JSON object per truth record, then one per injected incident
    (``models.truth.decode_truth_line`` tells them apart); return the line count."""
    count = 0
    encode = TRUTH_ENCODER.encode
    for record in records:
        out.write(encode(record) + b"\n")
        count += 1
    for incident in incidents:
        out.write(encode(incident) + b"\n")
        count += 1
    return count
