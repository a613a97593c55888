"""Copies of ``deploy/prometheus/prometheus.yml`` and ``deploy/alertmanager/alertmanager.yml``
for tests that run the real Prometheus and Alertmanager.

The committed files name the hosts of a docker-compose setup (``worker:6066``,
``alertmanager:9093``) and the rules by a path relative to the config file; a test runs
the binaries with workers on free local ports and the config in a temporary directory.
These helpers keep everything else (intervals, job names, relabelling, routing) as
committed, so the tests exercise the files that ship.

>>> text = render_config(["127.0.0.1:16066"], None, [RULES_FILE])
>>> config = yaml.safe_load(text)
>>> [job["job_name"] for job in config["scrape_configs"]]
['debitwatch']
>>> config["scrape_configs"][0]["static_configs"]
[{'targets': ['127.0.0.1:16066']}]
>>> "alerting" in config, config["rule_files"] == [str(RULES_FILE)]
(False, True)
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Final

# PyYAML comes with the dev dependencies (schemathesis) but has no type hints there.
yaml: Any = import_module("yaml")

ROOT: Final = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR: Final = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG: Final = PROMETHEUS_DIR / "prometheus.yml"
RULES_FILE: Final = PROMETHEUS_DIR / "rules" / "debitwatch.rules.yml"
RULE_TESTS_DIR: Final = PROMETHEUS_DIR / "tests"
ALERTMANAGER_CONFIG: Final = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

# The scrape job whose targets are a fixed list, and the label every worker series gets.
STATIC_JOB: Final = "debitwatch"


def load_config() -> dict[str, Any]:
    """The committed Prometheus config, parsed."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return config


def render_config(
    static_targets: list[str], alertmanager: str | None, rule_files: list[Path]
) -> str:
    """The committed Prometheus config with ``static_targets`` (``host:port``) as the
    static job's targets, the DNS service-discovery job dropped (tests have no DNS for
    the workers, and it would only log resolution errors), ``alertmanager``
    (``host:port``) as the only Alertmanager or no ``alerting`` section at all when None,
    and ``rule_files`` as absolute paths (Prometheus resolves relative ones against the
    config file's directory, which is a temporary one in a test)."""
    config = load_config()
    jobs = [job for job in config["scrape_configs"] if "dns_sd_configs" not in job]
    static = [job for job in jobs if job["job_name"] == STATIC_JOB]
    if len(static) != 1:
        raise ValueError(f"{PROMETHEUS_CONFIG}: no single {STATIC_JOB!r} job to fill in")
    static[0]["static_configs"] = [{"targets": list(static_targets)}]
    config["scrape_configs"] = jobs
    config["rule_files"] = [str(Path(path).resolve()) for path in rule_files]
    if alertmanager is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text


def render_alertmanager_config(page_url: str, ticket_url: str) -> str:
    """The committed Alertmanager config with the two receivers' placeholder URLs
    replaced: ``page_url`` for the on-call receiver, ``ticket_url`` for the case
    system's. Routing, grouping and inhibition stay as committed."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    urls = {"oncall": page_url, "case-system": ticket_url}
    for receiver in config["receivers"]:
        url = urls.get(receiver["name"])
        for webhook in receiver.get("webhook_configs", []):
            if url is None:
                raise ValueError(f"{ALERTMANAGER_CONFIG}: unexpected webhook receiver")
            webhook["url"] = url
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text
