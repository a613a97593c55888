"""The triage page in a real browser: Debian's chromium, driven by Playwright.

A live worker of a simulated run with its API token on. The page asks for the token,
lists the firing alerts in the server's order for each sort the column headers offer
(severity, money at risk, deadline), and a click on an alert shows its transaction's
timeline, terminal and issuer side by side, with the explanation. The test leaves a
screenshot: ``out/artifacts/triage.png`` in the repository, and one in its tmp_path.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.kafka.conftest import unique_settings
from tests.kafka.live_api import TOKEN, LiveRun, live_run, transaction_path

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "artifacts"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    folder = tmp_path_factory.mktemp("triage")
    settings = unique_settings(kafka_bootstrap, folder, "triage")
    with live_run(settings, folder, count=1, transactions=600, seed=11) as run:
        yield run


@pytest.fixture(scope="module")
def browser(live: LiveRun) -> Iterator[Browser]:
    """After ``live``: Playwright's sync API runs an event loop of its own while it is
    open, and the capture producer must run its own before that."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install the Debian package `chromium` "
            "(apt-get install chromium); these tests never download a browser"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


def row_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#alerts tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.alertId)"
    )
    return ids


def eventually(check: Callable[[], bool], what: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def server_order(live: LiveRun, sort: str) -> list[str]:
    page = live.apis[0].ok(f"/alerts?status=firing&sort={sort}&limit=500")
    return [alert["alert_id"] for alert in page["alerts"]]


def sign_in(page: Page, live: LiveRun) -> None:
    page.goto(live.apis[0].base + "/triage")
    form = page.locator("#token-form")
    form.wait_for(state="visible")  # the worker wants a token: the page asks for it
    assert "needs an API token" in page.locator("#status").inner_text()
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    form.wait_for(state="hidden")


def test_the_page_lists_sorts_and_explains(page: Page, live: LiveRun, tmp_path: Path) -> None:
    firing = {a.alert_id: a for a in live.final.values() if a.status.value == "firing"}
    assert len(firing) >= 5, "the simulated run should leave several alerts firing"
    sign_in(page, live)
    eventually(lambda: len(row_ids(page)) == len(firing), "the page never listed every alert")
    assert set(row_ids(page)) == set(firing)
    assert f"{len(firing)} firing alerts" in page.locator("#status").inner_text()

    # Each header click asks the server for that order: the rows follow it exactly.
    expectations = [
        (None, "-severity", "severity", "descending"),
        ("at_risk", "-at_risk", "at_risk", "descending"),
        ("at_risk", "at_risk", "at_risk", "ascending"),
        ("deadline", "deadline", "deadline", "ascending"),
        ("severity", "-severity", "severity", "descending"),
    ]
    for click, sort, column, direction in expectations:
        if click is not None:
            page.click(f"th[data-sort={click}] button")
        expected = server_order(live, sort)
        eventually(lambda e=expected: row_ids(page) == e, f"rows not in {sort} order")  # type: ignore[misc]
        header = page.locator(f"th[data-sort={column}]")
        assert header.get_attribute("aria-sort") == direction, sort
    severities = page.locator("#alerts tbody td.sev").all_inner_texts()
    assert severities[0].lower() == max(
        (a.severity.value for a in firing.values()),
        key=["low", "medium", "high", "critical"].index,
    )

    # The most urgent transaction alert: its timeline, both sides, and the explanation.
    chosen = next(firing[i] for i in row_ids(page) if firing[i].terminal_id is not None)
    page.click(f"#alerts tbody tr[data-alert-id='{chosen.alert_id}']")
    transaction = live.apis[0].ok(transaction_path(chosen))
    rows = page.locator("#timeline tbody tr")
    eventually(lambda: rows.count() == len(transaction["timeline"]), "the timeline never appeared")
    sources = rows.evaluate_all("rows => rows.map(row => row.dataset.source)")
    assert sources == [row["source"] for row in transaction["timeline"]]
    assert {"terminal", "issuer"} <= set(sources), "a ghost debit has both sides' events"
    for index, row in enumerate(transaction["timeline"]):
        cells = rows.nth(index).locator("td")
        side = 1 if row["source"] == "terminal" else 2
        event = row[row["source"]]
        assert event["type"] in cells.nth(side).inner_text()
        assert cells.nth(3 - side).inner_text() == ""  # the other side's column is empty
    assert chosen.explanation in page.locator("#why").inner_text()
    assert chosen.kind.value in page.locator("#verdicts").inner_text()
    assert chosen.alert_id in page.locator("#detail-title").inner_text()

    shot = tmp_path / "triage.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "triage.png")
    assert shot.stat().st_size > 10_000


def test_a_wrong_token_is_refused_and_shows_no_alert(page: Page, live: LiveRun) -> None:
    page.goto(live.apis[0].base + "/triage")
    page.locator("#token-form").wait_for(state="visible")
    page.fill("#token", TOKEN + "-wrong")
    page.click("#token-form button[type=submit]")
    eventually(
        lambda: "token was refused" in page.locator("#status").inner_text(),
        "a wrong token was not reported",
    )
    assert row_ids(page) == []
    assert page.locator("#token-form").is_visible()
