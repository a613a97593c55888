"""Per-transaction state: the transaction key and the compact log of its events.

The state of a transaction is the log of what each side said (one fixed-size record per
event) plus the event ids (the redelivery dedup set and the alert evidence), and the
lifecycle of its alerts. Verdicts are pure functions of the log (:mod:`models.verdicts`),
so there is one truth and nothing to keep in sync.

Why packed records: a million open transactions must fit in well under 1 KiB each
(bench/), and the stream workers keep this state in changelogged tables. A Python
tuple per event costs ~200 bytes; a 21-byte ``struct`` record costs 21, and the
whole state serialises to one msgpack blob (:meth:`Txn.to_bytes`).

The transaction key (CONTRACT §1) is ``terminal_id/stan/epoch_second``; it reads back
from the right (``stan`` and the second contain no ``/``), so any terminal id works:

>>> transaction_key("T/1", "000042", 1764234902)
'T/1/000042/1764234902'
>>> split_key('T/1/000042/1764234902')
('T/1', '000042', 1764234902)
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from models.events import Step

RECORD: Final = struct.Struct("<BqqH2s")  # step, occurred_us, amount, ISO numeric, code
NO_RESPONSE_CODE: Final = b"\0\0"
# Event ids are kept as one string, each id tagged with its side ("t"/"i": two parties
# may use the same id) and followed by this separator: one object per transaction
# instead of a tuple plus one string per event (~230 bytes less for a 4-event sale).
# Validation refuses ids with control characters, so it cannot occur inside an id.
ID_SEPARATOR: Final = "\x1f"
TERMINAL_TAG: Final = "t"
ISSUER_TAG: Final = "i"
# A sale has a handful of events; thousands on one key is a producer looping. Beyond
# this the key's events go to the dead-letter output (too_many_events), so one bad key
# cannot make a worker quadratic.
MAX_EVENTS: Final = 1_000

# Alert lifecycle per kind, persisted: (status, detected_at_us). OVERDUE is FIRING after
# its regulatory deadline passed and the escalated alert was published (models/deadlines.py).
FIRING: Final = 1
RESOLVED: Final = 2
OVERDUE: Final = 3

# Follow-up sale at the same terminal (for "paid again"), looked up once at the verdict.
FOLLOWUP_UNKNOWN: Final = -1
FOLLOWUP_NONE: Final = 0
FOLLOWUP_SAME_CARD: Final = 1
FOLLOWUP_OTHER_CARD: Final = 2

_STATE_VERSION: Final = 1
_LAST_TERMINAL_STEP: Final = int(Step.TERMINAL_REVERSAL)


def transaction_key(terminal_id: str, stan: str, second: int) -> str:
    return f"{terminal_id}/{stan}/{second}"


def split_key(key: str) -> tuple[str, str, int]:
    terminal_id, stan, second = key.rsplit("/", 2)
    return terminal_id, stan, int(second)


class Txn:
    """Everything the core knows about one transaction.

    ``merchant_id`` and ``card_token`` come from the terminal's side when it has spoken
    (it is the party that served the cardholder), else from the issuer's first event.
    ``judged`` records that the window-close verdict was made, so a restored state whose
    window closed meanwhile is judged exactly once.
    """

    __slots__ = (
        "alerts",
        "card_token",
        "followup",
        "from_terminal",
        "ids",
        "judged",
        "key",
        "merchant_id",
        "records",
    )

    def __init__(self, key: str, merchant_id: str, card_token: str) -> None:
        self.key = key
        self.merchant_id = merchant_id
        self.card_token = card_token
        self.records = b""
        self.ids = ID_SEPARATOR
        self.alerts: dict[str, tuple[int, int]] | None = None
        self.followup = FOLLOWUP_UNKNOWN
        self.from_terminal = False
        self.judged = False

    def has_event(self, tag: str, event_id: str) -> bool:
        """Is this side's ``event_id`` in the log already (a redelivery)?"""
        return f"{ID_SEPARATOR}{tag}{event_id}{ID_SEPARATOR}" in self.ids

    @property
    def event_count(self) -> int:
        return len(self.records) // RECORD.size

    @property
    def event_ids(self) -> list[str]:
        """The event ids in arrival order (the order of :attr:`records`)."""
        if len(self.ids) == 1:
            return []
        return [tagged[1:] for tagged in self.ids[1:-1].split(ID_SEPARATOR)]

    def append(
        self,
        step: int,
        occurred_us: int,
        amount_minor: int,
        currency: int,
        response_code: str | None,
        event_id: str,
    ) -> None:
        code = response_code.encode() if response_code else NO_RESPONSE_CODE
        self.records += RECORD.pack(step, occurred_us, amount_minor, currency, code)
        tag = TERMINAL_TAG if step <= _LAST_TERMINAL_STEP else ISSUER_TAG
        self.ids += tag + event_id + ID_SEPARATOR

    def alert_status(self, kind: str) -> int:
        """0 (never fired), FIRING, RESOLVED or OVERDUE (still firing)."""
        if self.alerts is None:
            return 0
        state = self.alerts.get(kind)
        return 0 if state is None else state[0]

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(
            (
                _STATE_VERSION,
                self.key,
                self.merchant_id,
                self.card_token,
                self.records,
                self.ids,
                self.alerts,
                self.followup,
                self.from_terminal,
                self.judged,
            )
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> Txn:
        """Restore a :meth:`to_bytes` blob; ``ValueError`` if it is not a valid state.

        A changelog may hold anything a past version or a bad producer wrote, so the
        invariants the core relies on are checked here rather than trusted.
        """
        try:
            (
                version,
                key,
                merchant,
                card,
                records,
                ids,
                alerts,
                followup,
                from_terminal,
                judged,
            ) = _DECODER.decode(blob)
        except msgspec.DecodeError as error:
            raise ValueError(f"not a transaction state: {error}") from error
        if version != _STATE_VERSION:
            raise ValueError(f"transaction state version {version} is not {_STATE_VERSION}")
        if key.count("/") < 2 or not key.rsplit("/", 1)[1].lstrip("-").isdigit():
            raise ValueError(f"not a transaction key: {key!r}")
        if len(records) % RECORD.size:
            raise ValueError(f"{key}: event records are not {RECORD.size}-byte aligned")
        if not ids.startswith(ID_SEPARATOR) or not ids.endswith(ID_SEPARATOR):
            raise ValueError(f"{key}: malformed event ids")
        if ids.count(ID_SEPARATOR) - 1 != len(records) // RECORD.size:
            raise ValueError(f"{key}: event ids and records disagree")
        txn = cls(key, merchant, card)
        txn.records = records
        txn.ids = ids
        txn.alerts = None if alerts is None else {k: (s, t) for k, (s, t) in alerts.items()}
        txn.followup = followup
        txn.from_terminal = from_terminal
        txn.judged = judged
        return txn

    @staticmethod
    def merchant_of(blob: bytes) -> str:
        """The ``merchant_id`` of a :meth:`to_bytes` blob, without decoding the rest: the
        stream workers place each stored state in its merchant's join partition."""
        try:
            return _MERCHANT_ONLY.decode(blob)[2]
        except msgspec.DecodeError as error:
            raise ValueError(f"not a transaction state: {error}") from error

    def __repr__(self) -> str:
        return f"Txn({self.key!r}, events={self.event_count}, alerts={self.alerts})"


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(
    tuple[
        int,
        str,
        str,
        str,
        bytes,
        str,
        dict[str, tuple[int, int]] | None,
        int,
        bool,
        bool,
    ]
)
_MERCHANT_ONLY: Final = msgspec.msgpack.Decoder(
    tuple[
        int,
        str,
        str,
        msgspec.Raw,
        msgspec.Raw,
        msgspec.Raw,
        msgspec.Raw,
        msgspec.Raw,
        msgspec.Raw,
        msgspec.Raw,
    ]
)
