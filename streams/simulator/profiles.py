"""Traffic profiles: how often each scenario happens and how disordered delivery is.

Every transaction draws exactly one *primary scenario*. The benign and anomaly rates
below are per-transaction probabilities; ``approved`` (a clean, matched sale) takes
whatever probability is left, so ``--set network_failure=0.02`` means exactly "2 % of
transactions are network-failure ghosts" and the rest of the profile stays put.
*Shares* are conditional probabilities inside a scenario (e.g. 40 % of the eligible
ghosts are followed by the cardholder paying again). Every field is settable from the
command line with ``--set NAME=VALUE``.

Primary scenario rates (per transaction):

=============================== ======== ========= ======== ================================
name                            normal   default   storm    raises (kind / probable_cause)
=============================== ======== ========= ======== ================================
approved                        rest     rest      rest     nothing (matched)
declined                        0.0400   0.0400    0.0400   nothing (clean)
timeout_no_money                0.0050   0.0050    0.0050   nothing (clean)
timeout_reversed                0.0040   0.0040    0.0040   nothing (reversed in the window)
auto_reversed                   0.0020   0.0020    0.0020   nothing (reversed in the window)
retry_after_decline             0.0100   0.0100    0.0100   nothing (decline, then a new sale)
network_failure                 0        0.0050    0.0417   unmatched_debit / network_failure
network_failure_standin         0        0.0015    0.0125   terminal_approved_no_debit / nf
issuer_late_response            0        0.0040    0.0333   unmatched_debit / issuer_late_resp.
terminal_fault                  0        0.0035    0.0292   unmatched_debit / terminal_fault
terminal_fault_false_approval   0        0.0015    0.0125   terminal_approved_no_debit / tf
reversal_lost                   0        0.0030    0.0250   reversal_not_applied / reversal_lost
account_restriction             0        0.0025    0.0208   unmatched_debit / account_restr.
merchant_configuration          0        0.0025    0.0208   amount_mismatch / merchant_config.
operator_error_amount           0        0.0015    0.0125   amount_mismatch / operator_error
operator_error_cancelled        0        0.0015    0.0125   unmatched_debit / operator_error
payment_method_switch           0        0.0015    0.0125   unmatched_debit / pay._method_switch
duplicate_processing            0        0.0020    0.0167   duplicate_debit / dup._processing
(anomalies in all)              0 %      3.0 %     25 %
=============================== ======== ========= ======== ================================

Shares and disorder (same in normal and default unless shown):

=============================== ========= ======== ==========================================
name                            default   storm    meaning
=============================== ========= ======== ==========================================
no_outcome_share                0.20      0.20     network_failure: no terminal outcome at all
duplicate_timeout_share         0.20      0.20     duplicate_processing on a timed-out sale
                                                   (also unmatched_debit / network_failure)
paid_again_share                0.40      0.40     nf / ilr / tf ghost: same card pays again
resolved_late_share             0.15      0.15     unmatched_debit ghost: issuer gives the
                                                   money back 1-6 h later (no truth record)
operator_wrong_request_share    0.25      0.25     operator_error_amount: the request carries
                                                   the keyed (wrong) amount
late_feed                       0.0010    0.0050   approved sale: issuer events 1-3 h late
dual_message_share              0.30      0.30     cards whose issuer holds, then clears
hold_release_share              0.50      0.50     dual clearing also releases the hold
terminal_delay_ms               150       400      mean terminal network delay (exponential)
issuer_lag_ms                   2000      5000     mean issuer feed lag (0.5 s + exponential)
issuer_burst_share              0.02      0.10     minutes in which the issuer feed bursts
issuer_burst_max_s              60        120      a burst adds 10 s .. this to the lag
redelivery                      0.010     0.030    events delivered twice (identical line)
late_redelivery_share           0.20      0.30     redeliveries 6-60 min late (past window)
late_tail                       0.0005    0.0030   events arriving 1-6 h late
max_clock_skew_s                120       120      terminal clock skew, uniform +-this (<=120)
stan_reset_share                0.30      0.30     terminals resetting STAN at UTC midnight
stan_near_wrap_share            0.02      0.02     terminals starting just below 999999
ms_transmitted_share            0.30      0.30     terminals sending transmitted_at with ms
=============================== ========= ======== ==========================================

Fleet-level incidents (:mod:`streams.simulator.incidents`; normal and default have none):

=============================== ========= ======== ==========================================
name                            default   storm    meaning
=============================== ========= ======== ==========================================
incidents_per_day               0         24       incidents per simulated day (Poisson)
merchant_outage_share           0.25      0.25     mix weight: a merchant's link loses the
                                                   host's replies (network_failure)
issuer_slowdown_share           0.25      0.25     mix weight: a market's issuer answers after
                                                   the timeouts (issuer_late_response)
faulty_terminal_share           0.25      0.25     mix weight: a terminal shows error after
                                                   approval (terminal_fault)
duplicate_burst_share           0.25      0.25     mix weight: a terminal's sales processed
                                                   twice (duplicate_processing)
incident_min_minutes            5         5        an incident lasts uniform min .. max
incident_max_minutes            20        20       minutes
incident_terminal_sales_per_min 6         6        sales per minute steered to the terminal of
                                                   a faulty_terminal / duplicate_burst from
                                                   10 min before to 10 min after it (0: off)
=============================== ========= ======== ==========================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final


class ProfileError(ValueError):
    """A bad ``--profile`` or ``--set``: the message is shown to the user as is."""


BENIGN_SCENARIOS: Final = (
    "declined",
    "timeout_no_money",
    "timeout_reversed",
    "auto_reversed",
    "retry_after_decline",
)
ANOMALY_SCENARIOS: Final = (
    "network_failure",
    "network_failure_standin",
    "issuer_late_response",
    "terminal_fault",
    "terminal_fault_false_approval",
    "reversal_lost",
    "account_restriction",
    "merchant_configuration",
    "operator_error_amount",
    "operator_error_cancelled",
    "payment_method_switch",
    "duplicate_processing",
)
SCENARIOS: Final = ("approved", *BENIGN_SCENARIOS, *ANOMALY_SCENARIOS)

# Upper bounds of the fields that are not probabilities (probabilities are in [0, 1]).
_LIMITS: Final[dict[str, float]] = {
    "terminal_delay_ms": 60_000.0,
    "issuer_lag_ms": 600_000.0,
    "issuer_burst_max_s": 3_600.0,
    # CONTRACT §5 rejects transmitted_at > occurred_at + 120 s; a terminal clock slower
    # than that would make its own requests invalid.
    "max_clock_skew_s": 120.0,
    "incidents_per_day": 10_000.0,
    "incident_min_minutes": 1_440.0,
    "incident_max_minutes": 1_440.0,
    "incident_terminal_sales_per_min": 60.0,
}
INCIDENT_SHARES: Final = (
    "merchant_outage_share",
    "issuer_slowdown_share",
    "faulty_terminal_share",
    "duplicate_burst_share",
)
_MIN_BURST_S: Final = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """All the knobs of one traffic profile (see the module docstring for the table)."""

    name: str
    # Benign primary scenarios.
    declined: float = 0.04
    timeout_no_money: float = 0.005
    timeout_reversed: float = 0.004
    auto_reversed: float = 0.002
    retry_after_decline: float = 0.01
    # Anomalies.
    network_failure: float = 0.0
    network_failure_standin: float = 0.0
    issuer_late_response: float = 0.0
    terminal_fault: float = 0.0
    terminal_fault_false_approval: float = 0.0
    reversal_lost: float = 0.0
    account_restriction: float = 0.0
    merchant_configuration: float = 0.0
    operator_error_amount: float = 0.0
    operator_error_cancelled: float = 0.0
    payment_method_switch: float = 0.0
    duplicate_processing: float = 0.0
    # Shares inside scenarios.
    no_outcome_share: float = 0.2
    duplicate_timeout_share: float = 0.2
    paid_again_share: float = 0.4
    resolved_late_share: float = 0.15
    operator_wrong_request_share: float = 0.25
    late_feed: float = 0.001
    dual_message_share: float = 0.3
    hold_release_share: float = 0.5
    # Disorder of delivery.
    terminal_delay_ms: float = 150.0
    issuer_lag_ms: float = 2_000.0
    issuer_burst_share: float = 0.02
    issuer_burst_max_s: float = 60.0
    redelivery: float = 0.01
    late_redelivery_share: float = 0.2
    late_tail: float = 0.0005
    # Fleet realism.
    max_clock_skew_s: float = 120.0
    stan_reset_share: float = 0.3
    stan_near_wrap_share: float = 0.02
    ms_transmitted_share: float = 0.3
    # Fleet-level incidents (streams.simulator.incidents). The shares are the mix's
    # relative weights (they need not add up to 1).
    incidents_per_day: float = 0.0
    merchant_outage_share: float = 0.25
    issuer_slowdown_share: float = 0.25
    faulty_terminal_share: float = 0.25
    duplicate_burst_share: float = 0.25
    incident_min_minutes: float = 5.0
    incident_max_minutes: float = 20.0
    incident_terminal_sales_per_min: float = 6.0

    def rate(self, scenario: str) -> float:
        """The per-transaction probability of ``scenario`` (``approved`` gets the rest)."""
        if scenario == "approved":
            return self.approved_rate
        rate: float = getattr(self, scenario)
        return rate

    @property
    def approved_rate(self) -> float:
        return 1.0 - sum(self.rate(name) for name in SCENARIOS[1:])

    @property
    def anomaly_rate(self) -> float:
        return sum(self.rate(name) for name in ANOMALY_SCENARIOS)


_DEFAULT_ANOMALIES: Final[dict[str, float]] = {
    "network_failure": 0.005,
    "network_failure_standin": 0.0015,
    "issuer_late_response": 0.004,
    "terminal_fault": 0.0035,
    "terminal_fault_false_approval": 0.0015,
    "reversal_lost": 0.003,
    "account_restriction": 0.0025,
    "merchant_configuration": 0.0025,
    "operator_error_amount": 0.0015,
    "operator_error_cancelled": 0.0015,
    "payment_method_switch": 0.0015,
    "duplicate_processing": 0.002,
}
# The storm keeps default's mix of causes, scaled from 3 % to 25 % of transactions.
_STORM_SCALE: Final = 0.25 / 0.03

PROFILES: Final[dict[str, Profile]] = {
    "normal": Profile(name="normal"),
    "default": Profile(name="default", **_DEFAULT_ANOMALIES),
    "storm": Profile(
        name="storm",
        **{name: round(rate * _STORM_SCALE, 6) for name, rate in _DEFAULT_ANOMALIES.items()},
        late_feed=0.005,
        terminal_delay_ms=400.0,
        issuer_lag_ms=5_000.0,
        issuer_burst_share=0.10,
        issuer_burst_max_s=120.0,
        redelivery=0.03,
        late_redelivery_share=0.3,
        late_tail=0.003,
        incidents_per_day=24.0,
    ),
}

SETTABLE: Final = tuple(f.name for f in dataclasses.fields(Profile) if f.name != "name")


def check(profile: Profile) -> Profile:
    """Return ``profile`` if every knob is in range, else raise :class:`ProfileError`."""
    for name in SETTABLE:
        value = getattr(profile, name)
        upper = _LIMITS.get(name, 1.0)
        if not 0.0 <= value <= upper:
            raise ProfileError(f"{name}={value:g} is out of range [0, {upper:g}]")
    if profile.issuer_burst_max_s < _MIN_BURST_S and profile.issuer_burst_share > 0:
        raise ProfileError(f"issuer_burst_max_s must be >= {_MIN_BURST_S:g} when bursts are on")
    if profile.incidents_per_day > 0:
        if not sum(getattr(profile, name) for name in INCIDENT_SHARES) > 0:
            raise ProfileError("incidents_per_day > 0 needs at least one incident share > 0")
        if not 0 < profile.incident_min_minutes <= profile.incident_max_minutes:
            raise ProfileError(
                "incidents need 0 < incident_min_minutes <= incident_max_minutes, got "
                f"{profile.incident_min_minutes:g} and {profile.incident_max_minutes:g}"
            )
    if profile.approved_rate < -1e-9:
        total = 1.0 - profile.approved_rate
        raise ProfileError(
            f"scenario rates add up to {total:g} > 1; lower some (approved takes the rest)"
        )
    return profile


def resolve(name: str, assignments: Iterable[str] = ()) -> Profile:
    """The profile ``name`` with ``NAME=VALUE`` overrides applied and checked.

    >>> resolve("normal", ["network_failure=0.5"]).network_failure
    0.5
    >>> resolve("default", ["network_falure=0.5"])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ProfileError: unknown --set name 'network_falure'; settable names: ...
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ProfileError(f"unknown profile {name!r} (known: {known})") from None
    changes: dict[str, float] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep:
            raise ProfileError(f"--set expects NAME=VALUE, got {assignment!r}")
        if key not in SETTABLE:
            raise ProfileError(f"unknown --set name {key!r}; settable names: {', '.join(SETTABLE)}")
        try:
            changes[key] = float(text)
        except ValueError:
            raise ProfileError(f"--set {key}: {text!r} is not a number") from None
    return check(dataclasses.replace(profile, **changes))  # type: ignore[arg-type]
