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
from collections.abc import Iterator
from typing import Final, NamedTuple

import msgspec

from models.events import Step

RECORD: Final = struct.Struct("<BqqH2s")
NO_RESPONSE_CODE: Final = b"\0\0"
# Event ids are kept as one string, each id followed by this separator: one object per
# transaction instead of a tuple plus one string per event (~230 bytes less for a
# 4-event sale). Validation refuses ids with control characters, so it cannot occur
# inside an id.
ID_SEPARATOR: Final = "\x1f"

# Alert lifecycle per kind, persisted: (status, detected_at_us).
FIRING: Final = 1
RESOLVED: Final = 2

# Follow-up sale at the same terminal (for "paid again"), looked up once at the verdict.
FOLLOWUP_UNKNOWN: Final = -1
FOLLOWUP_NONE: Final = 0
FOLLOWUP_SAME_CARD: Final = 1
FOLLOWUP_OTHER_CARD: Final = 2

_STATE_VERSION: Final = 1


def transaction_key(terminal_id: str, stan: str, second: int) -> str:
    return f"{terminal_id}/{stan}/{second}"


def split_key(key: str) -> tuple[str, str, int]:
    terminal_id, stan, second = key.rsplit("/", 2)
    return terminal_id, stan, int(second)


class Record(NamedTuple):
    """One event of the log, unpacked."""

    step: Step
    occurred_us: int
    amount_minor: int
    currency: int  # ISO 4217 numeric
    response_code: str | None
    event_id: str


class Txn:
    """Everything the core knows about one transaction.

    ``merchant_id`` and ``card_token`` come from the terminal's side when it has spoken
    (it is the party that served the cardholder), else from the issuer's first event.
    """

    __slots__ = (
        "alerts",
        "card_token",
        "followup",
        "from_terminal",
        "ids",
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

    def has_event(self, event_id: str) -> bool:
        """Is ``event_id`` in the log already (a redelivery)?"""
        return f"{ID_SEPARATOR}{event_id}{ID_SEPARATOR}" in self.ids

    @property
    def event_ids(self) -> list[str]:
        """The event ids in arrival order (the order of :attr:`records`)."""
        return self.ids[1:-1].split(ID_SEPARATOR) if len(self.ids) > 1 else []

    def append(
        self,
        step: Step,
        occurred_us: int,
        amount_minor: int,
        currency: int,
        response_code: str | None,
        event_id: str,
    ) -> None:
        code = response_code.encode() if response_code else NO_RESPONSE_CODE
        self.records += RECORD.pack(step, occurred_us, amount_minor, currency, code)
        self.ids += event_id + ID_SEPARATOR

    def log(self) -> Iterator[Record]:
        """The events in arrival order."""
        for (step, occurred, amount, currency, code), event_id in zip(
            RECORD.iter_unpack(self.records), self.event_ids, strict=True
        ):
            yield Record(
                Step(step),
                occurred,
                amount,
                currency,
                None if code == NO_RESPONSE_CODE else code.decode(),
                event_id,
            )

    def alert_status(self, kind: str) -> int:
        """0 (never fired), FIRING or RESOLVED."""
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
            )
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> Txn:
        (version, key, merchant, card, records, ids, alerts, followup, from_terminal) = (
            _DECODER.decode(blob)
        )
        if version != _STATE_VERSION:
            raise ValueError(f"transaction state version {version} is not {_STATE_VERSION}")
        txn = cls(key, merchant, card)
        txn.records = records
        txn.ids = ids
        txn.alerts = None if alerts is None else {k: (s, t) for k, (s, t) in alerts.items()}
        txn.followup = followup
        txn.from_terminal = from_terminal
        return txn

    def __repr__(self) -> str:
        return f"Txn({self.key!r}, events={len(self.records) // RECORD.size}, alerts={self.alerts})"


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
    ]
)
