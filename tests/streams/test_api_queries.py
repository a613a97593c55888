"""The HTTP API's pure parts: settings, token check, alert index, queries, timelines.

No broker and no web server: records go into the index as bytes, queries are parsed
from (name, value) pairs, timelines are shaped from a real core's transaction state.
tests/kafka/test_api.py runs the same paths through live workers.
"""

from __future__ import annotations

import base64
import doctest
import itertools
from pathlib import Path
from typing import Any

import msgspec
import pytest

import streams.api.alert_index
import streams.api.auth
import streams.api.config
import streams.api.queries
import streams.api.timeline
from models.alerts import Alert, Cause, Kind, Severity, Status
from models.config import ConfigError, DetectionConfig
from models.instants import micros_of
from models.reconciler import Reconciler
from models.transaction import transaction_key
from streams.api.alert_index import AlertIndex, Entry
from streams.api.auth import authorized, bearer_token, challenge
from streams.api.config import api_config_from_env
from streams.api.queries import (
    MAX_LIMIT,
    SORTS,
    AlertQuery,
    QueryError,
    decode_cursor,
    encode_cursor,
    next_link,
    parse_alert_query,
    select,
)
from streams.api.timeline import describe, transaction_key_of
from tests.factories import BASE_SECOND, apply, event, watermark

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- doctests and files


@pytest.mark.parametrize(
    "module",
    [
        streams.api.alert_index,
        streams.api.auth,
        streams.api.config,
        streams.api.queries,
        streams.api.timeline,
    ],
)
def test_docstring_examples(module: Any) -> None:
    failed, tried = doctest.testmod(module)
    assert tried > 0 and failed == 0


def test_the_served_openapi_file_is_the_documented_one() -> None:
    """docs/ is not in the image (.dockerignore): the worker serves a packaged copy."""
    documented = (REPO / "docs" / "openapi.yaml").read_bytes()
    packaged = (REPO / "streams" / "api" / "static" / "openapi.yaml").read_bytes()
    assert packaged == documented, "cp docs/openapi.yaml streams/api/static/openapi.yaml"


# ---------------------------------------------------------------- settings


def test_config_defaults_have_no_token() -> None:
    config = api_config_from_env({})
    assert not config.auth_enabled
    assert (config.max_alerts, config.max_history) == (50_000, 16)


def test_config_reads_the_token_from_a_file_and_never_shows_it(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-token\n")
    config = api_config_from_env({"DEBITWATCH_API_TOKEN_FILE": str(secret)})
    assert config.token == "s3cret-token"
    assert "s3cret" not in repr(config)


def test_config_file_table_and_environment_override(tmp_path: Path) -> None:
    toml = tmp_path / "debitwatch.toml"
    toml.write_text('[api]\nmax_alerts = 10\npeer_timeout = "2s"\n')
    env = {"DEBITWATCH_CONFIG": str(toml), "DEBITWATCH_API_MAX_ALERTS": "20"}
    config = api_config_from_env(env)
    assert (config.max_alerts, config.peer_timeout) == (20, 2.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBITWATCH_API_TOKEN": "a", "DEBITWATCH_API_TOKEN_FILE": "/x"}, "only one of"),
        ({"DEBITWATCH_API_TOKEN_FILE": "/nonexistent/token"}, "cannot read the API token"),
        ({"DEBITWATCH_API_TOKEN": "two words"}, "no whitespace"),
        ({"DEBITWATCH_API_MAX_ALERTS": "0"}, "max_alerts must be >= 1"),
        ({"DEBITWATCH_API_MAX_ALERTS": "many"}, "must be an integer"),
        ({"DEBITWATCH_API_PEER_TIMEOUT": "0"}, "peer_timeout"),
    ],
)
def test_config_errors_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        api_config_from_env(env)


def test_config_refuses_a_token_in_the_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "debitwatch.toml"
    toml.write_text('[api]\ntoken = "s3cret"\n')
    with pytest.raises(ConfigError, match="token comes only from the environment") as caught:
        api_config_from_env({"DEBITWATCH_CONFIG": str(toml)})
    assert "s3cret" not in str(caught.value)


def test_config_refuses_an_empty_token_file(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        api_config_from_env({"DEBITWATCH_API_TOKEN_FILE": str(empty)})


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("BEARER   s3cret  ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cretX", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_bearer_token_check(header: str | None, expected: bool) -> None:
    assert authorized(header, "s3cret") is expected


def test_no_token_configured_lets_everyone_in() -> None:
    assert authorized(None, None) and authorized("Bearer anything", None)


def test_challenge_names_an_invalid_token_only_when_one_was_sent() -> None:
    assert challenge(None) == 'Bearer realm="debitwatch"'
    assert 'error="invalid_token"' in challenge("Bearer nope")
    assert bearer_token("Bearer  abc ") == "abc"


# ---------------------------------------------------------------- the alert index

_ids = itertools.count(1)


def make_alert(**fields: Any) -> Alert:
    """A valid alert record; ``fields`` override the defaults."""
    number = next(_ids)
    values: dict[str, Any] = {
        "alert_id": f"ud-{number:032x}",
        "kind": Kind.UNMATCHED_DEBIT,
        "status": Status.FIRING,
        "terminal_id": f"T-{number % 5}",
        "merchant_id": f"M-{number % 3}",
        "stan": f"{number % 1_000_000:06d}",
        "transmitted_at": "2026-11-27T09:00:00Z",
        "card_token": "tok_a",
        "currency": "EUR",
        "terminal_amount_minor": 1000,
        "issuer_amount_minor": 1000,
        "at_risk_minor": 1000,
        "evidence": ["e1"],
        "detected_at": f"2026-11-27T09:{number % 60:02d}:00Z",
        "explanation": "The bank took the money.",
        "probable_cause": Cause.NETWORK_FAILURE,
        "severity": Severity.HIGH,
        "score": 0.65,
    }
    values.update(fields)
    return Alert(**values)


def record(alert: Alert) -> bytes:
    return msgspec.json.encode(alert)


def index_of(alerts: list[Alert], **options: int) -> AlertIndex:
    index = AlertIndex(**options)
    for offset, alert in enumerate(alerts):
        index.add(alert.alert_id.encode(), record(alert), partition=0, offset=offset)
    return index


def test_index_keeps_the_last_state_and_the_changes() -> None:
    firing = make_alert()
    again = msgspec.structs.replace(firing)  # a crash republished it: not a change
    overdue = msgspec.structs.replace(firing, deadline_passed=True, severity=Severity.CRITICAL)
    resolved = msgspec.structs.replace(
        firing, status=Status.RESOLVED, resolved_at="2026-11-28T10:00:00Z", resolution="refunded"
    )
    index = index_of([firing, again, overdue, resolved])
    entry = index.get(firing.alert_id)
    assert entry is not None and entry.alert.status is Status.RESOLVED
    assert [(c.status.value, c.deadline_passed, c.offset) for c in entry.history] == [
        ("firing", False, 0),
        ("firing", True, 2),
        ("resolved", False, 3),
    ]
    assert entry.history[-1].at == "2026-11-28T10:00:00Z"
    assert index.positions == {0: 4}


def test_index_history_is_bounded() -> None:
    alert = make_alert()
    states = [
        msgspec.structs.replace(alert, status=Status.FIRING if n % 2 else Status.RESOLVED)
        for n in range(1, 12)
    ]
    entry = index_of(states, max_history=3).get(alert.alert_id)
    assert entry is not None and [c.offset for c in entry.history] == [8, 9, 10]


def test_index_forgets_resolved_alerts_first_then_the_oldest() -> None:
    old_firing, old_resolved, new_firing = (
        make_alert(),
        make_alert(status=Status.RESOLVED),
        make_alert(),
    )
    index = index_of([old_firing, old_resolved, new_firing], max_alerts=2)
    assert index.get(old_resolved.alert_id) is None
    assert index.get(old_firing.alert_id) is not None and index.evicted == 1
    newest = make_alert()
    index.add(None, record(newest), partition=1, offset=0)
    assert index.get(old_firing.alert_id) is None  # no resolved one left: the oldest goes
    assert {e.alert_id for e in index.entries()} == {new_firing.alert_id, newest.alert_id}


def test_index_counts_unreadable_records_and_applies_tombstones() -> None:
    alert = make_alert()
    index = index_of([alert])
    assert not index.add(None, b"not json", partition=0, offset=1)
    assert not index.add(None, b'{"alert_id": "x"}', partition=0, offset=2)
    assert index.add(alert.alert_id.encode(), None, partition=0, offset=3)
    assert (len(index), index.unreadable, index.records) == (0, 2, 4)


def test_index_sort_fields_use_each_currencys_minor_units() -> None:
    yen = make_alert(currency="JPY", issuer_currency="JPY", at_risk_minor=5000)
    euro = make_alert(currency="EUR", issuer_currency="EUR", at_risk_minor=5000)
    index = index_of([yen, euro])
    assert index.get(yen.alert_id).at_risk_major == 5000  # type: ignore[union-attr]
    assert index.get(euro.alert_id).at_risk_major == 50  # type: ignore[union-attr]


# ---------------------------------------------------------------- parsing queries


def test_parse_filters_repeatable_and_comma_lists() -> None:
    query = parse_alert_query(
        [
            ("status", "firing"),
            ("kind", "unmatched_debit, duplicate_debit"),
            ("kind", "amount_mismatch"),
            ("severity", "critical,high"),
            ("terminal", "T-1"),
            ("merchant", "M-1"),
            ("since", "2026-11-27T17:15:02+08:00"),
            ("until", "2026-11-27t10:00:00.123456789z"),
            ("sort", "deadline"),
            ("limit", "500"),
        ]
    )
    assert query.statuses == frozenset({"firing"})
    assert query.kinds == frozenset({"unmatched_debit", "duplicate_debit", "amount_mismatch"})
    assert query.severities == frozenset({"critical", "high"})
    assert (query.terminal, query.merchant, query.sort, query.limit) == (
        "T-1",
        "M-1",
        "deadline",
        500,
    )
    assert query.since_us == 1795770902 * 1_000_000
    assert query.until_us == 1795773600 * 1_000_000 + 123456


@pytest.mark.parametrize(
    ("params", "detail", "message"),
    [
        ([("stauts", "firing")], "stauts", "unknown parameter 'stauts'"),
        ([("status", "open")], "status", "'open' is not one of firing, resolved"),
        ([("status", "")], "status", "'' is not one of"),
        ([("kind", "ghost")], "kind", "'ghost' is not one of unmatched_debit"),
        ([("severity", "urgent")], "severity", "'urgent' is not one of critical"),
        ([("limit", "0")], "limit", "from 1 to 500"),
        ([("limit", str(MAX_LIMIT + 1))], "limit", "from 1 to 500"),
        ([("limit", "ten")], "limit", "got 'ten'"),
        ([("limit", "5"), ("limit", "6")], "limit", "given 2 times"),
        ([("sort", "-score")], "sort", "'-score' is not one of -severity"),
        ([("since", "yesterday")], "since", "not an RFC 3339 instant"),
        ([("since", "2026-11-27T09:00:00")], "since", "not an RFC 3339 instant"),
        ([("until", "2026-02-30T09:00:00Z")], "until", "no such date"),
        (
            [("since", "2026-11-28T00:00:00Z"), ("until", "2026-11-27T00:00:00Z")],
            "since",
            "'since' is later than 'until'",
        ),
        ([("terminal", "")], "terminal", "empty"),
        ([("cursor", "%%%")], "cursor", "not a cursor"),
        ([("cursor", "bm90IGpzb24")], "cursor", "not a cursor"),
        # Found in review: each of these was a 500, not a 400.
        ([("limit", "9" * 4301)], "limit", "from 1 to 500"),
        ([("limit", "0" * 10 + "1")], "limit", "from 1 to 500"),
        (
            [("cursor", base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("="))],
            "cursor",
            "not a cursor",
        ),
        ([("cursor", "A" * 513)], "cursor", "not a cursor"),
    ],
)
def test_bad_parameters_are_400_with_the_parameter_named(
    params: list[tuple[str, str]], detail: str, message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_alert_query(params)
    assert caught.value.detail == detail
    assert message in caught.value.message


def test_cursor_round_trip_and_sort_binding() -> None:
    key = (-3, -0.815, -1795770902000000, "ud-1")
    cursor = encode_cursor("-severity", key)
    assert decode_cursor(cursor, "-severity") == key
    with pytest.raises(QueryError, match="made for sort='-severity'"):
        decode_cursor(cursor, "deadline")
    forged = encode_cursor("-severity", (1, 2, "three", "ud-1"))
    with pytest.raises(QueryError, match="not a cursor"):
        decode_cursor(forged, "-severity")


def test_next_link_keeps_the_filters_and_replaces_the_cursor() -> None:
    params = [("status", "firing"), ("kind", "a,b"), ("cursor", "old")]
    assert next_link("/alerts", params, "new") == "/alerts?status=firing&kind=a%2Cb&cursor=new"


# ---------------------------------------------------------------- filtering and paging


def sample_entries() -> list[Entry]:
    """40 alerts across kinds, statuses, severities, currencies, deadlines, times."""
    kinds = [Kind.UNMATCHED_DEBIT, Kind.DUPLICATE_DEBIT, Kind.AMOUNT_MISMATCH]
    severities = list(Severity)
    alerts = []
    for n in range(40):
        alerts.append(
            make_alert(
                kind=kinds[n % 3],
                status=Status.RESOLVED if n % 4 == 0 else Status.FIRING,
                severity=severities[n % 4],
                score=round(0.2 + (n % 7) / 10, 3),
                at_risk_minor=(n % 6) * 1500,
                currency="JPY" if n % 5 == 0 else "EUR",
                issuer_currency="JPY" if n % 5 == 0 else "EUR",
                deadline=None if n % 3 else f"2026-12-0{1 + n % 5}T00:00:00Z",
                detected_at=f"2026-11-27T{n % 24:02d}:{n % 7:02d}:00Z",
            )
        )
    return list(index_of(alerts).entries())


def walk(
    entries: list[Entry], params: list[tuple[str, str]], cursor: str | None = None
) -> list[list[Entry]]:
    """Every page, following the next cursors as a client does."""
    pages = []
    while True:
        query = parse_alert_query(params + ([("cursor", cursor)] if cursor else []))
        page = select(entries, query)
        pages.append(page.entries)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 100


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("limit", [1, 7, 500])
def test_walking_the_pages_gives_every_match_once_in_order(sort: str, limit: int) -> None:
    entries = sample_entries()
    params = [("status", "firing"), ("sort", sort), ("limit", str(limit))]
    pages = walk(entries, params)
    seen = [entry.alert_id for page in pages for entry in page]
    assert all(len(page) <= limit for page in pages)
    assert len(seen) == len(set(seen)), "an alert appeared on two pages"
    expected = [e for e in entries if e.alert.status is Status.FIRING]
    assert set(seen) == {e.alert_id for e in expected}
    query = parse_alert_query(params)
    assert seen == [e.alert_id for e in sorted(expected, key=query.key)]


def test_pages_stay_exact_when_alerts_arrive_between_them() -> None:
    """Keyset paging: a new alert sorting before the cursor shifts nothing after it."""
    entries = sample_entries()
    params = [("sort", "-detected_at"), ("limit", "10")]
    first = select(entries, parse_alert_query(params))
    newcomer = index_of([make_alert(detected_at="2026-11-28T00:00:00Z")])
    entries += list(newcomer.entries())
    assert first.next_cursor is not None
    rest = walk(entries, params, cursor=first.next_cursor)
    before = {e.alert_id for e in first.entries}
    after = [e.alert_id for page in rest for e in page]
    assert not before & set(after)
    assert len(before) + len(after) == len(entries) - 1  # all but the newcomer


def test_filters_match_a_brute_force_reading() -> None:
    entries = sample_entries()
    params = [
        ("kind", "unmatched_debit,duplicate_debit"),
        ("severity", "critical"),
        ("severity", "high"),
        ("since", "2026-11-27T05:00:00Z"),
        ("until", "2026-11-27T20:00:00Z"),
        ("limit", "500"),
    ]
    page = select(entries, parse_alert_query(params))
    expected = {
        e.alert_id
        for e in entries
        if e.alert.kind.value in ("unmatched_debit", "duplicate_debit")
        and e.alert.severity.value in ("critical", "high")
        and "2026-11-27T05:00:00Z" <= e.alert.detected_at < "2026-11-27T20:00:00Z"
    }
    assert expected and {e.alert_id for e in page.entries} == expected
    assert page.total == len(expected)
    one = entries[3].alert
    by_place = select(
        entries,
        parse_alert_query([("terminal", str(one.terminal_id)), ("merchant", str(one.merchant_id))]),
    )
    assert one.alert_id in {e.alert_id for e in by_place.entries}
    assert all(
        (e.alert.terminal_id, e.alert.merchant_id) == (one.terminal_id, one.merchant_id)
        for e in by_place.entries
    )


def test_sort_orders_mean_what_they_say() -> None:
    entries = sample_entries()

    def first(sort: str) -> Alert:
        return select(entries, AlertQuery(sort=sort, limit=1)).entries[0].alert

    assert first("-severity").severity is Severity.CRITICAL
    assert first("severity").severity is Severity.LOW
    # 600 JPY is 600 yen, 7,500 EUR cents only 75 euros: money is compared in major units.
    yen, euros = make_alert(currency="JPY", at_risk_minor=600), make_alert(at_risk_minor=7_500)
    pair = list(index_of([euros, yen]).entries())
    ranked = select(pair, AlertQuery(sort="-at_risk")).entries
    assert [e.alert_id for e in ranked] == [yen.alert_id, euros.alert_id]
    by_deadline = [e.alert.deadline for e in select(entries, AlertQuery(sort="deadline")).entries]
    dated = [d for d in by_deadline if d is not None]
    assert dated == sorted(dated) and by_deadline[: len(dated)] == dated  # undated last
    newest = select(entries, AlertQuery(sort="-detected_at", limit=1)).entries[0]
    assert newest.detected_us == max(e.detected_us for e in entries)


# ---------------------------------------------------------------- timelines


def test_transaction_key_of_follows_the_ingest_rule() -> None:
    # +08:00 and Z spellings of one instant, fractions floored to the second.
    assert transaction_key_of("T/1", "000042", "2026-11-27T17:15:02.999+08:00") == (
        transaction_key("T/1", "000042", 1795770902)
    )
    assert transaction_key_of("T", "000042", "2026-11-27T09:15:02Z").endswith("/1795770902")


@pytest.mark.parametrize(
    ("terminal", "stan", "sent", "detail"),
    [
        ("T-1", "12345", "2026-11-27T09:15:02Z", "stan"),
        ("T-1", "12345a", "2026-11-27T09:15:02Z", "stan"),
        ("T" * 17, "000001", "2026-11-27T09:15:02Z", "terminal_id"),
        ("T-1", "000001", "2026-11-27 09:15", "transmitted_at"),
    ],
)
def test_transaction_path_errors(terminal: str, stan: str, sent: str, detail: str) -> None:
    with pytest.raises(QueryError) as caught:
        transaction_key_of(terminal, stan, sent)
    assert caught.value.detail == detail


def ghost_debit(reconciler: Reconciler, terminal: str = "T-0042") -> str:
    """A sale at BASE: the bank debits, the terminal times out. Returns its key."""
    key: dict[str, Any] = {
        "terminal": terminal,
        "stan": "000123",
        "tx": 0.0,
        "amount": 4_200,
        "currency": "INR",
    }
    apply(reconciler, "terminal", event("request", 0.5, **key))
    apply(reconciler, "issuer", event("authorization", 1.0, approved=True, **key))
    apply(reconciler, "issuer", event("debit", 1.2, **key))
    apply(reconciler, "terminal", event("outcome", 30.0, outcome="timeout", **key))
    return transaction_key(terminal, "000123", BASE_SECOND)


def close_windows(reconciler: Reconciler, t: float) -> None:
    apply(reconciler, "terminal", watermark(t))
    apply(reconciler, "issuer", watermark(t))


def test_timeline_puts_each_side_in_its_column_in_event_time_order() -> None:
    reconciler = Reconciler()
    key = ghost_debit(reconciler)
    close_windows(reconciler, 1_000)
    published = {a.alert_id: a for a in reconciler.take_alerts()}
    view = describe(
        reconciler.store[key],
        partition=3,
        config=reconciler.config,
        stream_time_us=reconciler.stream_time,
        published=published.get,
        served_by="http://w1:6066",
    )
    rows = [
        (r.source, (r.terminal or r.issuer).type, r.terminal is None)  # type: ignore[union-attr]
        for r in view.timeline
    ]
    assert rows == [
        ("terminal", "request", False),
        ("issuer", "authorization", True),
        ("issuer", "debit", True),
        ("terminal", "outcome", False),
    ]
    outcome = view.timeline[-1].terminal
    assert outcome is not None and (outcome.outcome, outcome.currency) == ("timeout", "INR")
    authorization = view.timeline[1].issuer
    assert authorization is not None and authorization.approved is True
    times = [micros_of(r.at) for r in view.timeline]
    assert times == sorted(times)
    assert (view.terminal_id, view.stan, view.transmitted_at) == (
        "T-0042",
        "000123",
        "2026-11-27T09:00:00Z",
    )
    state = view.state
    assert state.judged and state.net_position_minor == 4_200
    assert (state.terminal_outcome, state.terminal_completed) == ("timeout", False)
    assert state.holding == ["unmatched_debit"]
    assert state.window_closes_at == "2026-11-27T09:06:00Z"  # 300 s + 60 s grace
    [verdict] = view.verdicts
    alert = published[verdict.alert_id]
    assert (verdict.kind, verdict.status, verdict.severity) == (
        "unmatched_debit",
        "firing",
        alert.severity.value,
    )
    assert verdict.explanation == alert.explanation and view.why == alert.explanation
    assert verdict.href == f"/alerts/{alert.alert_id}"
    assert msgspec.json.decode(msgspec.json.encode(view))["served_by"] == "http://w1:6066"


def test_a_verdict_not_yet_read_by_the_index_still_shows_its_status() -> None:
    reconciler = Reconciler()
    key = ghost_debit(reconciler)
    close_windows(reconciler, 1_000)
    view = describe(
        reconciler.store[key],
        partition=0,
        config=reconciler.config,
        stream_time_us=reconciler.stream_time,
        published=lambda _id: None,
        served_by="w",
    )
    [verdict] = view.verdicts
    assert verdict.status == "firing" and verdict.explanation is None
    assert "not been read" in view.why


def test_why_before_the_window_closes_and_after_a_resolution() -> None:
    reconciler = Reconciler()
    key = ghost_debit(reconciler)
    close_windows(reconciler, 100)  # stream time before the window's close
    config = DetectionConfig()

    def view_now() -> Any:
        return describe(
            reconciler.store[key],
            partition=0,
            config=config,
            stream_time_us=reconciler.stream_time,
            published=lambda _id: None,
            served_by="w",
        )

    early = view_now()
    assert not early.state.judged and early.verdicts == []
    assert early.why.startswith("No verdict yet") and early.state.holding == ["unmatched_debit"]
    close_windows(reconciler, 1_000)
    apply(
        reconciler,
        "issuer",
        event("reversal", 1_100, terminal="T-0042", stan="000123", amount=4_200, currency="INR"),
    )
    late = view_now()
    assert [(v.kind, v.status) for v in late.verdicts] == [("unmatched_debit", "resolved")]
    assert late.why.startswith("Every alert of this transaction is resolved")
    assert late.state.net_position_minor == 0
