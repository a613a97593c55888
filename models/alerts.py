"""The alerts of CONTRACT §2: kinds, probable causes, the deterministic id, the record.

An alert is published once per state change and keyed by ``alert_id``. The id depends
only on the transaction key and the kind, so every worker, every rerun and the
simulator's ground truth name the same alert the same way:

>>> alert_id("T-0042", "000123", 1764234902, "unmatched_debit")
'ud-79afa4b87276ea6aecbda54736d30883'
"""

from __future__ import annotations

import enum
import hashlib

import msgspec


class Kind(enum.StrEnum):
    """Alert kinds. The first two are unmatched debits, the next three disagreements."""

    UNMATCHED_DEBIT = "unmatched_debit"
    REVERSAL_NOT_APPLIED = "reversal_not_applied"
    TERMINAL_APPROVED_NO_DEBIT = "terminal_approved_no_debit"
    AMOUNT_MISMATCH = "amount_mismatch"
    DUPLICATE_DEBIT = "duplicate_debit"
    TERMINAL_INCIDENT = "terminal_incident"


TRANSACTION_KINDS: tuple[Kind, ...] = (
    Kind.UNMATCHED_DEBIT,
    Kind.REVERSAL_NOT_APPLIED,
    Kind.TERMINAL_APPROVED_NO_DEBIT,
    Kind.AMOUNT_MISMATCH,
    Kind.DUPLICATE_DEBIT,
)

_ID_PREFIX: dict[Kind, str] = {
    Kind.UNMATCHED_DEBIT: "ud",
    Kind.REVERSAL_NOT_APPLIED: "rn",
    Kind.TERMINAL_APPROVED_NO_DEBIT: "an",
    Kind.AMOUNT_MISMATCH: "am",
    Kind.DUPLICATE_DEBIT: "dd",
    Kind.TERMINAL_INCIDENT: "ti",
}


class Cause(enum.StrEnum):
    """``probable_cause`` values (MISSION.md, "Why it happens")."""

    NETWORK_FAILURE = "network_failure"
    ISSUER_LATE_RESPONSE = "issuer_late_response"
    TERMINAL_FAULT = "terminal_fault"
    REVERSAL_LOST = "reversal_lost"
    ACCOUNT_RESTRICTION = "account_restriction"
    MERCHANT_CONFIGURATION = "merchant_configuration"
    OPERATOR_ERROR = "operator_error"
    PAYMENT_METHOD_SWITCH = "payment_method_switch"
    DUPLICATE_PROCESSING = "duplicate_processing"
    UNKNOWN = "unknown"


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Status(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def alert_id(terminal_id: str, stan: str, transmitted_second: int, kind: str) -> str:
    """The deterministic id of (transaction, kind): a short kind prefix and a hash.

    The hash input separates fields with NUL, which no valid identifier needs, and uses
    the key's UTC epoch second, so ``+08:00`` and ``Z`` spellings of one instant agree.
    """
    material = f"{terminal_id}\0{stan}\0{transmitted_second}\0{kind}".encode()
    digest = hashlib.blake2b(material, digest_size=16).hexdigest()
    return f"{_ID_PREFIX[Kind(kind)]}-{digest}"


class IncidentFeature(msgspec.Struct):
    """One of the features that made a terminal look abnormal, next to its usual value."""

    name: str
    value: float
    usual: float


class Alert(msgspec.Struct, kw_only=True, omit_defaults=False):
    """One published alert state (CONTRACT §2). Field order is the JSON order."""

    alert_id: str
    kind: Kind
    status: Status
    terminal_id: str | None
    merchant_id: str | None
    stan: str | None
    transmitted_at: str | None
    card_token: str | None
    currency: str | None
    terminal_amount_minor: int | None
    issuer_amount_minor: int | None
    at_risk_minor: int
    evidence: list[str]
    detected_at: str
    explanation: str
    probable_cause: Cause
    severity: Severity
    score: float
    resolved_at: str | None = None
    resolution: str | None = None
    # Optional fields beyond the contract (CONTRACT §2 allows additions).
    issuer_currency: str | None = None
    terminal_outcome: str | None = None
    net_position_minor: int | None = None
    paid_again: bool = False
    window_closed_at: str | None = None
    # Regulatory deadline (models/deadlines.py): set on the kinds its policy covers.
    deadline: str | None = None
    deadline_passed: bool = False
    compensation_minor: int = 0
    compensation_currency: str | None = None
    # terminal_incident only: what it covers ("terminal"/"merchant") and why it fired.
    scope: str | None = None
    terminals: list[str] | None = None  # a merchant incident's terminals (at most 50)
    incident_features: list[IncidentFeature] | None = None
