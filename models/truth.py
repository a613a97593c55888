"""Ground truth written by the simulator and read by ``debitwatch evaluate``.

One JSON object per line: an alert that must be *firing* at the end of the capture
(its last published status is ``firing``), with the cause the simulator injected.
Alerts that fire and later resolve inside the capture are not in the truth: §4 says
only the final firing set is fixed by the input.
"""

from __future__ import annotations

import msgspec

from models.alerts import Cause, Kind


class TruthRecord(msgspec.Struct, kw_only=True):
    alert_id: str
    kind: Kind
    terminal_id: str
    stan: str
    transmitted_at: str
    merchant_id: str
    card_token: str
    probable_cause: Cause
    paid_again: bool = False
    at_risk_minor: int = 0
    scenario: str = ""


TRUTH_DECODER = msgspec.json.Decoder(TruthRecord)
TRUTH_ENCODER = msgspec.json.Encoder()


class IncidentTruth(msgspec.Struct, kw_only=True):
    """A fleet-level incident the simulator injected (one line of the truth file).

    Told apart from :class:`TruthRecord` lines by ``kind == "terminal_incident"``.
    ``terminal_ids`` are the terminals whose traffic the incident touched; a
    ``terminal_incident`` alert on any of them, detected between ``start`` and
    ``end`` (plus the evaluation's slack), finds it.
    """

    kind: Kind = Kind.TERMINAL_INCIDENT
    incident_id: str
    incident: str  # merchant_outage | issuer_slowdown | faulty_terminal | duplicate_burst
    scope: str  # "merchant", "market" or "terminal": what the incident hit
    merchant_id: str | None = None
    market: str | None = None  # the currency of the market, for an issuer slowdown
    terminal_ids: list[str]
    start: str  # RFC 3339, UTC
    end: str
    probable_cause: Cause


class _KindOnly(msgspec.Struct):
    kind: str


_KIND_ONLY = msgspec.json.Decoder(_KindOnly)
INCIDENT_DECODER = msgspec.json.Decoder(IncidentTruth)


def decode_truth_line(line: bytes | str) -> TruthRecord | IncidentTruth:
    """One truth line: an expected transaction alert, or an injected incident."""
    if _KIND_ONLY.decode(line).kind == Kind.TERMINAL_INCIDENT:
        return INCIDENT_DECODER.decode(line)
    return TRUTH_DECODER.decode(line)
