"""Capture files (CONTRACT §4): one ``{"source": ..., "event": {...}}`` per line.

The envelope is decoded with the event left as raw bytes (``msgspec.Raw``), so the event
goes through exactly the validation a Kafka message gets (size, PAN, schema) and its
dead-letter record holds the event's own bytes, as it would from a topic.
"""

from __future__ import annotations

from typing import Final

import msgspec

from models.events import Source
from models.validation import Reason, Rejection


class Envelope(msgspec.Struct, gc=False):
    source: Source
    event: msgspec.Raw


_ENVELOPE: Final = msgspec.json.Decoder(Envelope)


def read_line(line: bytes) -> tuple[Source, bytes] | Rejection:
    """Split one capture line into its source and the raw bytes of its event."""
    try:
        envelope = _ENVELOPE.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:  # ValidationError included
        return Rejection(Reason.INVALID_CAPTURE_LINE, f"not a capture line: {error}"[:200])
    return envelope.source, bytes(envelope.event)


def encode_line(source: Source, event: bytes) -> bytes:
    """The capture line for an event's raw JSON bytes (no trailing newline)."""
    return b'{"source":"' + source.encode() + b'","event":' + event + b"}"
