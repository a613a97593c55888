"""Card numbers (PANs) in raw input: find them, and mask them before anything is stored.

CONTRACT §6: any run of 13 to 19 digits inside an input event that passes the Luhn
check is treated as a PAN. The event is rejected with reason ``pan_detected`` and the
raw bytes we keep for the dead-letter record have the digits masked, keeping at most
the first 6 and the last 4 (the PCI DSS display rule).

We scan the *raw bytes*, not decoded fields: a PAN in an unknown extra field, in a
``reason`` text, or in a message that is not even valid JSON must be caught too, and
the scan has to run before anything else looks at the message.

JSON may spell a digit as an escape (``"\\u0034111..."`` decodes to ``"4111..."``): when a
message holds ``\\u`` escapes, the digits and separators written that way are turned
back into plain bytes before scanning and masking, so the escape trick neither hides a
PAN from the check nor keeps it unmasked in the dead-letter copy.

A "run" is a maximal sequence of ASCII digits. We also treat the printed formats
``4111 1111 1111 1111`` / ``4111-1111-1111-1111`` (groups of four) and the Amex
``3782 822463 10005`` (4-6-5) as runs, because people paste card numbers that way into
free-text fields; this is stricter than the contract and documented in
docs/input.md. Longer digit runs (20+) are not card numbers: they would match the
Luhn check one time in ten by chance.

>>> find_pans(b'{"card_token": "tok_1", "note": "4111111111111111"}')
[(33, 49)]
>>> mask_pans(b'{"note": "4111 1111 1111 1111"}')
b'{"note": "4111 11** **** 1111"}'
"""

from __future__ import annotations

import re
from typing import Final

# One pattern for all shapes: plain runs of 13-19 digits bounded by non-digits, or the
# grouped print formats. The lookarounds keep a 25-digit run from matching its first 19.
_CANDIDATE: Final = re.compile(
    rb"(?<![0-9])(?:"
    rb"[0-9]{13,19}"
    rb"|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}"
    rb"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{5}"
    rb")(?![0-9])"
)
# Cheap pre-filter. The full pattern costs ~35 us on a 360-byte event (Python's ``re``
# has no literal prefix to skip ahead with). Mapping digits *and* the two separators to
# "0" turns "is there a digit run long enough to matter?" into one substring search
# (~1 us in all); only the rare event that passes it pays for the pattern. Separators
# count as digits here, so the grouped formats pass the filter too (and so does a date
# such as "2026-11-27 0915", which the pattern then clears).
_SHAPE: Final = bytes.maketrans(b"0123456789 -", b"000000000000")
_CANDIDATE_RUN: Final = b"0" * 13

# \u0030-\u0039, \u0020 and \u002d/\u002D: the escapes that can spell a card number.
_ESCAPED: Final = re.compile(rb"\\u00(3[0-9]|20|2[dD])")


def _unescaped(raw: bytes) -> bytes:
    """``raw`` with escaped digits and separators written plainly (JSON meaning kept,
    except in the pathological ``\\\\u0030``, where only the scan gets stricter)."""
    if b"\\u" not in raw:
        return raw
    return _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


_DIGIT_VALUES: Final = {ord(c): int(c) for c in "0123456789"}
_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

KEEP_FIRST: Final = 6
KEEP_LAST: Final = 4


def luhn_valid(digits: bytes) -> bool:
    """Return True when ``digits`` (ASCII digits only) pass the Luhn mod-10 check.

    >>> luhn_valid(b"4111111111111111"), luhn_valid(b"4111111111111112")
    (True, False)
    """
    total = 0
    for position, byte in enumerate(reversed(digits)):
        value = _DIGIT_VALUES[byte]
        total += _DOUBLED[value] if position % 2 else value
    return total % 10 == 0


def _digits_of(candidate: bytes) -> bytes:
    return candidate.replace(b" ", b"").replace(b"-", b"")


def shape_of(raw: bytes) -> bytes:
    """``raw`` with every digit and separator (escaped or not) turned into ``0``.

    Runs at C speed over any amount of bytes: a reader computes it once for a whole
    block of lines and asks it cheap questions (:func:`may_contain_pan`, and the
    fraction-length test of :mod:`models.validation`).
    """
    return _unescaped(raw).translate(_SHAPE)


def may_contain_pan(raw: bytes, shape: bytes | None = None) -> bool:
    """Cheap test: False means ``raw`` certainly holds no PAN (no long digit run)."""
    return _CANDIDATE_RUN in (shape_of(raw) if shape is None else shape)


def find_pans(raw: bytes) -> list[tuple[int, int]]:
    """Return the (start, end) byte spans of every PAN in ``raw``, in order.

    The spans index ``raw`` as written when it has no ``\\u`` escapes; otherwise they
    index its unescaped form (what :func:`mask_pans` returns).
    """
    raw = _unescaped(raw)
    if _CANDIDATE_RUN not in raw.translate(_SHAPE):
        return []
    spans = []
    for match in _CANDIDATE.finditer(raw):
        digits = _digits_of(match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


def contains_pan(raw: bytes) -> bool:
    """True when ``raw`` holds at least one PAN (see :func:`find_pans`)."""
    return bool(find_pans(raw))


def _mask_one(candidate: bytes) -> bytes:
    digit_count = len(_digits_of(candidate))
    out = bytearray(candidate)
    seen = 0
    for index, byte in enumerate(candidate):
        if 48 <= byte <= 57:
            if KEEP_FIRST <= seen < digit_count - KEEP_LAST:
                out[index] = ord("*")
            seen += 1
    return bytes(out)


def mask_pans(raw: bytes) -> bytes:
    """Return ``raw`` with the middle digits of every PAN replaced by ``*``.

    Separators and the first 6 / last 4 digits are kept, so an analyst can still tell
    the card brand and recognise the card with the cardholder, as on a receipt.
    """
    raw = _unescaped(raw)
    spans = find_pans(raw)
    if not spans:
        return raw
    pieces = []
    cursor = 0
    for start, end in spans:
        pieces.append(raw[cursor:start])
        pieces.append(_mask_one(raw[start:end]))
        cursor = end
    pieces.append(raw[cursor:])
    return b"".join(pieces)
