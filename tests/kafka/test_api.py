"""The HTTP API on two live workers of a simulated run, auth on (docs/api.md).

One simulated capture through two real workers on the session's broker, then every
question asked over HTTP, of both workers: they must agree with the alerts topic and
with each other. A transaction's state lives on one worker only, so asking both for
every transaction exercises the routing to its owner.

The capture's closing watermarks are moved from 9999 to an hour after its last event:
every window closes, but no transaction reaches the end of its retention, so their
states are still there to be shown.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import msgspec
import pytest

from models.alerts import Alert, Status
from models.instants import format_micros, micros_of
from tests.kafka.conftest import unique_settings
from tests.kafka.live_api import TOKEN, LiveRun, live_run, transaction_path

SORTS = ("-severity", "-at_risk", "deadline", "-detected_at")


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    folder = tmp_path_factory.mktemp("api")
    settings = unique_settings(kafka_bootstrap, folder, "api")
    with live_run(settings, folder, count=2, transactions=600, seed=11) as live:
        assert len(live.final) >= 10, "the simulated run should raise a dozen alerts or more"
        yield live


# ---------------------------------------------------------------- tests


def test_probes_and_metrics_answer_without_a_token(run: LiveRun) -> None:
    for api in run.apis:
        ready = api.get("/readyz", token=None)
        assert (ready.status, ready.json()) == (200, {"status": "ready"})
        assert api.get("/healthz", token=None).json() == {"status": "ok"}
        assert api.get("/metrics", token=None).status == 200
        page = api.get("/triage", token=None)
        assert page.status == 200 and b'<table id="alerts">' in page.body


@pytest.mark.parametrize(
    "path", ["/alerts", "/alerts/ud-0", "/transactions/T-1/000001/2026-11-27T09:00:00Z"]
)
def test_data_needs_the_token(run: LiveRun, path: str) -> None:
    api = run.apis[0]
    missing = api.get(path, token=None)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="debitwatch"'
    assert missing.json()["error"] == "unauthorized"
    wrong = api.get(path, token=TOKEN + "x")
    assert wrong.status == 401 and 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert b"alert_id" not in wrong.body and b"timeline" not in wrong.body
    assert api.get(path).status in (200, 404)  # the right token: an answer


def test_every_worker_lists_every_alert_in_its_last_state(run: LiveRun) -> None:
    expected = {a.alert_id: (a.status.value, a.deadline_passed) for a in run.final.values()}
    for api in run.apis:
        listed, _pages = api.all_alerts("limit=500")
        assert {a["alert_id"]: (a["status"], a["deadline_passed"]) for a in listed} == expected
        sample = next(a for a in listed if a["status"] == "firing")
        last = msgspec.to_builtins(run.final[sample["alert_id"]])
        assert sample == last, "the listed alert differs from its last record on the topic"


@pytest.mark.parametrize("sort", SORTS)
def test_walking_every_page_gives_each_alert_once(run: LiveRun, sort: str) -> None:
    api = run.apis[len(sort) % 2]  # both workers page
    walked, pages = api.all_alerts(f"sort={sort}&limit=3")
    ids = [a["alert_id"] for a in walked]
    assert pages == -(-len(run.final) // 3)
    assert len(ids) == len(set(ids)), "an alert was on two pages"
    assert set(ids) == set(run.final)
    whole = api.ok(f"/alerts?sort={sort}&limit=500")["alerts"]
    assert ids == [a["alert_id"] for a in whole], "pages do not follow the single-page order"


def test_sorts_order_by_what_they_name(run: LiveRun) -> None:
    api = run.apis[0]
    rank = {"critical": 3, "high": 2, "medium": 1, "low": 0}
    severities = [rank[a["severity"]] for a in api.ok("/alerts?sort=-severity&limit=500")["alerts"]]
    assert severities == sorted(severities, reverse=True)
    deadlines = [a["deadline"] for a in api.ok("/alerts?sort=deadline&limit=500")["alerts"]]
    dated = [micros_of(d) for d in deadlines if d is not None]
    assert dated == sorted(dated) and all(d is None for d in deadlines[len(dated) :])
    detected = [micros_of(a["detected_at"]) for a in api.ok("/alerts?limit=500")["alerts"]]
    assert detected == sorted(detected, reverse=True)  # the default: newest first


def test_filters(run: LiveRun) -> None:
    api = run.apis[1]
    final = list(run.final.values())

    def ids(query: str) -> set[str]:
        return {a["alert_id"] for a in api.all_alerts(query)[0]}

    firing = {a.alert_id for a in final if a.status is Status.FIRING}
    assert firing and ids("status=firing&limit=500") == firing
    kinds = sorted({a.kind.value for a in final})
    assert ids(f"kind={kinds[0]}") == {a.alert_id for a in final if a.kind.value == kinds[0]}
    both = f"kind={kinds[0]}&kind={kinds[-1]}"
    assert ids(both) == ids(f"kind={kinds[0]},{kinds[-1]}")
    assert ids("severity=critical,high") == {
        a.alert_id for a in final if a.severity.value in ("critical", "high")
    }
    one = next(a for a in final if a.terminal_id is not None)
    assert ids(f"terminal={one.terminal_id}") == {
        a.alert_id for a in final if a.terminal_id == one.terminal_id
    }
    assert ids(f"merchant={one.merchant_id}") == {
        a.alert_id for a in final if a.merchant_id == one.merchant_id
    }
    # detected_at is stream time: how many distinct values there are depends on how the
    # batches fell, so split at one of them and check both sides, whatever they hold.
    times = sorted({micros_of(a.detected_at) for a in final})
    middle = times[len(times) // 2]
    later = ids(f"since={urllib.parse.quote(format_micros(middle))}")
    earlier = ids(f"until={urllib.parse.quote(format_micros(middle))}")
    assert later and not later & earlier and later | earlier == set(run.final)
    assert all(micros_of(run.final[i].detected_at) >= middle for i in later)
    assert all(micros_of(run.final[i].detected_at) < middle for i in earlier)
    assert bool(earlier) == (len(times) > 1)
    after_all = urllib.parse.quote(format_micros(times[-1] + 1))
    assert ids(f"since={after_all}") == set()
    window = f"since={urllib.parse.quote(format_micros(times[0]))}&until={after_all}"
    assert ids(window) == set(run.final)


@pytest.mark.parametrize(
    ("query", "detail", "words"),
    [
        ("status=open", "status", "is not one of firing, resolved"),
        ("kind=ghost_debit", "kind", "is not one of"),
        ("limit=0", "limit", "from 1 to 500"),
        ("limit=501", "limit", "from 1 to 500"),
        ("sort=cheapest", "sort", "is not one of"),
        ("since=yesterday", "since", "RFC 3339"),
        ("since=2026-11-28T00:00:00Z&until=2026-11-27T00:00:00Z", "since", "later than"),
        ("cursor=bogus", "cursor", "not a cursor"),
        ("statuss=firing", "statuss", "unknown parameter"),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(
    run: LiveRun, query: str, detail: str, words: str
) -> None:
    reply = run.apis[0].get(f"/alerts?{query}")
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["detail"] == detail and words in body["error"], body


def test_a_cursor_only_works_with_its_sort(run: LiveRun) -> None:
    page = run.apis[0].ok("/alerts?sort=-at_risk&limit=2")
    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(page["next"]).query)["cursor"][0]
    reply = run.apis[0].get(f"/alerts?sort=deadline&cursor={cursor}")
    assert reply.status == 400 and "made for sort='-at_risk'" in reply.json()["error"]


def test_unknown_alert_and_transaction_are_404(run: LiveRun) -> None:
    for api in run.apis:
        alert = api.get("/alerts/ud-00000000000000000000000000000000")
        assert alert.status == 404 and alert.json()["error"] == "unknown alert"
        missing = api.get("/transactions/NOPE/000001/2026-11-27T09%3A00%3A00Z")
        assert missing.status == 404 and missing.json()["error"] == "unknown transaction"
    bad = run.apis[0].get("/transactions/T-1/12/2026-11-27T09%3A00%3A00Z")
    assert bad.status == 400 and bad.json()["detail"] == "stan"
    bad_time = run.apis[0].get("/transactions/T-1/000001/noon")
    assert bad_time.status == 400 and bad_time.json()["detail"] == "transmitted_at"


def test_one_alert_with_its_state_changes(run: LiveRun) -> None:
    records: dict[str, list[Alert]] = {}
    for alert in run.alerts:
        records.setdefault(alert.alert_id, []).append(alert)
    # The alert with the most records on the topic (a resolution or an escalation if any).
    alert_id = max(records, key=lambda i: len(records[i]))
    for api in run.apis:
        detail = api.ok(f"/alerts/{alert_id}")
        assert detail["alert"]["status"] == records[alert_id][-1].status.value
        changes = [(c["status"], c["deadline_passed"]) for c in detail["history"]]
        published: list[tuple[str, bool]] = []
        for alert in records[alert_id]:
            state = (alert.status.value, alert.deadline_passed)
            if not published or published[-1] != state:
                published.append(state)
        assert changes == published
        if detail["transaction"] is not None:
            assert api.get(detail["transaction"]).status == 200


def test_every_transaction_reads_the_same_on_both_workers(run: LiveRun) -> None:
    """Each worker owns half of the join partitions: the other half is routed."""
    transactions = {transaction_path(a): a for a in run.final.values() if a.terminal_id is not None}
    owners: set[str] = set()
    for path, alert in transactions.items():
        answers = [api.get(path) for api in run.apis]
        assert [a.status for a in answers] == [200, 200], (path, answers[0].body[:300])
        first, second = (a.json() for a in answers)
        assert first == second, f"the workers disagree about {path}"
        owners.add(first["served_by"])
        events = {(row["terminal"] or row["issuer"])["event_id"] for row in first["timeline"]}
        assert set(alert.evidence) <= events
        assert alert.kind.value in {v["kind"] for v in first["verdicts"]}
        verdict = next(v for v in first["verdicts"] if v["alert_id"] == alert.alert_id)
        assert verdict["explanation"] == alert.explanation
        # The owner answers locally; the other worker holds nothing of it.
        local = [api.get(path + "?local=true").status for api in run.apis]
        assert sorted(local) == [200, 404], (path, local)
    assert len(owners) == 2, f"every transaction was on one worker: {owners}"
