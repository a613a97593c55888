"""Generate debitwatch's Grafana dashboards (``deploy/grafana/dashboards/*.json``).

The dashboards are written here as plain Python dicts rather than edited by hand in
Grafana: a panel is a few lines (title, unit, PromQL), the layout is computed so panels
never overlap, and a review shows the PromQL instead of hundreds of lines of JSON. The
JSON files are committed because Grafana's file provisioning loads them as they are
(``deploy/grafana/provisioning/dashboards/debitwatch.yml``); ``--check`` keeps them equal
to this file. See ``docs/dashboards.md``.

Run from anywhere (paths are relative to this file)::

    .venv/bin/python deploy/grafana/build_dashboards.py          # (re)write the JSON files
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if they are stale

Every expression uses the workers' raw metrics (``streams/metrics.py``), not recording
rules, so a dashboard works on a Prometheus without debitwatch's rules loaded.
``tests/deploy/test_grafana_dashboards.py`` runs each one against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

Panel = dict[str, Any]
Dashboard = dict[str, Any]

DASHBOARD_DIR: Final = Path(__file__).resolve().parent / "dashboards"
# The datasource provisioned in provisioning/datasources/prometheus.yml: a fixed uid, so
# the dashboards need no datasource variable and no manual choice after loading.
DATASOURCE: Final = {"type": "prometheus", "uid": "debitwatch-prometheus"}
SCHEMA_VERSION: Final = 39  # Grafana 10.4 / 11.0
GRID_WIDTH: Final = 24  # Grafana's grid is 24 columns wide
# The scrape job of the workers (deploy/prometheus/prometheus.yml). Only `up` needs it:
# every debitwatch_* series is the workers' own, whatever the job is called.
JOB: Final = "debitwatch"
RATE: Final = "$__rate_interval"  # Grafana: at least 4 scrape intervals, follows the zoom
RANGE: Final = "$__range"  # Grafana: the dashboard's whole time range
ID_NOTE: Final = (
    " Prometheus never sees terminal, merchant or card ids (bounded labels only, by design),"
    " so per-terminal and per-merchant rankings come from the alerts themselves: the HTTP API"
    " or `debitwatch alerts export` (docs/cli.md)."
)


# ------------------------------------------------------------------ targets


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "") -> dict[str, Any]:
    """One PromQL query of a panel; ``refId`` is filled in by the panel."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "format": fmt or ("table" if instant else "time_series"),
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
    }


def quantiles(bucket: str, by: str = "", qs: Sequence[float] = (0.5, 0.95, 0.99)) -> list[Any]:
    """``histogram_quantile`` targets over all workers' buckets, one per quantile."""
    labels = f"{by}, le" if by else "le"
    return [
        target(
            f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}[{RATE}])))",
            f"p{round(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in qs
    ]


# ------------------------------------------------------------------- panels


def _panel(kind: str, title: str, description: str, unit: str, targets: list[Any]) -> Panel:
    refs = "ABCDEFGHIJ"
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{**t, "refId": refs[i]} for i, t in enumerate(targets)],
        "title": title,
        "type": kind,
    }


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


NEUTRAL: Final = _thresholds((None, "blue"))
ZERO_IS_BAD: Final = _thresholds((None, "red"), (1, "green"))
ZERO_IS_GOOD: Final = _thresholds((None, "green"), (1, "red"))


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: list[Any],
    *,
    stack: bool = False,
    max_value: float | None = None,
) -> Panel:
    panel = _panel("timeseries", title, description, unit, targets)
    defaults = panel["fieldConfig"]["defaults"]
    defaults.update(
        color={"mode": "palette-classic"},
        custom={
            "drawStyle": "line",
            "fillOpacity": 20 if stack else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        },
        min=0,
        thresholds=NEUTRAL,
    )
    if max_value is not None:
        defaults["max"] = max_value
    panel["options"] = {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel


def stat(
    title: str,
    description: str,
    unit: str,
    expr: str,
    *,
    thresholds: dict[str, Any] = NEUTRAL,
    decimals: int | None = None,
) -> Panel:
    """A single number: the last value of an instant query."""
    panel = _panel("stat", title, description, unit, [target(expr, title, instant=True)])
    defaults = panel["fieldConfig"]["defaults"]
    defaults.update(color={"mode": "thresholds"}, thresholds=thresholds)
    if decimals is not None:
        defaults["decimals"] = decimals
    panel["options"] = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": "value",
        "wideLayout": True,
    }
    return panel


def bargauge(title: str, description: str, unit: str, expr: str, legend: str) -> Panel:
    """One horizontal bar per series of an instant query (by currency, by kind ...)."""
    # time_series format: one frame per series, so the legend names each bar.
    panel = _panel(
        "bargauge",
        title,
        description,
        unit,
        [target(expr, legend, instant=True, fmt="time_series")],
    )
    panel["fieldConfig"]["defaults"].update(
        color={"mode": "palette-classic"}, min=0, thresholds=NEUTRAL
    )
    panel["options"] = {
        "displayMode": "gradient",
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }
    return panel


def table(
    title: str, description: str, unit: str, expr: str, value_name: str, sort_by: str = ""
) -> Panel:
    """An instant query as rows: one per series, its labels as columns."""
    panel = _panel("table", title, description, unit, [target(expr, instant=True)])
    panel["fieldConfig"]["defaults"].update(
        custom={"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
        thresholds=NEUTRAL,
    )
    panel["options"] = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
        "sortBy": [{"desc": True, "displayName": sort_by or value_name}],
    }
    panel["transformations"] = [
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "indexByName": {},
                "renameByName": {"Value": value_name},
            },
        }
    ]
    return panel


def heatmap(title: str, description: str, expr: str) -> Panel:
    """A histogram's buckets over time (Prometheus `le` buckets, not recalculated)."""
    panel = _panel("heatmap", title, description, "short", [target(expr, "{{le}}", fmt="heatmap")])
    panel["fieldConfig"]["defaults"]["custom"] = {
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "scaleDistribution": {"type": "linear"},
    }
    panel["options"] = {
        "calculate": False,
        "cellGap": 1,
        "color": {
            "exponent": 0.5,
            "fill": "dark-orange",
            "mode": "scheme",
            "reverse": False,
            "scale": "exponential",
            "scheme": "Oranges",
            "steps": 64,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto", "value": "assessments"},
        "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": "short"},
    }
    return panel


# ------------------------------------------------------------------- layout


def layout(rows: Sequence[tuple[int, Sequence[tuple[int, Panel]]]]) -> list[Panel]:
    """Place rows of ``(width, panel)`` top to bottom; give each panel its id.

    Each row is ``(height, panels)`` and fills at most the grid's 24 columns, so panels
    cannot overlap and the order in the file is the reading order.
    """
    placed: list[Panel] = []
    y = 0
    for height, panels in rows:
        x = 0
        for width, panel in panels:
            if x + width > GRID_WIDTH:
                raise ValueError(f"row at y={y} is wider than {GRID_WIDTH}: {panel['title']}")
            placed.append(
                {**panel, "gridPos": {"h": height, "w": width, "x": x, "y": y}}
                | {"id": len(placed) + 1}
            )
            x += width
        y += height
    return placed


def dashboard(uid: str, title: str, description: str, rows: Sequence[Any]) -> Dashboard:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        # Provisioned from git: edits in the UI would be lost at the next load.
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,  # shared crosshair: line up a lag spike with the alerts it delays
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "tags": ["debitwatch"],
                "targetBlank": False,
                "title": "debitwatch",
                "tooltip": "",
                "type": "dashboards",
                "url": "",
            }
        ],
        "panels": layout(rows),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["debitwatch"],
        "templating": {"list": []},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        # Alerts carry UTC times (CONTRACT §2); the dashboards show the same clock.
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --------------------------------------------------------------- dashboards

FIRED: Final = 'debitwatch_alerts_total{status="firing"}'
GHOST_FIRED: Final = 'debitwatch_alerts_total{kind="unmatched_debit",status="firing"}'
SALES: Final = 'debitwatch_events_total{source="terminal",type="request"}'
UP: Final = f'up{{job="{JOB}"}}'


def overview() -> Dashboard:
    return dashboard(
        "debitwatch-overview",
        "debitwatch — overview",
        "Is debitwatch keeping up, and what is it finding: traffic, alerts, money at risk, "
        "detection latency.",
        [
            (4, [
                (4, stat(
                    "Workers up",
                    f"Workers Prometheus scraped successfully (`up` of the `{JOB}` job).",
                    "short", f"sum({UP})", thresholds=ZERO_IS_BAD,
                )),
                (4, stat(
                    "Workers down",
                    "Scrape targets of the workers that did not answer the last scrape.",
                    "short", f"count({UP} == 0) or vector(0)", thresholds=ZERO_IS_GOOD,
                )),
                (4, stat(
                    "Ghost debits per terminal sale",
                    "unmatched_debit alerts fired over the time range, divided by the terminal "
                    "sale requests ingested in it (no data without sales). Over a whole range, "
                    "so the ~6 minutes between a sale and its alert do not distort it.",
                    "percentunit",
                    f"sum(increase({GHOST_FIRED}[{RANGE}]))"
                    f" / (sum(increase({SALES}[{RANGE}])) > 0)",
                    thresholds=_thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
                    decimals=2,
                )),
                (4, stat(
                    "Alerts fired",
                    "Firing alert publications over the time range, every kind (escalations "
                    "past the regulatory deadline included).",
                    "short", f"sum(increase({FIRED}[{RANGE}]))", decimals=0,
                )),
                (4, stat(
                    "Open transactions",
                    "Transactions whose window has not closed yet, all partitions.",
                    "short", "sum(debitwatch_open_transactions)",
                )),
                (4, stat(
                    "Stream time lag (worst partition)",
                    "Wall clock minus stream time on the most behind partition. Verdicts wait "
                    "for stream time, so alerts are at least this late.",
                    "s", "max(debitwatch_stream_time_lag_seconds)",
                    thresholds=_thresholds((None, "green"), (600, "orange"), (1800, "red")),
                )),
            ]),
            (8, [
                (12, timeseries(
                    "Events ingested per second by source",
                    "Valid input events taken in by ingest (rejected ones are on the pipeline "
                    "dashboard), terminal and issuer side, watermarks included.",
                    "ops",
                    [target(f"sum by (source) (rate(debitwatch_events_total[{RATE}]))",
                            "{{source}}")],
                )),
                (12, timeseries(
                    "Alerts fired per second by kind",
                    "Firing alert publications by kind (escalations included). unmatched_debit "
                    "is the ghost debit: the terminal said failed, the bank took the money.",
                    "ops",
                    [target(f"sum by (kind) (rate({FIRED}[{RATE}]))", "{{kind}}")],
                    stack=True,
                )),
            ]),
            (8, [
                (8, bargauge(
                    "Money at risk now by currency (major units)",
                    "Cardholders' money lost or blocked by the alerts firing now, in each "
                    "currency's major unit (rupees for INR), summed over partitions.",
                    "short", "sum by (currency) (debitwatch_money_at_risk)", "{{currency}}",
                )),
                (8, bargauge(
                    "Money detected over the time range by currency (major units)",
                    "At-risk amounts of the alerts fired in the time range (first firing only, "
                    "not escalations), in each currency's major unit.",
                    "short",
                    f"sum by (currency) (increase(debitwatch_money_detected_total[{RANGE}]))",
                    "{{currency}}",
                )),
                (8, timeseries(
                    "Money at risk by currency (major units)",
                    "The same exposure over time: it falls when alerts resolve.",
                    "short",
                    [target("sum by (currency) (debitwatch_money_at_risk)", "{{currency}}")],
                )),
            ]),
            (8, [
                (12, timeseries(
                    "Detection latency, sale to alert",
                    "From a sale's transmitted_at to its first alert being published (wall "
                    "clock), all kinds: the window (5 min + 1 min grace by default) plus the "
                    "stream's lag.",
                    "s",
                    quantiles("debitwatch_detection_latency_seconds_bucket"),
                )),
                (12, timeseries(
                    "Detection latency p95 by kind",
                    "95th percentile of sale-to-alert latency per alert kind.",
                    "s",
                    quantiles("debitwatch_detection_latency_seconds_bucket", "kind", (0.95,)),
                )),
            ]),
            (8, [
                (8, timeseries(
                    "Consumer lag by stream (messages)",
                    "Messages not yet read by the workers, per input stream: the two input "
                    "topics and the re-keyed by_merchant topic.",
                    "short",
                    [target("sum by (stream) (debitwatch_consumer_lag_messages)", "{{stream}}")],
                )),
                (8, timeseries(
                    "Stream time lag by partition",
                    "Wall clock minus stream time per join partition. It grows while a feed is "
                    "stalled (no events, no watermarks) or the workers fall behind.",
                    "s",
                    [target("max by (partition) (debitwatch_stream_time_lag_seconds)",
                            "partition {{partition}}")],
                )),
                (8, timeseries(
                    "Open transactions, total and by worker",
                    "Transactions waiting for their window to close, in total and per worker.",
                    "short",
                    [
                        target("sum(debitwatch_open_transactions)", "all"),
                        target("sum by (instance) (debitwatch_open_transactions)",
                               "{{instance}}"),
                    ],
                )),
            ]),
            (7, [
                (12, timeseries(
                    "Workers up and ready",
                    "Scraped workers, and those whose assigned partitions' state is restored "
                    "(what /readyz says).",
                    "short",
                    [
                        target(f"sum({UP})", "up"),
                        target("sum(debitwatch_ready)", "ready"),
                    ],
                )),
                (12, table(
                    "Versions running",
                    "One row per worker: the debitwatch version and the incident model it "
                    "loaded. Two versions side by side mean a rollout in progress.",
                    "short",
                    "max by (instance, version, model_version) (debitwatch_build_info)",
                    "workers", sort_by="instance",
                )),
            ]),
        ],
    )  # fmt: skip


def terminals() -> Dashboard:
    incident = 'debitwatch_alerts_total{kind="terminal_incident"}'
    return dashboard(
        "debitwatch-terminals",
        "debitwatch — terminals and merchants",
        "Incidents (a terminal's or a merchant's traffic going wrong as a whole), the incident "
        "model's scores, and which kinds and severities of alerts dominate." + ID_NOTE,
        [
            (4, [
                (6, stat(
                    "Terminal incidents firing",
                    "Terminals whose recent traffic the incident model flags now.",
                    "short", 'sum(debitwatch_incidents_firing{scope="terminal"})',
                    thresholds=ZERO_IS_GOOD,
                )),
                (6, stat(
                    "Merchant incidents firing",
                    "Merchants whose recent traffic the incident model flags now.",
                    "short", 'sum(debitwatch_incidents_firing{scope="merchant"})',
                    thresholds=ZERO_IS_GOOD,
                )),
                (6, stat(
                    "Incident alerts fired",
                    "terminal_incident alerts fired over the time range.",
                    "short",
                    f'sum(increase(debitwatch_alerts_total{{kind="terminal_incident",'
                    f'status="firing"}}[{RANGE}]))',
                    decimals=0,
                )),
                (6, stat(
                    "Ghost debits fired",
                    "unmatched_debit alerts fired over the time range." + ID_NOTE,
                    "short", f"sum(increase({GHOST_FIRED}[{RANGE}]))", decimals=0,
                )),
            ]),
            (8, [
                (12, timeseries(
                    "Incidents firing by scope",
                    "Terminal and merchant incidents firing, over time.",
                    "short",
                    [target("sum by (scope) (debitwatch_incidents_firing)", "{{scope}}")],
                )),
                (12, timeseries(
                    "Incident alerts per second by status and severity",
                    "terminal_incident alert publications: firing and resolved, by severity.",
                    "ops",
                    [target(f"sum by (status, severity) (rate({incident}[{RATE}]))",
                            "{{status}} {{severity}}")],
                )),
            ]),
            (9, [
                (12, heatmap(
                    "Incident score distribution",
                    "How many terminal and merchant assessments fell in each score bucket per "
                    "interval (one score per terminal or merchant every 15 s; scores in "
                    "[0, 1], higher = more abnormal).",
                    f"sum by (le) (increase(debitwatch_incident_score_bucket[{RATE}]))",
                )),
                (12, timeseries(
                    "Incident score quantiles",
                    "Median and tail of the model's scores. A rising p50 means the whole "
                    "fleet looks unusual (a model to retrain, or a wide outage).",
                    "short",
                    quantiles("debitwatch_incident_score_bucket", qs=(0.5, 0.9, 0.99)),
                    max_value=1,
                )),
            ]),
            (9, [
                (8, bargauge(
                    "Alerts fired by kind over the time range",
                    "Firing alert publications per kind over the time range." + ID_NOTE,
                    "short",
                    f"sort_desc(sum by (kind) (increase({FIRED}[{RANGE}])))", "{{kind}}",
                )),
                (8, bargauge(
                    "Alerts fired by severity over the time range",
                    "Firing alert publications per severity over the time range." + ID_NOTE,
                    "short",
                    f"sort_desc(sum by (severity) (increase({FIRED}[{RANGE}])))",
                    "{{severity}}",
                )),
                (8, table(
                    "Top kinds and severities over the time range",
                    "The ten kind and severity pairs with the most firing alerts." + ID_NOTE,
                    "short",
                    f"topk(10, sum by (kind, severity) (increase({FIRED}[{RANGE}])))",
                    "alerts fired",
                )),
            ]),
            (8, [
                (12, timeseries(
                    "Critical and high alerts per second by kind",
                    "Firing alert publications of severity critical or high.",
                    "ops",
                    [target('sum by (kind) (rate(debitwatch_alerts_total{status="firing",'
                            f'severity=~"critical|high"}}[{RATE}]))', "{{kind}}")],
                    stack=True,
                )),
                (12, timeseries(
                    "Resolutions per second by kind",
                    "Alerts resolved (the issuer reversed or refunded, the late side arrived, "
                    "an incident ended).",
                    "ops",
                    [target('sum by (kind) (rate(debitwatch_alerts_total{status="resolved"}'
                            f"[{RATE}]))", "{{kind}}")],
                    stack=True,
                )),
            ]),
        ],
    )  # fmt: skip


def pipeline() -> Dashboard:
    return dashboard(
        "debitwatch-pipeline",
        "debitwatch — pipeline health",
        "The stream workers themselves: rebalances and state recovery, the join's speed, "
        "rejected and late input, state size, and webhook delivery.",
        [
            (4, [
                (4, stat(
                    "Workers ready",
                    "Workers whose assigned partitions' state is fully restored.",
                    "short", "sum(debitwatch_ready)", thresholds=ZERO_IS_BAD,
                )),
                (4, stat(
                    "Rebalances",
                    "Partition assignments received by all workers over the time range.",
                    "short", f"sum(increase(debitwatch_rebalances_total[{RANGE}]))", decimals=0,
                )),
                (4, stat(
                    "Last recovery (slowest worker)",
                    "How long the last restore of partitions' state took, on the slowest worker.",
                    "s", "max(debitwatch_last_recovery_duration_seconds)",
                    thresholds=_thresholds((None, "green"), (60, "orange"), (300, "red")),
                )),
                (4, stat(
                    "States recovered",
                    "Transaction and incident states restored from the changelog over the "
                    "time range.",
                    "short", f"sum(increase(debitwatch_recovered_states_total[{RANGE}]))",
                    decimals=0,
                )),
                (4, stat(
                    "Webhooks pending",
                    "Webhook deliveries waiting for a (re)try, all workers.",
                    "short", "sum(debitwatch_webhook_pending_deliveries)",
                )),
                (4, stat(
                    "Webhook endpoints disabled",
                    "Endpoints a receiver turned off with HTTP 410 Gone (the worker with the "
                    "most). They get no alerts until re-enabled.",
                    "short", "max(debitwatch_webhook_endpoints_disabled)",
                    thresholds=ZERO_IS_GOOD,
                )),
            ]),
            (8, [
                (8, timeseries(
                    "Ready by worker",
                    "1 when every partition assigned to the worker is restored (/readyz).",
                    "short", [target("max by (instance) (debitwatch_ready)", "{{instance}}")],
                    max_value=1,
                )),
                (8, timeseries(
                    "Rebalances by worker",
                    "Partition assignments received per interval. Bursts mean workers joining, "
                    "leaving or missing their session timeout.",
                    "short",
                    [target(f"sum by (instance) (increase(debitwatch_rebalances_total[{RATE}]))",
                            "{{instance}}")],
                )),
                (8, timeseries(
                    "Last recovery duration by worker",
                    "How long each worker's last state restore took.",
                    "s",
                    [target("max by (instance) (debitwatch_last_recovery_duration_seconds)",
                            "{{instance}}")],
                )),
            ]),
            (8, [
                (8, timeseries(
                    "Join batch duration",
                    "Time the join takes for one batch (core, alerts, state writes), all "
                    "workers.",
                    "s", quantiles("debitwatch_batch_duration_seconds_bucket"),
                )),
                (8, timeseries(
                    "Join messages per second by worker",
                    "Messages of the re-keyed topic processed by the join (events and "
                    "watermark copies).",
                    "ops",
                    [target(f"sum by (instance) (rate(debitwatch_join_messages_total[{RATE}]))",
                            "{{instance}}")],
                    stack=True,
                )),
                (8, timeseries(
                    "States recovered by worker",
                    "Transaction and incident states restored per interval.",
                    "short",
                    [target("sum by (instance) "
                            f"(increase(debitwatch_recovered_states_total[{RATE}]))",
                            "{{instance}}")],
                )),
            ]),
            (8, [
                (8, timeseries(
                    "Dead-lettered input per second by reason",
                    "Input messages refused and written to the DLQ topic, by reason "
                    "(docs/input.md).",
                    "ops",
                    [target("sum by (reason) "
                            f"(rate(debitwatch_rejected_events_total[{RATE}]))", "{{reason}}")],
                    stack=True,
                )),
                (8, timeseries(
                    "Late and duplicate events per second",
                    "Late: applied after their transaction's window had closed. Duplicate: a "
                    "redelivered event_id, ignored.",
                    "ops",
                    [
                        target(f"sum(rate(debitwatch_late_events_total[{RATE}]))", "late"),
                        target(f"sum(rate(debitwatch_duplicate_events_total[{RATE}]))",
                               "duplicate"),
                    ],
                )),
                (8, timeseries(
                    "State store size by worker",
                    "Bytes on disk of each worker's RocksDB state stores.",
                    "bytes",
                    [target("sum by (instance) (debitwatch_state_store_bytes)", "{{instance}}")],
                )),
            ]),
            (8, [
                (8, timeseries(
                    "Oldest open window age by partition",
                    "Stream time minus the sale time of the oldest open transaction. Above "
                    "window + grace, windows are not closing.",
                    "s",
                    [target("max by (partition) (debitwatch_oldest_open_window_age_seconds)",
                            "partition {{partition}}")],
                )),
                (8, timeseries(
                    "Open transactions by partition",
                    "Transactions waiting for their window to close, per join partition.",
                    "short",
                    [target("sum by (partition) (debitwatch_open_transactions)",
                            "partition {{partition}}")],
                )),
                (8, timeseries(
                    "Consumer lag by stream and worker (messages)",
                    "Messages not yet read from each worker's assigned partitions.",
                    "short",
                    [target("sum by (stream, instance) (debitwatch_consumer_lag_messages)",
                            "{{stream}} {{instance}}")],
                )),
            ]),
            (8, [
                (8, timeseries(
                    "Webhook deliveries per second by outcome",
                    "Delivery attempts and decisions: delivered, retried, dead_lettered, "
                    "disabled (endpoint gone), filtered (docs/webhooks.md).",
                    "ops",
                    [target("sum by (outcome) "
                            f"(rate(debitwatch_webhook_deliveries_total[{RATE}]))",
                            "{{outcome}}")],
                    stack=True,
                )),
                (8, timeseries(
                    "Webhook attempt latency",
                    "Time of one webhook HTTP attempt until the receiver answered or it "
                    "failed, all workers.",
                    "s",
                    quantiles("debitwatch_webhook_delivery_duration_seconds_bucket",
                              qs=(0.5, 0.95)),
                )),
                (8, timeseries(
                    "Webhooks pending and endpoints disabled",
                    "Deliveries waiting for a (re)try, and endpoints disabled by HTTP 410.",
                    "short",
                    [
                        target("sum(debitwatch_webhook_pending_deliveries)", "pending"),
                        target("max(debitwatch_webhook_endpoints_disabled)", "disabled"),
                    ],
                )),
            ]),
        ],
    )  # fmt: skip


DASHBOARDS: Final = {
    "overview.json": overview,
    "terminals.json": terminals,
    "pipeline.json": pipeline,
}


def render(board: Dashboard) -> str:
    """The file's exact text: sorted keys (as Grafana exports them), two-space indent."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed dashboard differs from the generated one",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DASHBOARD_DIR,
        help=f"the dashboards' directory (default: {DASHBOARD_DIR})",
    )
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, build in DASHBOARDS.items():
        path = args.dir / name
        text = render(build())
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            args.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"stale dashboards in {args.dir}: {', '.join(stale)}; "
            "run .venv/bin/python deploy/grafana/build_dashboards.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
