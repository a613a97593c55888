"""Webhook endpoints (streams/webhooks/config.py): the TOML file, the environment, the errors."""

from __future__ import annotations

import base64
import doctest
from pathlib import Path

import pytest

from models.alerts import Kind, Severity, Status
from models.config import ConfigError
from streams.settings import Settings
from streams.webhooks import config
from streams.webhooks.config import (
    ENV_VARS,
    changelog_topic,
    dlq_topic,
    load_endpoints,
)
from tests.streams.webhook_alerts import make_alert

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()

TOML = """
[detection]
grace = "60s"

[[webhooks]]
name = "cases"
url = "https://cases.example.com/hooks/debitwatch"
secret_env = "CASES_SECRET"
kinds = ["unmatched_debit", "reversal_not_applied"]
min_severity = "high"
statuses = ["firing"]
timeout = "5s"
max_age = "2d"
backoff_initial = "1s"
backoff_max = "30m"
concurrency = 8

[[webhooks]]
name = "chat"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
secret_file = "{secret_file}"
format = "slack"
revision = 2
"""


def write_config(tmp_path: Path) -> Path:
    secret_file = tmp_path / "chat.secret"
    secret_file.write_text(OTHER + "\n")
    path = tmp_path / "debitwatch.toml"
    path.write_text(TOML.format(secret_file=secret_file))
    return path


def test_endpoints_from_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    cases, chat = load_endpoints({"DEBITWATCH_CONFIG": str(path), "CASES_SECRET": SECRET})
    assert (cases.name, cases.format, cases.secret) == ("cases", "alert", SECRET)
    assert cases.kinds == {Kind.UNMATCHED_DEBIT, Kind.REVERSAL_NOT_APPLIED}
    assert cases.min_severity is Severity.HIGH and cases.statuses == {Status.FIRING}
    assert (cases.timeout, cases.concurrency) == (5.0, 8)
    assert (cases.retry.initial, cases.retry.cap, cases.retry.max_age) == (1.0, 1800.0, 172800.0)
    # Defaults: every kind, status and severity; the alert format; 10 s; 3 days.
    assert (chat.format, chat.secret, chat.revision) == ("slack", OTHER, 2)
    assert chat.kinds == set(Kind) and chat.statuses == set(Status)
    assert chat.min_severity is Severity.LOW
    assert (chat.timeout, chat.retry.max_age, chat.retry.cap) == (10.0, 259200.0, 3600.0)


def test_a_separate_webhooks_file_wins_over_the_main_config(tmp_path: Path) -> None:
    own = tmp_path / "webhooks.toml"
    own.write_text('[[webhooks]]\nname = "only"\nurl = "http://127.0.0.1:9/"\nsecret_env = "S"\n')
    main = write_config(tmp_path)
    (endpoint,) = load_endpoints(
        {"DEBITWATCH_WEBHOOKS_CONFIG": str(own), "DEBITWATCH_CONFIG": str(main), "S": SECRET}
    )
    assert endpoint.name == "only"


def test_the_environment_shortcut_adds_one_endpoint(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    env = {
        "DEBITWATCH_WEBHOOK_URL": "http://receiver:8080/",
        "DEBITWATCH_WEBHOOK_SECRET_FILE": str(secret_file),
        "DEBITWATCH_WEBHOOK_STATUSES": "firing",
        "DEBITWATCH_WEBHOOK_MIN_SEVERITY": "medium",
        "DEBITWATCH_WEBHOOK_BACKOFF_INITIAL": "200ms",
        "DEBITWATCH_WEBHOOK_BACKOFF_MAX": "2s",
        "DEBITWATCH_WEBHOOK_MAX_AGE": "1s",
        "DEBITWATCH_WEBHOOK_FORMAT": "slack",
    }
    (endpoint,) = load_endpoints(env)
    assert (endpoint.name, endpoint.url, endpoint.format) == (
        "default",
        "http://receiver:8080/",
        "slack",
    )
    assert endpoint.statuses == {Status.FIRING} and endpoint.min_severity is Severity.MEDIUM
    assert (endpoint.retry.initial, endpoint.retry.cap, endpoint.retry.max_age) == (0.2, 2.0, 1.0)
    assert all(name.startswith("DEBITWATCH_") for name in ENV_VARS)
    assert {
        "DEBITWATCH_WEBHOOK_URL",
        "DEBITWATCH_WEBHOOK_SECRET",
        "DEBITWATCH_WEBHOOK_MAX_AGE",
    } <= set(ENV_VARS)


def test_no_endpoint_configured_is_no_endpoint() -> None:
    assert load_endpoints({}) == []


def test_filters() -> None:
    (endpoint,) = load_endpoints(
        {"DEBITWATCH_WEBHOOK_URL": "http://r/", "DEBITWATCH_WEBHOOK_SECRET": SECRET,
         "DEBITWATCH_WEBHOOK_KINDS": "unmatched_debit,duplicate_debit",
         "DEBITWATCH_WEBHOOK_MIN_SEVERITY": "high", "DEBITWATCH_WEBHOOK_STATUSES": "resolved"}
    )  # fmt: skip
    wanted = make_alert(status=Status.RESOLVED, severity=Severity.HIGH)
    assert endpoint.accepts(wanted)
    assert endpoint.accepts(make_alert(status=Status.RESOLVED, severity=Severity.CRITICAL))
    assert not endpoint.accepts(make_alert(status=Status.RESOLVED, severity=Severity.MEDIUM))
    assert not endpoint.accepts(make_alert(status=Status.FIRING, severity=Severity.HIGH))
    assert not endpoint.accepts(
        make_alert(status=Status.RESOLVED, severity=Severity.HIGH, kind=Kind.AMOUNT_MISMATCH)
    )


def test_topic_names_follow_the_app_id() -> None:
    settings = Settings(app_id="dw-x")
    assert dlq_topic(settings, {}) == "dw-x.webhooks.dlq"
    assert dlq_topic(Settings(), {}) == "debitwatch.webhooks.dlq"
    assert dlq_topic(settings, {"DEBITWATCH_WEBHOOK_DLQ_TOPIC": "ops.hooks.dlq"}) == "ops.hooks.dlq"
    assert changelog_topic(settings) == "dw-x-webhooks-changelog"


def test_the_fingerprint_changes_with_url_or_revision() -> None:
    def endpoint(url: str, revision: str) -> str:
        (e,) = load_endpoints(
            {"DEBITWATCH_WEBHOOK_URL": url, "DEBITWATCH_WEBHOOK_SECRET": SECRET,
             "DEBITWATCH_WEBHOOK_REVISION": revision}
        )  # fmt: skip
        return e.fingerprint

    assert endpoint("http://a/", "0") == endpoint("http://a/", "0")
    assert endpoint("http://a/", "0") != endpoint("http://b/", "0")
    assert endpoint("http://a/", "0") != endpoint("http://a/", "1")


def _table(**values: object) -> str:
    lines = ["[[webhooks]]"]
    for key, value in values.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


BASE: dict[str, object] = {"name": "x", "url": "http://r/", "secret_env": "S"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "has space"}, "name 'has space' must be"),
        ({"url": "ftp://r/"}, "url must be an http:// or https:// URL"),
        ({"url": "http://user:pw@r/"}, "must not carry a user or password"),
        ({"secret": "whsec_abc"}, "'secret' is not read from a file"),
        ({"secret_env": "UNSET"}, "environment variable UNSET is unset or empty"),
        ({"secret_file": "/nonexistent/secret"}, "give exactly one of secret_env and secret_file"),
        ({"kinds": ["ghost_debit"]}, "kinds: unknown value 'ghost_debit'"),
        ({"kinds": []}, "kinds must be a non-empty list"),
        ({"statuses": ["open"]}, "statuses: unknown value 'open'"),
        ({"min_severity": "urgent"}, "min_severity: unknown value 'urgent'"),
        ({"format": "teams"}, "format must be one of alert, slack"),
        ({"timeout": "soon"}, "expected a duration"),
        ({"timeout": 0}, "timeout must be > 0"),
        # A worker handing a partition over waits timeout + 5 s for its attempts: above
        # 30 s that nears the rebalance timeout, and two workers would post the same state.
        ({"timeout": "31s"}, "timeout must be > 0 and at most 30 s"),
        ({"max_age": "0s"}, "max_age must be a finite number of seconds > 0"),
        ({"max_age": "8d"}, "max_age must be at most 7 days"),
        (
            {"backoff_initial": "10m", "backoff_max": "1m"},
            "backoff_max (60 s) is below backoff_initial (600 s)",
        ),
        ({"concurrency": 0}, "concurrency must be an integer >= 1"),
        ({"retries": 5}, "unknown key(s) retries"),
    ],
)
def test_config_errors_say_which_endpoint_and_key(
    tmp_path: Path, override: dict[str, object], message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_table(**(BASE | override)))
    with pytest.raises(ConfigError) as raised:
        load_endpoints({"DEBITWATCH_CONFIG": str(path), "S": SECRET})
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_the_longest_timeout_and_horizon_allowed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_table(**(BASE | {"timeout": "30s", "max_age": "7d"})))
    (endpoint,) = load_endpoints({"DEBITWATCH_CONFIG": str(path), "S": SECRET})
    assert (endpoint.timeout, endpoint.retry.max_age) == (30.0, 7 * 86400.0)


def test_the_module_examples_run() -> None:
    assert doctest.testmod(config).failed == 0


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_table(name="x", url="http://r/", secret_file=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="cannot read secret_file"):
        load_endpoints({"DEBITWATCH_CONFIG": str(path)})


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("not-a-whsec", "must be 'whsec_' followed by base64"),
        ("whsec_%%%%", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "must decode to 24-64 bytes"),
    ],
)
def test_bad_secrets_are_refused_without_being_echoed(secret: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_endpoints({"DEBITWATCH_WEBHOOK_URL": "http://r/", "DEBITWATCH_WEBHOOK_SECRET": secret})
    assert message in str(raised.value)
    assert secret not in str(raised.value)


def test_names_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(_table(**BASE) + _table(**BASE))
    with pytest.raises(ConfigError, match="name 'x' is used twice"):
        load_endpoints({"DEBITWATCH_CONFIG": str(path), "S": SECRET})


def test_webhooks_must_be_an_array_of_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('webhooks = "http://r/"\n')
    with pytest.raises(ConfigError, match=r"array of tables \(\[\[webhooks\]\]\)"):
        load_endpoints({"DEBITWATCH_CONFIG": str(path)})
