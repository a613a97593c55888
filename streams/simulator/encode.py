"""The capture's text formats: event JSON rules, capture-line framing, watermarks.

The event JSON itself is rendered in :mod:`streams.simulator.emitter` (the hot loop);
this module holds the rules it follows and the small formats around it.

The JSON is built with f-strings from fields the simulator generated itself (ids,
tokens, codes, fixed reason texts), none of which contains a quote, a backslash or a
control character, so no escaping is needed; the tests decode every line with the
strict contract decoder to keep it that way. Field order follows CONTRACT §1.

Time formats differ by side, as they do in the field:

* terminal side: ``transmitted_at`` and ``occurred_at`` in the merchant's local offset
  (``+08:00``, ``+05:30``, ``-05:00`` ...), ``transmitted_at`` with milliseconds on some
  terminals; ``occurred_at`` on the terminal's own (skewed) clock;
* issuer side: ``transmitted_at`` as forwarded by the acquirer, UTC ``Z`` to the second;
  ``occurred_at`` in UTC with milliseconds on the issuer's accurate clock.

Both sides' ``transmitted_at`` name the same second, so they share one key.
"""

from __future__ import annotations

from typing import Final

from models.capture import LINE_PREFIX as CAPTURE_LINE_PREFIX

# CONTRACT §5: transmitted_at may be at most this much after the event's own occurred_at.
MAX_CLOCK_SKEW_MS: Final = 120_000

FINAL_WATERMARK_AT: Final = "9999-12-31T23:59:59Z"
# The framing is models.capture's (one definition for the replay and the simulator).
LINE_PREFIX: Final[dict[str, bytes]] = {s: p for s, p in CAPTURE_LINE_PREFIX.items()}
_PREFIX_LENGTH: Final[dict[str, int]] = {s: len(prefix) for s, prefix in LINE_PREFIX.items()}


def final_watermark(source: str) -> bytes:
    """The far-future watermark that closes every window at the end of a capture.

    >>> final_watermark("issuer")
    b'{"type":"watermark","event_id":"wm-final-issuer","occurred_at":"9999-12-31T23:59:59Z"}'
    """
    return (
        f'{{"type":"watermark","event_id":"wm-final-{source}",'
        f'"occurred_at":"{FINAL_WATERMARK_AT}"}}'
    ).encode()


def capture_line(source: str, event_json: bytes) -> bytes:
    """One CONTRACT §4 capture line: ``{"source": ..., "event": {...}}`` and a newline."""
    return LINE_PREFIX[source] + event_json + b"}\n"


def watermark_line(source: str) -> str:
    """The capture line of :func:`final_watermark` for ``source``, as text."""
    return capture_line(source, final_watermark(source)).decode()


def event_json(source: str, line: str) -> bytes:
    """The event object of a framed capture line (what a Kafka producer sends).

    >>> event_json("issuer", '{"source":"issuer","event":{"type":"debit"}}\\n')
    b'{"type":"debit"}'
    """
    return line[_PREFIX_LENGTH[source] : -2].encode()
