"""The features of the incident model: one vector per terminal and evaluation time.

Filled by :mod:`models.incidents` from the events of the terminal's recent
transactions (by their key time, ``transmitted_at``), scored by
:class:`models.incident_model.IncidentModel`. The order here is the column order of
every matrix the model sees, and is saved with the model: a model trained on other
features is refused at load.
"""

from __future__ import annotations

from typing import Final

# A first issuer answer later than this is "late": terminals commonly stop waiting after
# 30 s (CONTRACT's default_terminal_timeout). Counting late answers, not only reading
# latency quantiles, tells one slow answer on a quiet terminal (routine) from a bank
# that answers every sale late (an incident): see models/incident_model.py.
LATE_ANSWER_S: Final = 30.0

FEATURES: Final[tuple[str, ...]] = (
    "attempts",  # transactions with a terminal event in the window
    "timeout_share",  # of the terminal outcomes in the window: "timeout"
    "error_share",  # ... "error"
    "declined_share",  # ... "declined"
    "cancelled_share",  # ... "cancelled"
    "reversal_share",  # terminal reversals per attempt
    "extra_debit_share",  # debits beyond the first of their transaction, per attempt
    "failed_but_charged_share",  # failed on the terminal yet debited/held, per attempt
    "late_answer_share",  # the bank's first answer came after 30 s (LATE_ANSWER_S), per attempt
    "issuer_latency_p50_s",  # issuer's first answer minus transmitted_at, median
    "issuer_latency_p95_s",  # ... 95th percentile
)
