"""Dead-letter records (CONTRACT §5): why a message was refused, where it came from, and
its raw bytes (base64) with every card number masked (CONTRACT §6).

The same record is written by the offline replay (``--dlq FILE``, with the capture file
and line) and by the stream workers (topic ``debitwatch.dlq``, with topic, partition and
offset), so one tool reads both.
"""

from __future__ import annotations

import base64

import msgspec

from models import pan
from models.validation import MAX_MESSAGE_BYTES, Reason


class DeadLetter(msgspec.Struct, kw_only=True, omit_defaults=True):
    reason: Reason
    detail: str
    source: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    event_id: str | None = None
    raw_size: int
    raw_truncated: bool = False
    raw_base64: str

    def raw_bytes(self) -> bytes:
        """The stored (masked, possibly truncated) bytes."""
        return base64.b64decode(self.raw_base64)


def dead_letter(
    reason: Reason,
    detail: str,
    raw: bytes,
    *,
    source: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    file: str | None = None,
    line: int | None = None,
    event_id: str | None = None,
) -> DeadLetter:
    """Build a record; masks PANs first, then keeps at most 64 KiB of the raw bytes.

    Masking before truncating means a card number cut in half at the limit is still
    masked (the cut part alone would not look like a PAN any more).
    """
    masked = pan.mask_pans(raw)
    kept = masked[:MAX_MESSAGE_BYTES]
    return DeadLetter(
        reason=reason,
        detail=detail,
        raw_size=len(raw),
        raw_truncated=len(kept) < len(masked),
        raw_base64=base64.b64encode(kept).decode("ascii"),
        source=source,
        topic=topic,
        partition=partition,
        offset=offset,
        file=file,
        line=line,
        event_id=event_id,
    )
