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
