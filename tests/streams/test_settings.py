"""Stream settings: defaults < TOML [kafka]/[detection] < DEBITWATCH_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.config import ConfigError
from streams.cluster import settings_env
from streams.settings import Settings


def test_defaults_are_the_contract_topics() -> None:
    settings = Settings.from_env({})
    assert (settings.terminal_topic, settings.issuer_topic) == (
        "pos.terminal.events", "bank.issuer.events",
    )  # fmt: skip
    assert (settings.alerts_topic, settings.dlq_topic) == ("debitwatch.alerts", "debitwatch.dlq")
    assert settings.broker == "kafka://127.0.0.1:9092"
    assert settings.processing_guarantee == "at_least_once"
    assert settings.store == "rocksdb"


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "debitwatch.toml"
    path.write_text(
        '[kafka]\npartitions = 8\nstore = "memory"\napp_id = "from-file"\n'
        '[detection]\nmatch_window = "10m"\ngrace = "30s"\n'
    )
    settings = Settings.from_env(
        {"DEBITWATCH_CONFIG": str(path), "DEBITWATCH_APP_ID": "from-env",
         "DEBITWATCH_GRACE": "90s", "DEBITWATCH_BATCH_WITHIN": "20ms",
         "DEBITWATCH_FETCH_MAX_WAIT": "200ms"},
    )  # fmt: skip
    assert (settings.partitions, settings.store, settings.app_id) == (8, "memory", "from-env")
    assert (settings.detection.match_window, settings.detection.grace) == (600.0, 90.0)
    assert settings.batch_within == pytest.approx(0.02)
    assert settings.fetch_max_wait == pytest.approx(0.2)
    assert settings.repartition_topic == "from-env-events-by-merchant"
    assert settings.changelog_topics == ["from-env-txns-changelog"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DEBITWATCH_PARTITIONS": "four"}, "partitions must be an integer"),
        ({"DEBITWATCH_PROCESSING_GUARANTEE": "maybe_once"}, "processing_guarantee"),
        ({"DEBITWATCH_PROCESSING_GUARANTEE": "exactly_once"}, "not supported"),
        ({"DEBITWATCH_STORE": "redis"}, "store must be rocksdb or memory"),
        ({"DEBITWATCH_STANDBY_REPLICAS": "-1"}, "standby_replicas must be >= 0"),
        ({"DEBITWATCH_MATCH_WINDOW": "soon"}, "expected a duration"),
        ({"DEBITWATCH_FETCH_MAX_WAIT": "0s"}, "fetch_max_wait must be > 0"),
        ({"DEBITWATCH_FETCH_MAX_WAIT": "1m"}, "fetch_max_wait must be > 0 and <= 30"),
    ],
)
def test_bad_values_are_clear_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_unknown_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[kafka]\npartitons = 8\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_env({}, config_path=path)


def test_bootstrap_strips_the_faust_scheme() -> None:
    settings = Settings(broker="kafka://a:9092;kafka://b:9093")
    assert settings.bootstrap == "a:9092,b:9093"


def test_settings_survive_the_trip_through_a_workers_environment() -> None:
    settings = Settings.from_env({"DEBITWATCH_PARTITIONS": "6", "DEBITWATCH_IDLE_ADVANCE": "2"})
    env = settings_env(settings, base={})
    assert Settings.from_env(env) == settings
