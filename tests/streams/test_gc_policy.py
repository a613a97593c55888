"""The collector policy of workers and replays (streams/gc_policy.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from models.config import ConfigError
from streams import gc_policy
from streams.settings import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_threshold_reaches_the_collector(restored_gc: None) -> None:
    gc_policy.apply("1234,5,6")
    assert gc.get_threshold() == (1234, 5, 6)
    gc_policy.apply()
    assert gc.get_threshold() == (50_000, 20, 100)


@pytest.mark.parametrize("text", ["", "700", "700,10", "700,10,0", "a,b,c", "700,10,10,10"])
def test_a_malformed_threshold_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="three positive integers"):
        gc_policy.parse_threshold(text)


def test_the_worker_setting_comes_from_the_environment() -> None:
    settings = Settings.from_env({"DEBITWATCH_GC_THRESHOLD": "700, 10, 10"})
    assert gc_policy.parse_threshold(settings.gc_threshold) == (700, 10, 10)
    assert Settings().gc_threshold == gc_policy.DEFAULT_THRESHOLD
    with pytest.raises(ConfigError, match="gc_threshold"):
        Settings.from_env({"DEBITWATCH_GC_THRESHOLD": "often"})


def test_replay_reads_the_workers_variable(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEBITWATCH_GC_THRESHOLD", "900,9,9")
    gc_policy.apply_for_replay()
    assert gc.get_threshold() == (900, 9, 9)
    monkeypatch.delenv("DEBITWATCH_GC_THRESHOLD")
    gc_policy.apply_for_replay()
    assert gc.get_threshold() == (50_000, 20, 100)
