"""The Grafana provisioning and dashboards (docs/dashboards.md), checked without Grafana.

Grafana is not installable here, so the checks are of what Grafana would load: the
committed JSON equals the generator's output (``--check``), every panel is well formed
(datasource, unit, title, targets, a place on the grid), and every PromQL expression is
run on a real Prometheus (Debian package ``prometheus``) that scrapes a real worker
registry (``streams.metrics``): the expression must parse, return series, and carry the
labels its legend names. A typo in a label value (``status="fired"``) returns nothing and
fails here, where a syntax check alone would pass it.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from streams import metrics as worker_metrics
from streams.metrics import PartitionView, StateCollector, WorkerMetrics
from tests.deploy.grafana_dashboards import (
    DASHBOARD_FILES,
    GENERATOR,
    PROVISIONING_DIR,
    ROOT,
    load_dashboards,
    panel_queries,
    panels,
)

# PyYAML comes with the dev dependencies (schemathesis) but has no type hints there.
yaml: Any = import_module("yaml")

EXPECTED_UIDS = {
    "overview.json": "debitwatch-overview",
    "terminals.json": "debitwatch-terminals",
    "pipeline.json": "debitwatch-pipeline",
}
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/debitwatch"
PANEL_TYPES = {"timeseries", "stat", "bargauge", "table", "heatmap"}
# Grafana unit ids the dashboards may use (a typo such as "sec" shows raw numbers).
UNITS = {"short", "s", "bytes", "ops", "reqps", "percentunit", "locale", "none"}
RATE_UNITS = {"ops", "reqps"}
# Worker metrics that no panel shows, and why: a new metric must be placed or listed here.
NOT_ON_A_DASHBOARD = {
    "debitwatch_stream_time_seconds": "shown as debitwatch_stream_time_lag_seconds",
}
# What Grafana substitutes before sending a query; the test Prometheus has seconds of
# data scraped every second, so a minute covers every sample.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1s"}
SCRAPE_JOB = "debitwatch"


# ------------------------------------------------------------------ helpers


def metrics_defined() -> tuple[set[str], set[str]]:
    """Metric names in streams/metrics.py (``PREFIX + "name"``), and which are histograms."""
    source = Path(worker_metrics.__file__).read_text(encoding="utf-8")
    names = {PREFIX_NAME + name for name in re.findall(r'PREFIX \+ "(\w+)"', source)}
    histograms = {
        PREFIX_NAME + name for name in re.findall(r'Histogram\(\s*PREFIX \+ "(\w+)"', source)
    }
    return names, histograms


PREFIX_NAME = worker_metrics.PREFIX
PROMQL_KEYWORDS = {
    *("by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"),
    *("and", "or", "unless", "atan2", "inf", "nan"),
}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small lexer, enough for our PromQL)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, Grafana's $__ variables included
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])[A-Za-z_:][\w:]*", text):
        word = match.group()
        if word.lower() in PROMQL_KEYWORDS or re.match(r"\s*\(", text[match.end() :]):
            continue  # an operator, or a function or aggregation being called
        names.add(word)
    return names


def for_prometheus(expr: str) -> str:
    """The expression as Grafana sends it, with its built-in variables substituted."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def all_targets() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for board in load_dashboards().values():
        for panel in panels(board):
            for target in panel.get("targets", []):
                yield board["uid"], panel, target


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((PROVISIONING_DIR / relative).read_text(encoding="utf-8"))


# ---------------------------------------------------------- the generator


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    done = run_generator("--check")
    assert done.returncode == 0, done.stderr


def test_check_fails_on_a_stale_dashboard(tmp_path: Path) -> None:
    assert run_generator("--dir", str(tmp_path)).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DASHBOARD_FILES)
    assert run_generator("--check", "--dir", str(tmp_path)).returncode == 0
    stale = tmp_path / "pipeline.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("Rebalances", "Rebalance"))
    done = run_generator("--check", "--dir", str(tmp_path))
    assert done.returncode == 1
    assert "pipeline.json" in done.stderr
    assert "overview.json" not in done.stderr


# ------------------------------------------------------------ provisioning


def test_datasource_provisioning() -> None:
    config = load_yaml("datasources/prometheus.yml")
    assert config["apiVersion"] == 1
    [source] = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "debitwatch-prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    assert source["isDefault"] is True
    assert re.fullmatch(r"\d+s", source["jsonData"]["timeInterval"])


def test_dashboard_provisioning_loads_the_mounted_directory() -> None:
    config = load_yaml("dashboards/debitwatch.yml")
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["name"]
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    assert isinstance(provider["disableDeletion"], bool)
    assert isinstance(provider["updateIntervalSeconds"], int)
    # The files in git are the source of truth (build_dashboards.py): no UI saves.
    assert provider["allowUiUpdates"] is False


# -------------------------------------------------------------- structure


def test_uids_are_fixed_and_unique() -> None:
    boards = load_dashboards()
    assert {name: board["uid"] for name, board in boards.items()} == EXPECTED_UIDS
    titles = [board["title"] for board in boards.values()]
    assert len(set(titles)) == len(titles)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_header(name: str) -> None:
    board = load_dashboards()[name]
    assert board["schemaVersion"] == 39
    assert board["id"] is None  # Grafana assigns its own database id
    assert "debitwatch" in board["tags"]
    assert board["panels"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_panel_is_complete(name: str) -> None:
    source_uid = load_yaml("datasources/prometheus.yml")["datasources"][0]["uid"]
    expected = {"type": "prometheus", "uid": source_uid}
    problems = []
    for panel in panels(load_dashboards()[name]):
        title = panel.get("title", "")
        if not title.strip():
            problems.append(f"panel {panel.get('id')}: no title")
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{title}: panel type {panel.get('type')!r}")
        if panel.get("datasource") != expected:
            problems.append(f"{title}: datasource {panel.get('datasource')}")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in UNITS:
            problems.append(f"{title}: unit {unit!r}")
        if not panel.get("description", "").strip():
            problems.append(f"{title}: no description")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{title}: no target")
        for target in targets:
            if not target.get("expr", "").strip():
                problems.append(f"{title}: target {target.get('refId')} has no expr")
            if target.get("datasource") != expected:
                problems.append(f"{title}: target datasource {target.get('datasource')}")
        ref_ids = [target.get("refId") for target in targets]
        if len(set(ref_ids)) != len(ref_ids):
            problems.append(f"{title}: refIds {ref_ids}")
    assert problems == []


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_units_match_what_is_measured(name: str) -> None:
    problems = []
    for panel in panels(load_dashboards()[name]):
        unit = panel["fieldConfig"]["defaults"]["unit"]
        exprs = [target["expr"] for target in panel["targets"]]
        selected = set().union(*(metric_names(expr) for expr in exprs))
        if any("histogram_quantile" in e for e in exprs):
            if not all("_seconds_bucket" in e for e in exprs):
                continue  # a quantile of scores: no unit
            wanted: set[str] = {"s"}
        elif any(re.search(r"\b(?:i?rate)\(", e) for e in exprs):
            wanted = RATE_UNITS
        elif selected and all(n.endswith("_seconds") for n in selected):
            wanted = {"s"}
        elif selected and all(n.endswith("_bytes") for n in selected):
            wanted = {"bytes"}
        else:
            continue
        if unit not in wanted:
            problems.append(f"{panel['title']}: unit {unit!r}, expected one of {sorted(wanted)}")
    assert problems == []


def overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": 0, "y": 0, "w": 12, "h": 8}, {"x": 12, "y": 0, "w": 12, "h": 8}, False),
        ({"x": 0, "y": 0, "w": 12, "h": 8}, {"x": 0, "y": 8, "w": 24, "h": 8}, False),
        ({"x": 0, "y": 0, "w": 13, "h": 8}, {"x": 12, "y": 7, "w": 12, "h": 8}, True),
        ({"x": 4, "y": 2, "w": 2, "h": 2}, {"x": 0, "y": 0, "w": 24, "h": 8}, True),
    ],
)
def test_overlap_check(a: dict[str, int], b: dict[str, int], expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_panels_are_laid_out_without_overlap(name: str) -> None:
    placed = list(panels(load_dashboards()[name]))
    ids = [panel["id"] for panel in placed]
    assert len(set(ids)) == len(ids), ids
    titles = [panel["title"] for panel in placed]  # what links and the tests refer to
    assert len(set(titles)) == len(titles), titles
    for panel in placed:
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0, panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["y"] >= 0, panel["title"]
    clashes = [
        (a["title"], b["title"])
        for i, a in enumerate(placed)
        for b in placed[i + 1 :]
        if overlaps(a["gridPos"], b["gridPos"])
    ]
    assert clashes == []


# ----------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (kind, le) (rate(a_bucket{kind="x y"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        (
            "sum(increase(a_total[1h])) / (sum(increase(b_total[1h])) > 0) * 1e-9",
            {"a_total", "b_total"},
        ),
        ('count(up{job="debitwatch"} == 0) or vector(0)', {"up"}),
        ("sum(rate(x[5m])) by (instance) and on (instance) y", {"x", "y"}),
    ],
)
def test_metric_names_lexer(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_metric_exists_in_the_worker() -> None:
    defined, histograms = metrics_defined()
    assert histograms and histograms <= defined  # the grep still finds them
    problems = []
    for uid, title, expr in panel_queries():
        for name in metric_names(expr):
            base = re.sub(r"_(?:bucket|sum|count)$", "", name)
            if name == "up":
                if f'job="{SCRAPE_JOB}"' not in expr:
                    problems.append(f"{uid} / {title}: `up` without the workers' job")
            elif base in histograms and base != name:
                continue
            elif name in histograms:
                problems.append(f"{uid} / {title}: histogram {name} without _bucket/_sum/_count")
            elif name not in defined:
                problems.append(f"{uid} / {title}: {name} is not in streams/metrics.py")
    assert problems == []


def test_every_worker_metric_is_on_a_dashboard() -> None:
    defined, histograms = metrics_defined()
    shown = {
        re.sub(r"_(?:bucket|sum|count)$", "", name)
        if re.sub(r"_(?:bucket|sum|count)$", "", name) in histograms
        else name
        for _, _, expr in panel_queries()
        for name in metric_names(expr)
    }
    assert defined - shown == set(NOT_ON_A_DASHBOARD)


# ------------------------------------------- a real Prometheus, a real worker


@dataclass(frozen=True)
class Partition:
    """One join partition of the served worker: what the panels must show of it."""

    open_transactions: int
    exposure_minor: dict[str, int]
    terminal_incidents: int


PARTITIONS = {
    0: Partition(3, {"INR": 150_000}, terminal_incidents=0),  # paise
    1: Partition(4, {"INR": 50_000, "EUR": 1_234}, terminal_incidents=1),  # paise, cents
}
STREAM_BEHIND_S = 30  # each partition's stream time is this much behind the wall clock


def _views(start_us: int) -> dict[int, PartitionView]:
    def view(number: int, spec: Partition) -> PartitionView:
        stream_us = start_us - STREAM_BEHIND_S * 1_000_000
        return PartitionView(
            open_transactions=lambda: spec.open_transactions,
            oldest_open_us=lambda: stream_us - 120_000_000,
            stream_time_us=lambda: stream_us,
            exposure=lambda: dict(spec.exposure_minor),
            incidents_firing=lambda: {"terminal": spec.terminal_incidents, "merchant": 1},
        )

    return {number: view(number, spec) for number, spec in PARTITIONS.items()}


def _traffic(metrics: WorkerMetrics, stop: threading.Event) -> None:
    """Counts moving between scrapes, through the same calls the worker makes."""
    while not stop.wait(0.2):
        metrics.count_events({("terminal", "request"): 20, ("issuer", "debit"): 18})
        metrics.count_rejected(["invalid_json"])
        metrics.late.inc()
        metrics.duplicates.inc()
        for kind in ("unmatched_debit", "terminal_incident"):
            metrics.alerts.labels(kind=kind, status="firing", severity="critical").inc()
            metrics.detection_latency.labels(kind=kind).observe(370.0)
        metrics.money_detected.labels(currency="INR").inc(1_500.0)
        metrics.incident_score.observe(0.42)
        metrics.batch_duration.observe(0.004)
        metrics.batch_events.inc(40)
        metrics.rebalances.inc()
        metrics.recovered_states.inc(100)
        metrics.webhook_deliveries.labels(outcome="delivered").inc()
        metrics.webhook_latency.observe(0.05)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real worker registry served over HTTP, as a worker's web port serves it."""
    metrics = WorkerMetrics(version="0.1.0", model_version="test-model")
    state_dir = tmp_path_factory.mktemp("state")
    (state_dir / "000001.sst").write_bytes(b"\0" * 4096)
    start_us = time.time_ns() // 1000
    metrics.registry.register(
        StateCollector(
            lambda: _views(start_us), data_dir=state_dir, lag=lambda: {"by_merchant": 12}
        )
    )
    metrics.ready.set(1)
    metrics.recovery.set(2.5)
    metrics.webhook_pending.set(2)
    metrics.webhook_disabled.set(1)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()
    mover = threading.Thread(target=_traffic, args=(metrics, stop), daemon=True)
    mover.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        mover.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Prometheus:
    """The HTTP query API of a running Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer, a parse error's 400 included (``status: error``)."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(address, timeout=10) as answer:
                body: dict[str, Any] = json.load(answer)
        except urllib.error.HTTPError as refused:
            body = json.load(refused)
        return body

    def series(self, expr: str) -> list[dict[str, Any]]:
        body = self.query(expr)
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, worker: str) -> Iterator[Prometheus]:
    """One real Prometheus for the module, scraping the worker and a worker that is down."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("the `prometheus` binary is missing: install the Debian package `prometheus`")
    home = tmp_path_factory.mktemp("prometheus")
    down = f"127.0.0.1:{free_port()}"  # nothing listens there: `up` is 0
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": SCRAPE_JOB, "static_configs": [{"targets": [worker, down]}]}
        ],
    }
    (home / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    port = free_port()
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_for_samples(server, process, home / "prometheus.log", worker)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_for_samples(
    server: Prometheus, process: subprocess.Popen[bytes], log: Path, instance: str
) -> None:
    """Until the worker has been scraped five times: enough for rates and increases."""
    wanted = f'count_over_time(up{{job="{SCRAPE_JOB}",instance="{instance}"}}[1m]) >= 5'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if server.query(wanted)["data"]["result"]:
                return
        except (OSError, ValueError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"prometheus scraped no samples in 60 s: {log.read_text()[-2000:]}")


QUERIES = panel_queries()


@pytest.mark.parametrize(
    "expr",
    [expr for _, _, expr in QUERIES],
    ids=[f"{uid}/{title}" for uid, title, _ in QUERIES],
)
def test_expr_is_valid_promql(prometheus: Prometheus, expr: str) -> None:
    body = prometheus.query(for_prometheus(expr))
    assert body["status"] == "success", body.get("error")


def test_prometheus_refuses_invalid_promql(prometheus: Prometheus) -> None:
    # The check above can fail: a parse error is a 400 with status "error".
    body = prometheus.query("sum by (kind (rate(debitwatch_alerts_total[1m]))")
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"


def test_every_target_shows_data_with_its_legend_labels(prometheus: Prometheus) -> None:
    problems = []
    for uid, panel, target in all_targets():
        where = f"{uid} / {panel['title']} / {target['refId']}"
        series = prometheus.series(for_prometheus(target["expr"]))
        if not series:
            problems.append(f"{where}: no data")
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        for one in series:
            missing = legend - one["metric"].keys()
            if missing:
                problems.append(f"{where}: legend labels {sorted(missing)} not in the series")
                break
    assert problems == []


def _panel(uid: str, title: str) -> dict[str, Any]:
    [board] = [board for board in load_dashboards().values() if board["uid"] == uid]
    [panel] = [panel for panel in panels(board) if panel["title"] == title]
    return panel


def _values(prometheus: Prometheus, panel: dict[str, Any], label: str = "") -> dict[str, float]:
    [target] = panel["targets"]
    return {
        one["metric"].get(label, ""): float(one["value"][1])
        for one in prometheus.series(for_prometheus(target["expr"]))
    }


def test_overview_shows_the_workers_state(prometheus: Prometheus) -> None:
    overview = "debitwatch-overview"
    assert _values(prometheus, _panel(overview, "Workers up")) == {"": 1.0}
    assert _values(prometheus, _panel(overview, "Workers down")) == {"": 1.0}
    assert _values(prometheus, _panel(overview, "Open transactions")) == {
        "": sum(p.open_transactions for p in PARTITIONS.values())
    }
    # Minor units on the wire, major units on the dashboard: 2,000.00 INR, 12.34 EUR.
    at_risk = _panel(overview, "Money at risk now by currency (major units)")
    assert _values(prometheus, at_risk, "currency") == pytest.approx({"INR": 2000.0, "EUR": 12.34})
    # One ghost debit per 20 sales in the traffic thread (the ratio of two increases).
    ghost_ratio = _values(prometheus, _panel(overview, "Ghost debits per terminal sale"))
    assert ghost_ratio == pytest.approx({"": 0.05}, rel=0.2)
    # Seconds, not micro- or milliseconds: the partitions started 30 s behind.
    lag = _values(prometheus, _panel(overview, "Stream time lag (worst partition)"))[""]
    assert STREAM_BEHIND_S <= lag < STREAM_BEHIND_S + 600


def test_terminals_and_pipeline_show_the_workers_state(prometheus: Prometheus) -> None:
    terminals, pipeline = "debitwatch-terminals", "debitwatch-pipeline"
    assert _values(prometheus, _panel(terminals, "Terminal incidents firing")) == {"": 1.0}
    assert _values(prometheus, _panel(terminals, "Merchant incidents firing")) == {"": 2.0}
    by_kind = _values(
        prometheus, _panel(terminals, "Alerts fired by kind over the time range"), "kind"
    )
    assert by_kind["unmatched_debit"] > 0 and by_kind["terminal_incident"] > 0
    assert by_kind["amount_mismatch"] == 0  # exported at 0 from start, shown at 0
    [target] = _panel(terminals, "Top kinds and severities over the time range")["targets"]
    top = prometheus.series(for_prometheus(target["expr"]))
    assert len(top) == 10  # of 6 kinds x 4 severities
    leaders = sorted(top, key=lambda one: -float(one["value"][1]))[:2]
    assert {(one["metric"]["kind"], one["metric"]["severity"]) for one in leaders} == {
        ("unmatched_debit", "critical"),
        ("terminal_incident", "critical"),
    }
    assert _values(prometheus, _panel(pipeline, "Workers ready")) == {"": 1.0}
    assert _values(prometheus, _panel(pipeline, "Webhook endpoints disabled")) == {"": 1.0}
    assert _values(prometheus, _panel(pipeline, "Last recovery (slowest worker)")) == {"": 2.5}
