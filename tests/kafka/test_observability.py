"""Workers, Prometheus and the project's own rules and dashboards, all real (issue 6).

Two runs side by side, each with its own topics, two stream workers and its own
Prometheus (Debian's ``/usr/bin/prometheus``) scraping them with the committed
``deploy/prometheus/prometheus.yml`` and ``rules/debitwatch.rules.yml``: only the
targets are substituted, and the scrape and rule evaluation intervals shortened from
15 s to 2 s so a run takes minutes (what the rules compute does not depend on them:
``rate()`` windows and ``for:`` durations are as committed).

* **storm** (``simulate --profile storm``, ~15 % of sales ghost debits): the
  ``DebitwatchGhostDebitRateHigh`` alert must fire. Then every PromQL expression of
  every panel of every committed Grafana dashboard and every recording rule must return
  data, and every rule must have evaluated without error.
* **normal** (benign traffic only), at the same pace for at least as long: the ghost
  debit alert must never be pending or firing, while its ratio is being recorded (and
  stays below 1 %).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cluster import settings_env
from streams.settings import Settings
from streams.topics import create_topics
from tests.deploy.grafana_dashboards import panel_queries
from tests.deploy.prometheus_config import RULES_FILE, render_config
from tests.kafka.conftest import free_port, unique_settings
from tests.kafka.pipeline import workers

GHOST_ALERT = "DebitwatchGhostDebitRateHigh"
INTERVAL = "2s"
# Event time runs 20x the wall clock: a window (5 min + 1 min grace) closes 18 s of wall
# time after its sale; 3 sales/s of event time are 60 sales/s at the workers.
SPEED, RATE, DURATION = 20, 3, 6000
STORM_TIMEOUT = 360.0
# Grafana's built-in variables, as Grafana would substitute them for a 1 h view at 2 s
# resolution (the dashboards' queries are checked as Grafana would send them).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "2s",
    "$__range": "1h",
    "${__rate_interval}": "1m",
    "${__interval}": "2s",
    "${__range}": "1h",
}


class Prometheus:
    """A real Prometheus on a free loopback port, scraping ``targets``."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed (Debian package: prometheus)")
        folder.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(render_config(targets, None, [RULES_FILE]))
        config["global"]["scrape_interval"] = INTERVAL
        config["global"]["evaluation_interval"] = INTERVAL
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.log = (folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"prometheus did not become ready; see {folder / 'prometheus.log'}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(self.url(f"/api/v1/{path}?{query}"), timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = (
            data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]
        )
        return result

    def alert_states(self, name: str) -> set[str]:
        return {
            a["state"] for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name
        }

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@contextmanager
def running(settings: Settings, folder: Path, profile: str, seed: int) -> Iterator[Prometheus]:
    """Topics, two workers, live simulated traffic and a Prometheus scraping the workers."""
    create_topics(settings)
    with ExitStack() as stack:
        started = stack.enter_context(workers(settings, folder / "logs", count=2))
        prometheus = Prometheus(
            folder / "prometheus", [f"127.0.0.1:{w.settings.web_port}" for w in started]
        )
        stack.callback(prometheus.stop)
        log = stack.enter_context((folder / "simulate.log").open("wb"))
        simulator = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "simulate", "--to-kafka",
             "--profile", profile, "--seed", str(seed), "--rate", str(RATE),
             "--duration", str(DURATION), "--speed", str(SPEED),
             "--no-final-watermarks", "--truth", str(folder / "truth.jsonl")],
            env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stack.callback(simulator.kill)
        yield prometheus
        assert simulator.poll() is None, f"the simulator stopped early: {folder / 'simulate.log'}"


def _returns_data(prometheus: Prometheus, expr: str) -> bool:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return bool(prometheus.query(expr))


def test_rules_and_dashboards_on_live_workers(kafka_bootstrap: str, tmp_path: Path) -> None:
    storm_settings = unique_settings(kafka_bootstrap, tmp_path / "storm", "storm")
    normal_settings = unique_settings(kafka_bootstrap, tmp_path / "normal", "normal")
    normal_states: list[set[str]] = []
    normal_ratio_seen: list[float] = []
    stop_watching = threading.Event()

    def watch_normal(prometheus: Prometheus) -> None:
        while not stop_watching.wait(2.0):
            try:
                states = prometheus.alert_states(GHOST_ALERT)
                ratios = prometheus.query("debitwatch:ghost_debit_ratio:rate5m")
            except OSError:
                return  # Prometheus stopped: the test is over (or failed elsewhere)
            normal_states.append(states)
            normal_ratio_seen.extend(float(sample["value"][1]) for sample in ratios)

    with (
        running(storm_settings, tmp_path / "storm", "storm", seed=11) as storm,
        running(normal_settings, tmp_path / "normal", "normal", seed=12) as normal,
    ):
        watcher = threading.Thread(target=watch_normal, args=(normal,), daemon=True)
        watcher.start()
        started = time.monotonic()
        while GHOST_ALERT not in {
            a["labels"]["alertname"]
            for a in storm.api("alerts")["alerts"]
            if a["state"] == "firing"
        }:
            assert time.monotonic() - started < STORM_TIMEOUT, (
                f"{GHOST_ALERT} did not fire under the storm profile in {STORM_TIMEOUT:.0f} s; "
                f"ratio: {storm.query('debitwatch:ghost_debit_ratio:rate5m')}"
            )
            time.sleep(2)
        fired_after = time.monotonic() - started
        print(f"{GHOST_ALERT} fired {fired_after:.0f} s after the storm traffic started")
        ratio = float(storm.query("debitwatch:ghost_debit_ratio:rate5m")[0]["value"][1])
        assert ratio > 0.05

        # Every dashboard panel's query and every recording rule has data by now.
        empty = [
            f"{uid} / {title}: {expr}"
            for uid, title, expr in panel_queries()
            if not _returns_data(storm, expr)
        ]
        assert not empty, "panel queries with no data:\n" + "\n".join(empty)
        rules = storm.rules()
        recording = [r for r in rules if r["type"] == "recording"]
        alerting = [r for r in rules if r["type"] == "alerting"]
        assert recording and alerting
        no_data = [r["name"] for r in recording if not storm.query(r["name"])]
        assert not no_data, f"recording rules with no data: {no_data}"
        broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not broken, f"rules that did not evaluate: {broken}"

        # The normal run: as long again as the storm needed, at least two more minutes.
        while time.monotonic() - started < max(2 * fired_after, fired_after + 120):
            time.sleep(2)
        stop_watching.set()
        watcher.join(timeout=30)
        normal_broken = [
            (r["name"], r.get("lastError")) for r in normal.rules() if r["health"] != "ok"
        ]
        assert not normal_broken, normal_broken
    assert len(normal_states) > 30
    assert not any(states & {"pending", "firing"} for states in normal_states), normal_states
    # Recorded all along, and below the alert's 5 % floor at every evaluation. Not 0: the
    # normal profile's benign timeouts fire unmatched_debit until their reversal comes,
    # and in the first minutes the 5-minute rate has few sales under it (live runs peaked
    # at 0.03 % and, once in CI, at 1.1 %; a storm is at 15 %).
    assert normal_ratio_seen and max(normal_ratio_seen) < 0.05, max(normal_ratio_seen)
    print(f"normal profile: ghost-debit ratio at most {max(normal_ratio_seen):.4%}")
