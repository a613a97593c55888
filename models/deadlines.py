"""Regulatory deadlines per region: when the cardholder's money must be back, and what
the bank owes for each day of delay.

A :class:`DeadlinePolicy` says, for the kinds of alert it covers, how many calendar days
after the transaction date (in the policy's time zone) the money must be returned, and
how much compensation accrues per day of delay. A :class:`DeadlineConfig` picks the
policy by the alert's currency: the contract has no country field, and a card-present
sale is settled in the currency of the country it happened in (INR => India).

Shipped policies
================

``rbi_card_present``
    Reserve Bank of India, circular RBI/2019-20/67 (DPSS.CO.PD No.629/02.01.014/2019-20,
    20 September 2019, in force from 15 October 2019), "Harmonisation of Turn Around
    Time (TAT) and customer compensation for failed transactions using authorised
    Payment Systems", Annex item 2(b), *Point of Sale (PoS) (Card Present) including
    Cash at PoS*: "Account debited but confirmation not received at merchant location
    i.e., charge-slip not generated" -- auto-reversal within T + 5 days, ₹100 per day of
    delay beyond T + 5 days. The circular's general instructions: "T is the day of
    transaction and refers to the calendar date"; "R is the day on which the reversal is
    concluded and the funds are received by the issuer".

    Our reading, exactly:

    * T is the calendar date of the transaction's ``transmitted_at`` (DE7, the
      transaction key's second) in India Standard Time (UTC+05:30, no daylight saving).
      A sale sent at 2026-11-27T23:30:00Z is 05:00 IST on 2026-11-28, so T = 2026-11-28.
    * The money is in time if it is back on or before day T+5 (IST). The **deadline** is
      the first instant at which it is late: 00:00 IST of day T+6, i.e. the end of day
      T+5. For T = 2026-11-28 that is 2026-12-04T00:00+05:30 = 2026-12-03T18:30:00Z.
    * The delay of a reversal concluded on day R is ``R - (T+5)`` days. At an instant
      *now* past the deadline, the delay if the money came back right now is
      ``date_IST(now) - (T+5)`` >= 1: :func:`days_overdue`. Compensation **accrued so
      far** is ₹100 (10000 paise) times that: *started* days of delay, so ₹100 is owed
      from the deadline instant itself (a reversal on day T+6 is one day late), ₹200 from
      00:00 IST of T+7, and so on. Nothing before the deadline. No cap (the circular
      gives none).
    * Kinds: ``unmatched_debit`` and ``reversal_not_applied`` (the account was debited or
      blocked and the sale did not complete: exactly the item above), and
      ``duplicate_debit``: the extra debit took the cardholder's money for a sale that
      happened only once -- for that money the sale "failed", and banks handle it under
      the same TAT. Not ``amount_mismatch`` (the sale completed; an overcharge is a
      dispute, not a failed transaction) nor ``terminal_approved_no_debit`` (the harm is
      the merchant's; no cardholder money to return).

``neutral``
    No deadline and no compensation: the default for every other currency.

Time zones are IANA names resolved with :mod:`zoneinfo` (this project's venv has the
system database and the ``tzdata`` package). Where neither is installed, the zones
that have a fixed offset (``Asia/Kolkata``: +05:30 since 1945, ``UTC``) fall back to
that offset, so the RBI deadline never depends on the host. A policy may also name a
fixed offset directly (``"+05:30"``).

All instants are integer microseconds since the epoch (:mod:`models.instants`).

>>> from models.instants import format_micros
>>> sent = 1_795_822_200_000_000  # 2026-11-27T23:30:00Z = 2026-11-28 05:00 IST
>>> due = deadline_us(RBI_CARD_PRESENT, sent)
>>> format_micros(due)
'2026-12-03T18:30:00Z'
>>> [compensation_minor(RBI_CARD_PRESENT, due, now) for now in (due - 1, due, due + DAY_US)]
[0, 10000, 20000]
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from datetime import timezone as fixed_zone
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models import currencies
from models.alerts import TRANSACTION_KINDS, Kind
from models.config import ConfigError, read_tables
from models.instants import EPOCH, MICROS, format_micros, to_micros

DAY_US: Final = 86_400 * MICROS
_EPOCH_ORDINAL: Final = EPOCH.date().toordinal()
# Instants converted to local dates through datetime stay two days inside its range, so
# no offset can push them out of it; beyond, the offset at the edge is used (integers).
_MIN_SAFE_US: Final = to_micros(datetime(1, 1, 3, tzinfo=UTC))
_MAX_SAFE_US: Final = to_micros(datetime(9999, 12, 29, tzinfo=UTC))
_FIXED_OFFSET: Final = re.compile(r"^(?:UTC)?([+-])([01][0-9]|2[0-3]):([0-5][0-9])$")
# Zones whose offset is fixed: used only when zoneinfo has no database on this host.
_FIXED_ZONES: Final = {
    "Asia/Kolkata": 330,
    "Asia/Calcutta": 330,
    "UTC": 0,
    "Etc/UTC": 0,
}
_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@functools.cache
def zone_of(name: str) -> tzinfo:
    """The time zone of an IANA name or a fixed offset like ``"+05:30"``; ConfigError if unknown."""
    if match := _FIXED_OFFSET.match(name):
        sign = -1 if match.group(1) == "-" else 1
        offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return fixed_zone(sign * offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name in _FIXED_ZONES:
            return fixed_zone(timedelta(minutes=_FIXED_ZONES[name]), name)
        raise ConfigError(
            f"unknown time zone {name!r}: use an IANA name such as 'Asia/Kolkata' "
            "(needs the tz database or the tzdata package) or a fixed offset like '+05:30'"
        ) from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadlinePolicy:
    """A regulator's deadline for returning the cardholder's money, and its compensation.

    ``due_days``: the money must be back by the end of calendar day T + ``due_days``,
    T being the transaction date in ``timezone``; None means no deadline.
    ``compensation_per_day_minor``: owed per started day of delay, in the minor units of
    ``compensation_currency``. ``kinds``: the alert kinds the deadline applies to.
    ``authority`` names the regulator in explanations ("RBI"); ``reference`` cites the
    rule.
    """

    name: str
    due_days: int | None = None
    timezone: str = "UTC"
    compensation_per_day_minor: int = 0
    compensation_currency: str | None = None
    kinds: frozenset[Kind] = frozenset()
    authority: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"deadline policy name {self.name!r} must be a letter then letters, "
                "digits or '_' (at most 64)"
            )
        where = f"deadline policy {self.name!r}"
        if self.due_days is not None and (
            not isinstance(self.due_days, int) or isinstance(self.due_days, bool)
        ):
            raise ConfigError(f"{where}: due_days must be an integer, got {self.due_days!r}")
        if self.due_days is not None and self.due_days < 0:
            raise ConfigError(f"{where}: due_days must not be negative: {self.due_days}")
        per_day = self.compensation_per_day_minor
        if not isinstance(per_day, int) or isinstance(per_day, bool) or per_day < 0:
            raise ConfigError(
                f"{where}: compensation_per_day_minor must be an integer >= 0, got {per_day!r}"
            )
        currency = self.compensation_currency
        if currency is not None and not (
            isinstance(currency, str) and currencies.is_known(currency)
        ):
            raise ConfigError(
                f"{where}: compensation_currency {currency!r} is not an ISO 4217 code"
            )
        if per_day and currency is None:
            raise ConfigError(f"{where}: compensation_per_day_minor needs compensation_currency")
        zone_of(self.timezone)  # validates
        object.__setattr__(self, "kinds", _kinds(self.kinds, where))

    def applies_to(self, kind: str) -> bool:
        """Does this policy set a deadline for alerts of ``kind``?"""
        return self.due_days is not None and kind in self.kinds


def _kinds(values: Iterable[object], where: str) -> frozenset[Kind]:
    if isinstance(values, str):
        raise ConfigError(f"{where}: kinds must be a list of alert kinds, got {values!r}")
    allowed = {kind.value: kind for kind in TRANSACTION_KINDS}
    kinds = set()
    for value in values:
        if not isinstance(value, str) or value not in allowed:
            raise ConfigError(
                f"{where}: {value!r} is not a transaction alert kind; "
                f"known: {', '.join(sorted(allowed))}"
            )
        kinds.add(allowed[value])
    return frozenset(kinds)


RBI_CARD_PRESENT: Final = DeadlinePolicy(
    name="rbi_card_present",
    due_days=5,
    timezone="Asia/Kolkata",
    compensation_per_day_minor=10_000,  # ₹100 in paise
    compensation_currency="INR",
    kinds=frozenset({Kind.UNMATCHED_DEBIT, Kind.REVERSAL_NOT_APPLIED, Kind.DUPLICATE_DEBIT}),
    authority="RBI",
    reference=(
        "RBI/2019-20/67, DPSS.CO.PD No.629/02.01.014/2019-20 (20 Sep 2019), Annex 2(b): "
        "PoS card present, auto-reversal within T+5, ₹100 per day of delay beyond T+5"
    ),
)
NEUTRAL: Final = DeadlinePolicy(name="neutral")
POLICIES: Final[Mapping[str, DeadlinePolicy]] = {
    policy.name: policy for policy in (RBI_CARD_PRESENT, NEUTRAL)
}


def _default_by_currency() -> dict[str, str]:
    return {"INR": RBI_CARD_PRESENT.name}


def _default_policies() -> dict[str, DeadlinePolicy]:
    return dict(POLICIES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadlineConfig:
    """Which policy applies to an alert: ``by_currency[currency]``, else ``default``."""

    default: str = NEUTRAL.name
    by_currency: Mapping[str, str] = dataclasses.field(default_factory=_default_by_currency)
    policies: Mapping[str, DeadlinePolicy] = dataclasses.field(default_factory=_default_policies)

    def __post_init__(self) -> None:
        known = ", ".join(sorted(self.policies))
        if self.default not in self.policies:
            raise ConfigError(
                f"unknown deadline policy {self.default!r} in [deadlines].default; known: {known}"
            )
        for currency, name in self.by_currency.items():
            if not currencies.is_known(currency):
                raise ConfigError(
                    f"[deadlines].by_currency: {currency!r} is not an ISO 4217 code "
                    "(upper case, e.g. 'INR')"
                )
            if name not in self.policies:
                raise ConfigError(
                    f"unknown deadline policy {name!r} for {currency} in "
                    f"[deadlines].by_currency; known: {known}"
                )

    def policy_for(self, currency: str | None) -> DeadlinePolicy:
        """The policy for an alert in ``currency`` (the alert's ``currency`` field)."""
        name = self.by_currency.get(currency, self.default) if currency else self.default
        return self.policies[name]

    def due(
        self, kind: str, currency: str | None, transmitted_us: int
    ) -> tuple[DeadlinePolicy, int | None]:
        """The alert's policy and deadline (None: the policy does not cover ``kind``)."""
        policy = self.policy_for(currency)
        if not policy.applies_to(kind):
            return policy, None
        return policy, deadline_us(policy, transmitted_us)


def _offset_us(zone: tzinfo, micros: int) -> int:
    """The zone's UTC offset at an instant (at the edge of datetime's range beyond it)."""
    safe = min(max(micros, _MIN_SAFE_US), _MAX_SAFE_US)
    instant = (EPOCH + timedelta(microseconds=safe)).astimezone(zone)
    offset = instant.utcoffset() or timedelta(0)
    return (offset.days * 86_400 + offset.seconds) * MICROS + offset.microseconds


def local_ordinal(zone: tzinfo, micros: int) -> int:
    """The proleptic Gregorian ordinal of the local calendar date of an instant."""
    return _EPOCH_ORDINAL + (micros + _offset_us(zone, micros)) // DAY_US


def _local_midnight_us(zone: tzinfo, ordinal: int) -> int:
    """The first instant of the local calendar day ``ordinal``."""
    try:
        return to_micros(datetime.combine(date.fromordinal(ordinal), clock_time(), tzinfo=zone))
    except (ValueError, OverflowError):  # outside datetime's range: the offset at its edge
        naive = (ordinal - _EPOCH_ORDINAL) * DAY_US
        return naive - _offset_us(zone, naive)


def deadline_us(policy: DeadlinePolicy, transmitted_us: int) -> int | None:
    """The first instant at which the money is late: 00:00 local of day T + due_days + 1.

    T is the local calendar date of ``transmitted_us`` in the policy's time zone. None
    when the policy sets no deadline. (Whether the policy covers an alert's kind is
    :meth:`DeadlinePolicy.applies_to`; :meth:`DeadlineConfig.due` checks both.)
    """
    if policy.due_days is None:
        return None
    zone = zone_of(policy.timezone)
    return _local_midnight_us(zone, local_ordinal(zone, transmitted_us) + policy.due_days + 1)


def days_overdue(policy: DeadlinePolicy, deadline: int | None, now_us: int | None) -> int:
    """Started calendar days of delay (local) at ``now_us``: 0 before the deadline, 1 from
    the deadline instant (day T+due+1), 2 from the next local midnight, ...

    It is the delay ``R - (T + due_days)`` a return concluded right now would have.
    """
    if deadline is None or now_us is None or now_us < deadline:
        return 0
    zone = zone_of(policy.timezone)
    return max(1, local_ordinal(zone, now_us) - local_ordinal(zone, deadline) + 1)


def compensation_minor(policy: DeadlinePolicy, deadline: int | None, now_us: int | None) -> int:
    """Compensation accrued so far, in minor units of ``policy.compensation_currency``:
    ``compensation_per_day_minor`` times :func:`days_overdue` (0 before the deadline)."""
    return policy.compensation_per_day_minor * days_overdue(policy, deadline, now_us)


def last_day(policy: DeadlinePolicy, deadline: int) -> date | None:
    """The last local calendar day on which the money was in time (T + due_days)."""
    ordinal = local_ordinal(zone_of(policy.timezone), deadline - 1)
    try:
        return date.fromordinal(ordinal)
    except (ValueError, OverflowError):
        return None


def overdue_sentence(policy: DeadlinePolicy | None, deadline: int, now_us: int) -> str:
    """The sentence a past-deadline alert appends to its explanation, e.g.
    ``Past the RBI deadline of 2026-12-02 (T+5); compensation accrued so far: 300.00 INR.``
    """
    if policy is None or policy.due_days is None:
        return f"Past the regulatory deadline of {format_micros(deadline)}."
    authority = f"{policy.authority} " if policy.authority else ""
    end = last_day(policy, deadline)
    when = end.isoformat() if end else "its last day"
    text = f"Past the {authority}deadline of {when} (T+{policy.due_days})"
    owed = compensation_minor(policy, deadline, now_us)
    if owed and policy.compensation_currency:
        money = currencies.format_minor(owed, policy.compensation_currency)
        text += f"; compensation accrued so far: {money}"
    return text + "."


# ---- configuration: the [deadlines] table -------------------------------------------

_CONFIG_KEYS: Final = ("by_currency", "default", "policies")
_POLICY_KEYS: Final = tuple(f.name for f in dataclasses.fields(DeadlinePolicy) if f.name != "name")


def _policy_from_mapping(name: str, table: object) -> DeadlinePolicy:
    where = f"[deadlines.policies.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(_POLICY_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in {where}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_POLICY_KEYS))}"
        )
    for key in ("timezone", "compensation_currency", "authority", "reference"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {table[key]!r}")
    kinds = table.get("kinds", [])
    if not isinstance(kinds, list):
        raise ConfigError(f"{where}: kinds must be a list of alert kinds, got {kinds!r}")
    values: dict[str, Any] = {**table, "kinds": _kinds(kinds, where)}
    return DeadlinePolicy(name=name, **values)


def deadline_config_from_mapping(table: Mapping[str, Any]) -> DeadlineConfig:
    """Build a :class:`DeadlineConfig` from the ``[deadlines]`` table of a TOML file.

    ``default`` (a policy name), ``by_currency`` (ISO 4217 code -> policy name; when
    given it *replaces* the default ``{INR = "rbi_card_present"}``) and ``policies``
    (``[deadlines.policies.<name>]`` tables defining more policies; the built-in names
    cannot be redefined). Unknown keys and unknown policy names are ConfigErrors.
    """
    unknown = sorted(set(table) - set(_CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [deadlines]: {', '.join(unknown)}; "
            f"known: {', '.join(_CONFIG_KEYS)}"
        )
    policies = _default_policies()
    extra = table.get("policies", {})
    if not isinstance(extra, dict):
        raise ConfigError("[deadlines].policies must be a table of policy tables")
    for name, policy_table in extra.items():
        if name in POLICIES:
            raise ConfigError(
                f"[deadlines.policies.{name}]: {name!r} is a built-in policy and cannot be "
                "redefined; give yours another name"
            )
        policies[name] = _policy_from_mapping(name, policy_table)
    values: dict[str, Any] = {"policies": policies}
    if "default" in table:
        if not isinstance(table["default"], str):
            raise ConfigError(
                f"[deadlines].default must be a policy name, got {table['default']!r}"
            )
        values["default"] = table["default"]
    if "by_currency" in table:
        mapping = table["by_currency"]
        if not isinstance(mapping, dict) or not all(
            isinstance(name, str) for name in mapping.values()
        ):
            raise ConfigError(
                "[deadlines].by_currency must be a table of currency = policy name, "
                f'e.g. {{ INR = "rbi_card_present" }}; got {mapping!r}'
            )
        values["by_currency"] = dict(mapping)
    return DeadlineConfig(**values)


def load_deadline_config(path: Path) -> DeadlineConfig:
    """Read a TOML file's ``[deadlines]`` table (the defaults when it has none)."""
    (table,) = read_tables(path, "deadlines")
    return deadline_config_from_mapping(table)
