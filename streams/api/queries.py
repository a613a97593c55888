"""``GET /alerts``: its query parameters, filters, sort orders and page cursors. Pure.

Parameters (docs/api.md): ``status``, ``kind``, ``severity`` (each repeatable or a comma
list), ``terminal``, ``merchant``, ``since``/``until`` (RFC 3339, on ``detected_at``:
``since`` inclusive, ``until`` exclusive), ``sort`` and ``limit`` (1-500, default 50),
``cursor``. Anything else is a 400 with a message naming the parameter.

Pagination is by **cursor** (keyset), not offset: the cursor holds the sort key of the
last alert returned, and the next page is the alerts that sort after it. Alerts keep
arriving while a client pages; with offsets a new alert shifts every later page by one
and the client sees an alert twice or misses one, with a cursor neither happens to the
alerts that were there all along. Every sort ends with ``alert_id``, so the order is
total and no two alerts share a key. The cursor is opaque (base64 of a small JSON
array) and only valid with the sort it was made for.

>>> query = parse_alert_query([("status", "firing"), ("kind", "unmatched_debit,duplicate_debit")])
>>> sorted(query.statuses), sorted(query.kinds), query.sort, query.limit
(['firing'], ['duplicate_debit', 'unmatched_debit'], '-detected_at', 50)
>>> try:
...     parse_alert_query([("limit", "501")])
... except QueryError as error:
...     print(error.detail, "-", error.message)
limit - invalid parameter 'limit': must be an integer from 1 to 500, got '501'
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import heapq
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final
from urllib.parse import urlencode

from models.alerts import Kind, Severity, Status
from models.instants import micros_of
from streams.api.alert_index import Entry

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
DEFAULT_SORT: Final = "-detected_at"

# One number per position, then alert_id: smaller sorts first. A "-" sort negates.
SortKey = tuple[float | int | str, ...]


def _severity(entry: Entry, sign: int) -> SortKey:
    return (
        sign * entry.severity_rank,
        sign * entry.score,
        sign * entry.detected_us,
        entry.alert_id,
    )


def _at_risk(entry: Entry, sign: int) -> SortKey:
    return (sign * entry.at_risk_major, -entry.severity_rank, entry.alert_id)


def _deadline(entry: Entry, sign: int) -> SortKey:
    # Alerts without a deadline come last in both directions: nothing is due for them.
    deadline = entry.deadline_us
    if deadline is None:
        return (1, 0, -entry.severity_rank, entry.alert_id)
    return (0, sign * deadline, -entry.severity_rank, entry.alert_id)


def _detected(entry: Entry, sign: int) -> SortKey:
    return (sign * entry.detected_us, entry.alert_id)


_SORT_FIELDS: Final[dict[str, Callable[[Entry, int], SortKey]]] = {
    "severity": _severity,
    "at_risk": _at_risk,
    "deadline": _deadline,
    "detected_at": _detected,
}
SORTS: Final = tuple(f"{sign}{name}" for name in _SORT_FIELDS for sign in ("-", ""))
_KEY_LENGTH: Final = {"severity": 4, "at_risk": 3, "deadline": 4, "detected_at": 2}
PARAMETERS: Final = (
    "status",
    "kind",
    "severity",
    "terminal",
    "merchant",
    "since",
    "until",
    "sort",
    "limit",
    "cursor",
)
_REPEATABLE: Final = frozenset({"status", "kind", "severity"})
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)


class QueryError(ValueError):
    """A 400: ``message`` for people, ``detail`` names the parameter."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertQuery:
    """A parsed ``GET /alerts``; None for a filter means "any"."""

    statuses: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    severities: frozenset[str] | None = None
    terminal: str | None = None
    merchant: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    after: SortKey | None = None  # from the cursor: return what sorts after this

    def matches(self, entry: Entry) -> bool:
        return (
            (self.statuses is None or entry.status in self.statuses)
            and (self.kinds is None or entry.kind in self.kinds)
            and (self.severities is None or entry.severity in self.severities)
            and (self.terminal is None or entry.terminal_id == self.terminal)
            and (self.merchant is None or entry.merchant_id == self.merchant)
            and (self.since_us is None or entry.detected_us >= self.since_us)
            and (self.until_us is None or entry.detected_us < self.until_us)
        )

    def key(self, entry: Entry) -> SortKey:
        descending = self.sort.startswith("-")
        return _SORT_FIELDS[self.sort.lstrip("-")](entry, -1 if descending else 1)


@dataclasses.dataclass(frozen=True)
class Page:
    """One page: its alerts in order, how many match in all, and the next cursor."""

    entries: list[Entry]
    total: int
    next_cursor: str | None


def select(entries: Iterable[Entry], query: AlertQuery) -> Page:
    """The page ``query`` asks for: filter, then the ``limit`` smallest keys after the cursor.

    One pass over the index, and ``heapq.nsmallest`` keeps only ``limit + 1`` alerts at a
    time rather than sorting them all. Every key ends with the unique ``alert_id``, so
    two keys never tie and the entry after it is never compared.
    """
    matching = [entry for entry in entries if query.matches(entry)]
    field = _SORT_FIELDS[query.sort.lstrip("-")]
    sign = -1 if query.sort.startswith("-") else 1
    after = query.after
    keyed: Iterator[tuple[SortKey, Entry]] = ((field(entry, sign), entry) for entry in matching)
    if after is not None:
        keyed = (item for item in keyed if item[0] > after)
    chosen = heapq.nsmallest(query.limit + 1, keyed)
    more = len(chosen) > query.limit
    chosen = chosen[: query.limit]
    cursor = encode_cursor(query.sort, chosen[-1][0]) if more else None
    return Page([entry for _key, entry in chosen], len(matching), cursor)


def encode_cursor(sort: str, key: SortKey) -> str:
    """Opaque text for "after ``key`` in ``sort`` order" (URL-safe base64, no padding)."""
    raw = json.dumps([sort, *key], separators=(",", ":"), allow_nan=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Far above any cursor this module makes (a sort name and a key of a few fields).
MAX_CURSOR = 512


def decode_cursor(text: str, sort: str) -> SortKey:
    """The key of a cursor made for ``sort``; QueryError for anything else."""
    bad = QueryError(
        "invalid parameter 'cursor': not a cursor of this list; "
        "use the 'next' link of the previous page unchanged",
        "cursor",
    )
    if len(text) > MAX_CURSOR:  # ours are short; a long one is not ours (nor cheap to parse)
        raise bad
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise bad from None
    if not isinstance(decoded, list) or not decoded or not isinstance(decoded[0], str):
        raise bad
    made_for, *key = decoded
    if made_for != sort:
        raise QueryError(
            f"invalid parameter 'cursor': it was made for sort={made_for!r}, "
            f"this request sorts by {sort!r}; start again without a cursor",
            "cursor",
        )
    numbers, alert_id = key[:-1], key[-1] if key else None
    if (
        len(key) != _KEY_LENGTH[sort.lstrip("-")]
        or not isinstance(alert_id, str)
        or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)
    ):
        raise bad
    return (*numbers, alert_id)


def parse_alert_query(params: Sequence[tuple[str, str]]) -> AlertQuery:
    """A validated :class:`AlertQuery` from the query string's (name, value) pairs."""
    values: dict[str, list[str]] = {}
    for name, value in params:
        if name not in PARAMETERS:
            raise QueryError(
                f"unknown parameter {name!r}; /alerts accepts {', '.join(PARAMETERS)}", name
            )
        values.setdefault(name, []).append(value)
    for name, given in values.items():
        if len(given) > 1 and name not in _REPEATABLE:
            raise QueryError(f"parameter {name!r} given {len(given)} times; give it once", name)
    sort = _one(values, "sort") or DEFAULT_SORT
    if sort not in SORTS:
        raise QueryError(
            f"invalid parameter 'sort': {sort!r} is not one of {', '.join(SORTS)}", "sort"
        )
    since = _instant(values, "since")
    until = _instant(values, "until")
    if since is not None and until is not None and since > until:
        raise QueryError("invalid parameters: 'since' is later than 'until'", "since")
    cursor = _one(values, "cursor")
    return AlertQuery(
        statuses=_choices(values, "status", [s.value for s in Status]),
        kinds=_choices(values, "kind", [k.value for k in Kind]),
        severities=_choices(values, "severity", [s.value for s in Severity]),
        terminal=_identifier(values, "terminal"),
        merchant=_identifier(values, "merchant"),
        since_us=since,
        until_us=until,
        sort=sort,
        limit=_limit(values),
        after=None if cursor is None else decode_cursor(cursor, sort),
    )


def next_link(path: str, params: Sequence[tuple[str, str]], cursor: str) -> str:
    """``path`` with the same parameters and ``cursor`` replaced: the next page's URL."""
    kept = [(name, value) for name, value in params if name != "cursor"]
    return f"{path}?{urlencode([*kept, ('cursor', cursor)])}"


def _one(values: dict[str, list[str]], name: str) -> str | None:
    given = values.get(name)
    return None if given is None else given[0]


def _choices(values: dict[str, list[str]], name: str, allowed: list[str]) -> frozenset[str] | None:
    given = values.get(name)
    if given is None:
        return None
    chosen = {part.strip() for value in given for part in value.split(",")}
    wrong = sorted(chosen - set(allowed))
    if wrong:
        shown = ", ".join(repr(w) for w in wrong)
        raise QueryError(
            f"invalid parameter {name!r}: {shown} is not one of {', '.join(allowed)}", name
        )
    return frozenset(chosen)


def _identifier(values: dict[str, list[str]], name: str) -> str | None:
    value = _one(values, name)
    if value is not None and not value:
        raise QueryError(f"invalid parameter {name!r}: empty; leave it out to match any", name)
    return value


def _instant(values: dict[str, list[str]], name: str) -> int | None:
    value = _one(values, name)
    if value is None:
        return None
    return parse_instant(value, name)


def parse_instant(value: str, name: str) -> int:
    """Microseconds of an RFC 3339 instant (an offset or ``Z`` required); QueryError."""
    problem = f"invalid parameter {name!r}: {value!r} is not an RFC 3339 instant"
    if not _RFC3339.fullmatch(value):
        raise QueryError(f"{problem} like 2026-11-27T09:15:02Z", name)
    text = value.upper()
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most microseconds: drop finer digits (they never count here)
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6]}{rest[digits.end() :]}"
    try:
        return micros_of(text)
    except (ValueError, OverflowError):
        raise QueryError(f"{problem}: no such date or time", name) from None


def _limit(values: dict[str, list[str]]) -> int:
    raw = _one(values, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    # At most 3 digits before int(): Python refuses to convert over 4,300 digits.
    if (
        not raw.isascii()
        or not raw.isdigit()
        or len(raw) > len(str(MAX_LIMIT))
        or not 1 <= int(raw) <= MAX_LIMIT
    ):
        raise QueryError(
            f"invalid parameter 'limit': must be an integer from 1 to {MAX_LIMIT}, got {raw!r}",
            "limit",
        )
    return int(raw)
