"""Why a terminal or merchant looks abnormal, in words (``terminal_incident`` alerts).

:func:`incident_cause` names the likeliest ``probable_cause`` from the row's pattern;
:func:`explain_incident` writes the sentence a support agent reads, e.g. "Merchant M-7
(6 terminals): 9 of 11 sales timed out in the last 2 minutes. Probable cause: replies
lost on the network."
"""

from __future__ import annotations

from collections.abc import Sequence

from models.alerts import Cause
from models.incident_features import FEATURES
from models.incident_state import Episode


def incident_cause(row: Sequence[float], usual: Sequence[float]) -> Cause:
    """The likeliest cause of an abnormal row, from the evidence pattern.

    Extra debits mean duplicate processing; errors a faulty terminal; timeouts with
    the bank answering far slower than usual an issuer that slowed past the terminals'
    timeout; timeouts with a normal bank a network that loses the replies.
    """
    values = dict(zip(FEATURES, row, strict=True))
    typical = dict(zip(FEATURES, usual, strict=True))
    if values["extra_debit_share"] >= 0.3:
        return Cause.DUPLICATE_PROCESSING
    if values["error_share"] >= 0.3 and values["error_share"] >= values["timeout_share"]:
        return Cause.TERMINAL_FAULT
    if values["timeout_share"] >= 0.2 or values["failed_but_charged_share"] >= 0.2:
        slow = max(10.0, 4 * typical["issuer_latency_p95_s"])
        if values["issuer_latency_p95_s"] >= slow:
            return Cause.ISSUER_LATE_RESPONSE
        return Cause.NETWORK_FAILURE
    if values["declined_share"] >= 0.5:
        return Cause.ACCOUNT_RESTRICTION
    return Cause.UNKNOWN


def explain_incident(
    episode: Episode,
    who: list[str],
    row: Sequence[float],
    usual: Sequence[float],
    cause: Cause,
    resolved: bool,
    window_s: float,
) -> str:
    """E.g. "Merchant M-7 (6 terminals): 41 of 45 sales timed out, ... in the last 3
    minutes. Probable cause: ..."."""
    values = dict(zip(FEATURES, row, strict=True))
    typical = dict(zip(FEATURES, usual, strict=True))
    attempts = int(values["attempts"])
    minutes = window_s / 60
    span = f"{minutes:g} minute{'s' if minutes != 1 else ''}"
    if episode.scope == "terminal":
        subject = f"Terminal {episode.entity} at merchant {episode.merchant_id}"
    else:
        subject = f"Merchant {episode.entity} ({len(who)} terminals)"
    if resolved:
        return f"{subject} is back to normal ({attempts} sales in the last {span} looked usual)."
    facts = []
    for name, words in (
        ("timeout_share", "timed out"),
        ("error_share", "ended in a terminal error"),
        ("failed_but_charged_share", "failed on the terminal but were charged"),
        ("extra_debit_share", "were debited twice"),
        ("declined_share", "were declined"),
    ):
        share = values[name]
        if share >= 0.2:
            facts.append(f"{round(share * attempts)} of {attempts} sales {words}")
    if values["issuer_latency_p95_s"] >= max(5.0, 3 * typical["issuer_latency_p95_s"]):
        facts.append(
            f"issuer latency p95 {values['issuer_latency_p95_s']:.1f} s vs "
            f"{typical['issuer_latency_p95_s']:.1f} s usual"
        )
    if not facts:
        facts.append(f"{attempts} sales with an unusual pattern")
    cause_words = {
        Cause.NETWORK_FAILURE: "replies lost on the network",
        Cause.ISSUER_LATE_RESPONSE: "the bank answering after the terminals' timeout",
        Cause.TERMINAL_FAULT: "a faulty terminal",
        Cause.DUPLICATE_PROCESSING: "duplicate processing",
        Cause.ACCOUNT_RESTRICTION: "the bank declining these cards",
    }.get(cause, "unknown")
    return f"{subject}: {', '.join(facts)} in the last {span}. Probable cause: {cause_words}."
