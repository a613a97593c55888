"""deploy/prometheus and deploy/alertmanager (docs/alerting.md), checked by the real tools.

promtool and Prometheus come from the Debian package ``prometheus``, amtool and
Alertmanager from ``prometheus-alertmanager``; a missing binary fails the test with the
package to install (CI installs them, so a skip would hide a broken check).

* promtool checks the config and the rules, and runs the rule unit tests
  (``deploy/prometheus/tests/*.test.yml``: every alert fires and stays quiet there);
* the rules are checked against the code: every metric they read is one the worker
  exports (its real registry), every recorded series they read is recorded, every
  ``runbook_url`` lands on a heading of docs/runbooks.md;
* amtool checks the Alertmanager config and which receiver each alert reaches;
* a real Alertmanager applies the inhibition rules to posted alerts;
* a real Prometheus scrapes two real worker registries through the committed scrape
  jobs (the DNS job's discovery swapped for a fixed target) and evaluates the rules.
"""

from __future__ import annotations

import contextlib
import doctest
import itertools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from streams.metrics import PREFIX, PartitionView, StateCollector, WorkerMetrics
from streams.settings import Settings
from tests.deploy import prometheus_config
from tests.deploy.prometheus_config import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    ROOT,
    RULE_TESTS_DIR,
    RULES_FILE,
    load_config,
    render_alertmanager_config,
    render_config,
)

# PyYAML comes with the dev dependencies (schemathesis) but has no type hints there.
yaml: Any = import_module("yaml")

# Which Debian package brings each binary (CI: apt-get install prometheus
# prometheus-alertmanager).
PACKAGE_OF = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SEVERITY_RECEIVER = {"page": "oncall", "ticket": "case-system"}
RECORDED_NAME = re.compile(r"debitwatch:[a-z0-9_]+:[a-z0-9_]+")
PROMQL_WORDS = {
    *("by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"),
    *("and", "or", "unless", "inf", "nan"),
}
TOOL_TIMEOUT_S = 300  # promtool evaluates 7 days of rules; a busy CI machine is slow


# ------------------------------------------------------------------ helpers


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = PACKAGE_OF[name]
        pytest.fail(
            f"`{name}` is not installed: it comes with the Debian package `{package}` "
            f"(apt-get install {package}); these tests run the real tool, never a stand-in"
        )
    return path


def run(*args: str, timeout: float = TOOL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.test.yml"))


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: a small lexer, enough for these rules
    (test_metric_names_lexer shows what it handles)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        word = match.group()
        if word.lower() in PROMQL_WORDS or re.match(r"\s*\(", text[match.end() :]):
            continue  # an operator, or a function or aggregation being called
        names.add(word)
    return names


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for(
    what: str,
    check: Callable[[], Any],
    until: Callable[[Any], bool] = bool,
    timeout: float = 60.0,
) -> Any:
    """Poll ``check`` until ``until`` holds for what it returns (by default: until it is
    truthy) and return that; fail with ``what`` and the last answer after ``timeout``
    seconds. Connection errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError):
            last = None
        if last is not None and until(last):
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


# ------------------------------------------------------------------ promtool


def test_prometheus_config_is_valid() -> None:
    done = run("promtool", "check", "config", str(PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    # The rule file is found relative to the config file and checked with it.
    assert "SUCCESS: 1 rule files found" in done.stdout
    rules = len(recording_rules()) + len(alert_rules())
    assert f"SUCCESS: {rules} rules found" in done.stdout


def test_scrape_jobs_find_the_workers_once() -> None:
    config = load_config()
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    assert [(PROMETHEUS_CONFIG.parent / path).resolve() for path in config["rule_files"]] == [
        RULES_FILE
    ]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"debitwatch", "debitwatch-dns"}
    # Empty as committed: in docker-compose `worker` is the DNS job's name, and a static
    # `worker:6066` beside it would scrape one container twice.
    assert jobs["debitwatch"]["static_configs"] == [{"targets": []}]
    [dns] = jobs["debitwatch-dns"]["dns_sd_configs"]
    assert (dns["names"], dns["type"], dns["port"]) == (["worker"], "A", Settings().web_port)
    # Both jobs' series carry job="debitwatch", the label the rules and dashboards use.
    assert jobs["debitwatch-dns"]["relabel_configs"] == [
        {"target_label": "job", "replacement": "debitwatch"}
    ]
    [alerting] = config["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def test_rendered_config_is_valid_for_promtool(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(
        render_config(["127.0.0.1:16066", "127.0.0.1:16067"], "127.0.0.1:19093", [RULES_FILE]),
        encoding="utf-8",
    )
    done = run("promtool", "check", "config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:16066", "127.0.0.1:16067"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [
        {"targets": ["127.0.0.1:19093"]}
    ]


def test_rules_are_valid() -> None:
    done = run("promtool", "check", "rules", str(RULES_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda path: path.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    done = run("promtool", "test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same storm with the alert expected quiet."""
    test = yaml.safe_load((RULE_TESTS_DIR / "ghost_debit.test.yml").read_text(encoding="utf-8"))
    test["rule_files"] = [str(RULES_FILE)]
    storm = test["tests"][0]
    assert storm["name"].startswith("storm")
    for case in storm["alert_rule_test"]:
        case["exp_alerts"] = []
    test["tests"] = [storm]
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(test), encoding="utf-8")
    done = run("promtool", "test", "rules", str(broken))
    assert done.returncode == 1
    assert "DebitwatchGhostDebitRateHigh" in done.stdout + done.stderr


# ------------------------------------------------------- rules against the code


def test_every_alert_fires_and_stays_quiet_in_a_unit_test() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in rule_test_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in group.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never expected to fire"
    assert names - quiet == set(), "alerts never expected to stay quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_recording_rule_is_unit_tested() -> None:
    tested = {
        name
        for path in rule_test_files()
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in group.get("promql_expr_test", [])
        for name in metric_names(case["expr"])
    }
    assert {rule["record"] for rule in recording_rules()} - tested == set()


def test_recording_rules_are_named_level_metric_operations() -> None:
    names = [rule["record"] for rule in recording_rules()]
    assert [n for n in names if not RECORDED_NAME.fullmatch(n)] == []
    assert len(set(names)) == len(names)


def test_alert_rules_have_severity_and_annotations() -> None:
    problems = []
    for rule in alert_rules():
        name = rule["alert"]
        if not re.fullmatch(r"Debitwatch[A-Z][A-Za-z]+", name):
            problems.append(f"{name}: not a DebitwatchCamelCase name")
        if set(rule.get("labels", {})) != {"severity"}:
            problems.append(f"{name}: labels {rule.get('labels')}, want only severity")
        if rule.get("labels", {}).get("severity") not in SEVERITY_RECEIVER:
            problems.append(f"{name}: severity {rule.get('labels')}")
        annotations = rule.get("annotations", {})
        if set(annotations) != {"summary", "description", "runbook_url"}:
            problems.append(f"{name}: annotations {sorted(annotations)}")
        if annotations.get("runbook_url") != f"docs/runbooks.md#{name.lower()}":
            problems.append(f"{name}: runbook_url {annotations.get('runbook_url')}")
    assert problems == []


def test_every_runbook_url_lands_on_a_heading() -> None:
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOKS.read_text(encoding="utf-8"), re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    missing = [
        rule["annotations"]["runbook_url"]
        for rule in alert_rules()
        if rule["annotations"]["runbook_url"].partition("#")[2] not in anchors
    ]
    assert missing == []


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name a worker's /metrics can show: its real registry, with the
    scrape-time collector fed one partition, a data dir and a lag reader."""
    metrics = WorkerMetrics(version="t", model_version="t")
    view = PartitionView(
        open_transactions=lambda: 1,
        oldest_open_us=lambda: 1_000_000,
        stream_time_us=lambda: 2_000_000,
        exposure=lambda: {"INR": 100},
        incidents_firing=lambda: {"terminal": 0},
    )
    metrics.registry.register(
        StateCollector(lambda: {0: view}, data_dir=tmp_path, lag=lambda: {"terminal": 0})
    )
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (kind) (rate(a_total{kind="x y"}[5m])) / on() b:c:d', {"a_total", "b:c:d"}),
        ('absent(up{job="debitwatch"} == 1) or vector(0)', {"up"}),
        ("avg_over_time(a:b:c[7d] offset 1h) and on(job, instance) up == 1", {"a:b:c", "up"}),
        ("x / on() group_left() (y > 0) > 0.01 and z > 0.03", {"x", "y", "z"}),
        ("clamp_min(3 * (a or on() vector(0)), 0.05) and on() deriv(b[10m]) > 0", {"a", "b"}),
    ],
)
def test_metric_names_lexer(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_metric_in_the_rules_is_exported_or_recorded(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    assert "debitwatch_stream_time_seconds" in exported  # the collector was read
    recorded = {rule["record"] for rule in recording_rules()}
    problems = []
    for rule in recording_rules() + alert_rules():
        for name in metric_names(rule["expr"]):
            if name == "up":
                if 'up{job="debitwatch"}' not in rule["expr"]:
                    problems.append(f"{rule.get('alert', rule.get('record'))}: up without job")
            elif name.startswith("debitwatch:"):
                if name not in recorded:
                    problems.append(f"{name}: read but never recorded")
            elif not name.startswith(PREFIX) or name not in exported:
                problems.append(f"{name}: not exported by streams/metrics.py")
    assert problems == []


def test_config_helpers_doctest() -> None:
    assert doctest.testmod(prometheus_config).failed == 0


# ------------------------------------------------------------------ amtool


def test_alertmanager_config_is_valid() -> None:
    done = run("amtool", "check-config", str(ALERTMANAGER_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def route(*labels: str) -> tuple[int, str]:
    done = run(
        "amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels
    )
    return done.returncode, done.stdout.strip()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_each_alert_reaches_its_receiver(rule: dict[str, Any]) -> None:
    severity = rule["labels"]["severity"]
    expected = SEVERITY_RECEIVER[severity]
    labels = [f"alertname={rule['alert']}", f"severity={severity}", "currency=INR"]
    assert route(*labels) == (0, expected)
    # --verify.receivers makes amtool itself fail on a mismatch.
    done = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={expected}",
        *labels,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_routing_of_unknown_severities_and_mismatches() -> None:
    # No severity, or one the routes do not know: the case system, never dropped.
    assert route("alertname=DebitwatchSomethingNew") == (0, "case-system")
    assert route("alertname=X", "severity=critical") == (0, "case-system")
    done = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "--verify.receivers=oncall",
        "alertname=DebitwatchWorkerDown",
        "severity=ticket",
    )
    assert done.returncode == 1  # a wrong expectation is caught


def test_grouping_and_timings() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    root = config["route"]
    assert root["group_by"] == ["alertname", "currency"]
    assert root["receiver"] == "case-system"
    receivers = {receiver["name"] for receiver in config["receivers"]}
    assert receivers == set(SEVERITY_RECEIVER.values())
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            # Placeholders that can never reach anyone (RFC 2606), and resolutions sent.
            assert urllib.parse.urlsplit(webhook["url"]).hostname.endswith(".invalid")
            assert webhook["send_resolved"] is True


# ------------------------------------------------- a real Alertmanager: inhibition


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, **labels}}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a free port with the committed config (URLs pointed at a
    closed local port: nothing must leave the machine), clustering off."""
    config = tmp_path / "alertmanager.yml"
    closed = f"http://127.0.0.1:{free_port()}"
    config.write_text(
        render_alertmanager_config(f"{closed}/page", f"{closed}/ticket"), encoding="utf-8"
    )
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "Alertmanager to be ready",
            lambda: http_status(f"{base}/-/ready"),
            until=lambda status: status == 200,
        )
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def post_alerts(base: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def alert_states(base: str) -> dict[str, tuple[str, list[str], list[str]]]:
    """Each alert (name, plus instance or stream where there is one): its state, the
    names of the alerts inhibiting it, and its receivers."""
    alerts = get_json(f"{base}/api/v2/alerts")
    by_fingerprint = {a["fingerprint"]: a["labels"]["alertname"] for a in alerts}
    states = {}
    for a in alerts:
        labels = a["labels"]
        key = "/".join(
            [labels["alertname"], *(labels[k] for k in ("instance", "stream") if k in labels)]
        )
        states[key] = (
            a["status"]["state"],
            sorted(by_fingerprint.get(fp, fp) for fp in a["status"]["inhibitedBy"]),
            sorted(r["name"] for r in a["receivers"]),
        )
    return states


def test_inhibition_rules_in_a_real_alertmanager(alertmanager: str) -> None:
    post_alerts(
        alertmanager,
        [
            alert("DebitwatchGhostDebitRateHigh", "page"),
            alert("DebitwatchStreamTimeStalled", "page", instance="w1", partition="1"),
            alert("DebitwatchConsumerLagGrowing", "ticket", stream="terminal"),
            alert("DebitwatchWorkerDown", "ticket", instance="w2"),
            alert("DebitwatchNotReady", "ticket", instance="w2"),
            alert("DebitwatchNotReady", "ticket", instance="w3"),
        ],
    )
    expected = {
        "DebitwatchGhostDebitRateHigh": ("active", [], ["oncall"]),
        "DebitwatchStreamTimeStalled/w1": ("active", [], ["oncall"]),
        "DebitwatchConsumerLagGrowing/terminal": (
            "suppressed",
            ["DebitwatchStreamTimeStalled"],
            ["case-system"],
        ),
        "DebitwatchWorkerDown/w2": ("active", [], ["case-system"]),
        # The down worker's own not-ready ticket is inhibited, another worker's is not.
        "DebitwatchNotReady/w2": ("suppressed", ["DebitwatchWorkerDown"], ["case-system"]),
        "DebitwatchNotReady/w3": ("active", [], ["case-system"]),
    }
    wait_for(
        "the posted alerts",
        lambda: alert_states(alertmanager),
        until=lambda states: states == expected,
    )

    # No worker up: everything else is a consequence and is held back.
    post_alerts(alertmanager, [alert("DebitwatchNoWorkerUp", "page")])
    states = wait_for(
        "DebitwatchNoWorkerUp to inhibit the rest",
        lambda: alert_states(alertmanager),
        until=lambda states: len(states) == len(expected) + 1,
    )
    assert states.pop("DebitwatchNoWorkerUp") == ("active", [], ["oncall"])
    for name, (state, inhibited_by, _) in states.items():
        assert state == "suppressed", name
        assert "DebitwatchNoWorkerUp" in inhibited_by, name


# -------------------------------------- a real Prometheus, real worker registries


@contextlib.contextmanager
def served_worker(
    exposure_minor: dict[str, int], data_dir: Path
) -> Iterator[tuple[int, WorkerMetrics]]:
    """A worker's registry (streams.metrics, the real one) on a free port, with one join
    partition whose stream time follows the wall clock, as the idle advance makes it."""
    metrics = WorkerMetrics(version="test", model_version="test")
    view = PartitionView(
        open_transactions=lambda: 2,
        oldest_open_us=lambda: None,
        stream_time_us=lambda: time.time_ns() // 1000,
        exposure=lambda: dict(exposure_minor),
        incidents_firing=lambda: {},
    )
    metrics.registry.register(
        StateCollector(lambda: {0: view}, data_dir=data_dir, lag=lambda: {"terminal": 3})
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield port, metrics
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def running_prometheus(config: Path, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """A real Prometheus with ``config``; yields a GET of its HTTP API (``/api/v1/...``)."""
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield lambda path: get_json(f"http://127.0.0.1:{port}/api/v1/{path}")
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_real_prometheus_scrapes_both_jobs_and_evaluates_the_rules(tmp_path: Path) -> None:
    config = yaml.safe_load(render_config(["localhost:0"], None, [RULES_FILE]))
    # Seconds instead of 15 s, so the test takes seconds.
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    # The DNS job as committed, but with a fixed target: there is no DNS server to ask
    # here, and what is under test is its relabelling to the workers' job label.
    [dns_job] = [job for job in load_config()["scrape_configs"] if "dns_sd_configs" in job]
    del dns_job["dns_sd_configs"]
    config["scrape_configs"].append(dns_job)
    path = tmp_path / "prometheus.yml"
    stop = threading.Event()
    with (
        served_worker({"INR": 1_500_000}, tmp_path) as (static_port, static_worker),
        served_worker({"INR": 250_050, "EUR": 99}, tmp_path) as (dns_port, _),
    ):
        config["scrape_configs"][0]["static_configs"] = [{"targets": [f"localhost:{static_port}"]}]
        dns_job["static_configs"] = [{"targets": [f"127.0.0.1:{dns_port}"]}]
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        assert run("promtool", "check", "config", str(path)).returncode == 0

        def sales() -> None:
            """10 sales a second on the static worker, every fifth a ghost debit."""
            for tick in itertools.count():
                if stop.wait(0.1):
                    return
                static_worker.count_events({("terminal", "request"): 1})
                if tick % 5 == 0:
                    static_worker.alerts.labels(
                        kind="unmatched_debit", status="firing", severity="high"
                    ).inc()

        traffic = threading.Thread(target=sales, daemon=True)
        traffic.start()
        try:
            with running_prometheus(path, tmp_path) as api:

                def query(expr: str) -> list[dict[str, Any]]:
                    answer = api("query?" + urllib.parse.urlencode({"query": expr}))
                    assert answer["status"] == "success", answer
                    result: list[dict[str, Any]] = answer["data"]["result"]
                    return result

                wait_for(
                    "both workers scraped", lambda: query("up == 1"), until=lambda r: len(r) == 2
                )
                # Both jobs label their series job="debitwatch"; none keeps the DNS job's name.
                assert {(r["metric"]["job"], r["metric"]["instance"]) for r in query("up")} == {
                    ("debitwatch", f"localhost:{static_port}"),
                    ("debitwatch", f"127.0.0.1:{dns_port}"),
                }

                # The first rounds may have run before both workers were scraped: wait
                # for the sums over both rather than take the first answer.
                def by_label(expr: str, label: str) -> dict[str, float]:
                    return {r["metric"][label]: float(r["value"][1]) for r in query(expr)}

                money = {"INR": 17500.5, "EUR": 0.99}
                wait_for(
                    f"money at risk summed over both workers: {money}",
                    lambda: by_label("debitwatch:money_at_risk:sum", "currency"),
                    until=lambda sums: sums == money,
                )
                lag = {"terminal": 6.0, "issuer": 0.0, "by_merchant": 0.0}
                wait_for(
                    f"lag summed over both workers: {lag}",
                    lambda: by_label("debitwatch:consumer_lag_messages:sum", "stream"),
                    until=lambda sums: sums == lag,
                )
                sources = wait_for("event rates", lambda: query("debitwatch:events:rate1m"))
                assert {r["metric"]["source"] for r in sources} == {"terminal", "issuer"}
                # One sale in five is a ghost debit; the ratio settles there once the
                # 5-minute window holds more than a few seconds of sales.
                wait_for(
                    "the ghost-debit ratio near 0.2",
                    lambda: query("debitwatch:ghost_debit_ratio:rate5m"),
                    until=lambda r: len(r) == 1 and 0.15 < float(r[0]["value"][1]) < 0.25,
                )

                def rule_health() -> dict[str, str]:
                    groups = api("rules")["data"]["groups"]
                    return {r["name"]: r["health"] for g in groups for r in g["rules"]}

                # Every rule ran on real series without an error (a typo in a function
                # or a many-to-many match only shows at evaluation time).
                wait_for(
                    "every rule evaluated", rule_health, until=lambda h: "unknown" not in h.values()
                )
                health = rule_health()
                assert len(health) == len(recording_rules()) + len(alert_rules())
                assert {name: h for name, h in health.items() if h != "ok"} == {}
                # Both workers up: neither worker alert is even pending.
                assert query('ALERTS{alertname=~"DebitwatchNoWorkerUp|DebitwatchWorkerDown"}') == []
        finally:
            stop.set()
            traffic.join(timeout=10)
