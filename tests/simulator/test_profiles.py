"""Profiles: the documented rates, and --set overrides with clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from streams.simulator.profiles import (
    ANOMALY_SCENARIOS,
    PROFILES,
    SETTABLE,
    ProfileError,
    resolve,
)


@pytest.mark.parametrize(
    ("profile", "low", "high"),
    [("normal", 0.0, 0.0), ("default", 0.029, 0.031), ("storm", 0.249, 0.251)],
)
def test_anomaly_share_per_profile(profile, low, high):
    assert low <= PROFILES[profile].anomaly_rate <= high


def test_every_anomaly_has_a_rate_in_default_and_storm():
    for name in ANOMALY_SCENARIOS:
        assert PROFILES["default"].rate(name) > 0
        assert PROFILES["storm"].rate(name) > PROFILES["default"].rate(name)
        assert PROFILES["normal"].rate(name) == 0


def test_storm_is_more_disordered():
    default, storm = PROFILES["default"], PROFILES["storm"]
    for knob in ("redelivery", "late_tail", "issuer_lag_ms", "issuer_burst_share", "late_feed"):
        assert getattr(storm, knob) > getattr(default, knob)


def test_every_field_is_settable():
    fields = {f.name for f in dataclasses.fields(PROFILES["default"])} - {"name"}
    assert set(SETTABLE) == fields
    for name in SETTABLE:
        value = 0.0 if name != "issuer_burst_max_s" else 30.0
        assert getattr(resolve("default", [f"{name}={value}"]), name) == value


def test_set_overrides_one_rate_and_approved_takes_the_rest():
    profile = resolve("default", ["network_failure=0.02"])
    assert profile.network_failure == 0.02
    assert profile.approved_rate == pytest.approx(PROFILES["default"].approved_rate - 0.015)


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (["network_falure=0.1"], "unknown --set name 'network_falure'"),
        (["network_failure"], "expects NAME=VALUE"),
        (["network_failure=lots"], "is not a number"),
        (["redelivery=1.5"], "out of range"),
        (["max_clock_skew_s=121"], "out of range"),
        (["declined=0.9", "network_failure=0.2"], "add up to"),
    ],
)
def test_bad_overrides_are_clear_errors(assignments, message):
    with pytest.raises(ProfileError, match=message):
        resolve("default", assignments)


def test_unknown_profile():
    with pytest.raises(ProfileError, match="unknown profile 'calm'"):
        resolve("calm")
