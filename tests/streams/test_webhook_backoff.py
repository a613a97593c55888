"""Webhook retries (streams/webhooks/backoff.py): which answers retry, the schedule, Retry-After."""

from __future__ import annotations

import doctest
import random
from email.utils import formatdate

import pytest

from streams.webhooks import backoff
from streams.webhooks.backoff import (
    RetryPolicy,
    backoff_delay,
    classify,
    decide,
    next_attempt_at,
    retry_after_seconds,
)

POLICY = RetryPolicy(initial=5.0, cap=3600.0, max_age=3 * 86400.0)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"), (202, "delivered"), (204, "delivered"), (299, "delivered"),
        (None, "retry"), (301, "retry"), (408, "retry"), (425, "retry"), (429, "retry"),
        (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
        (410, "gone"),
        # As Standard Webhooks' and Svix's senders do: a 401, 403 or 404 is what a
        # receiver answers during a deploy or a secret rotation, not a final refusal.
        (400, "retry"), (401, "retry"), (403, "retry"), (404, "retry"),
        (413, "retry"), (422, "retry"), (100, "retry"), (600, "retry"),
    ],
)  # fmt: skip
def test_which_answers_are_retried(status: int | None, verdict: str) -> None:
    assert classify(status) == verdict


def test_full_jitter_stays_within_the_doubling_ceiling_and_the_cap() -> None:
    rng = random.Random(1)
    for failures in range(1, 40):
        ceiling = min(POLICY.cap, POLICY.initial * 2 ** (failures - 1))
        delays = [backoff_delay(failures, POLICY, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = [backoff_delay(n, POLICY, random.Random(42)) for n in range(1, 10)]
    again = [backoff_delay(n, POLICY, random.Random(42)) for n in range(1, 10)]
    assert first == again


def attempts_over_the_horizon(seed: int) -> int:
    """HTTP attempts a state gets from a receiver that never answers 2xx."""
    rng = random.Random(seed)
    first = now = 1_000_000.0
    attempts = 1
    while True:
        when = next_attempt_at(
            failures=attempts, queued_at=first, now=now, retry_after=None,
            policy=POLICY, rng=rng,
        )  # fmt: skip
        if when is None:
            break
        assert now <= when <= first + POLICY.max_age
        assert when - now <= POLICY.cap
        now = when
        attempts += 1
    # The last attempt is made at the horizon itself, then the state is given up.
    assert now == first + POLICY.max_age
    return attempts


def test_a_receiver_down_for_three_days_gets_about_155_attempts_then_a_dead_letter() -> None:
    # About 12 attempts while the ceiling doubles up to the hour, then one per half hour
    # on average (full jitter: uniform up to an hour) for the rest of the three days.
    counts = [attempts_over_the_horizon(seed) for seed in range(5)]
    assert counts == [143, 161, 151, 145, 158]  # the schedule is deterministic per seed
    assert all(140 <= n <= 165 for n in counts)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), (" 120 ", 120.0), ("soon", None), ("-5", None), ("", None),
     (None, None), ("1.5", None), ("1e3", None),
     # Unicode digits pass str.isdigit(); "²" then made int() raise, "٣" read as 3.
     ("²", None), ("\u0663", None), ("1\u00b2", None),
     # Beyond int()'s 4,300-digit limit: infinity, which the cap bounds.
     ("9" * 5000, float("inf"))],
)  # fmt: skip
def test_retry_after_in_seconds(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header, 1000.0) == expected


def test_retry_after_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds(formatdate(now + 90, usegmt=True), now) == 90.0
    # A date in the past means "now" (which the schedule does not take: below).
    assert retry_after_seconds(formatdate(now - 90, usegmt=True), now) == 0.0


def test_retry_after_lengthens_the_wait_up_to_the_cap() -> None:
    policy = RetryPolicy(initial=0.1, cap=10.0, max_age=3600.0)
    rng = random.Random(5)
    asked = decide(429, "2", None, failures=1, queued_at=0.0, now=50.0, policy=policy, rng=rng)
    assert (asked.action, asked.next_attempt) == ("retry", 52.0)
    capped = decide(503, "7200", None, failures=1, queued_at=0.0, now=50.0, policy=policy,
                    rng=rng)  # fmt: skip
    assert capped.next_attempt == 60.0


@pytest.mark.parametrize(
    "header", ["0", formatdate(1_000_000.0 - 90, usegmt=True), "\u00b2", "soon", None]
)
def test_retry_after_never_shortens_the_schedule(header: str | None) -> None:
    """A Retry-After of 0, a past date or a header we cannot read: the backoff as without
    it. An immediate retry on each of them would be a hot loop for three days."""
    now = 1_000_000.0
    for failures in (1, 3, 8, 20):
        with_header = decide(503, header, None, failures=failures, queued_at=now - 10,
                             now=now, policy=POLICY, rng=random.Random(failures))  # fmt: skip
        plain = decide(503, None, None, failures=failures, queued_at=now - 10, now=now,
                       policy=POLICY, rng=random.Random(failures))  # fmt: skip
        assert with_header == plain
        assert with_header.next_attempt is not None and with_header.next_attempt > now


def test_the_horizon_counts_from_when_the_state_was_queued() -> None:
    """A resolved state that waited three days behind its firing gets one attempt, not
    three more days: the receiver has been failing all that time."""
    queued = 1_000_000.0
    first_try = queued + POLICY.max_age + 60  # its predecessor was dead-lettered just now
    waited = decide(503, None, None, failures=1, queued_at=queued, now=first_try,
                    policy=POLICY, rng=random.Random(1))  # fmt: skip
    assert (waited.action, waited.reason) == ("dead_letter", "retries_exhausted")
    fresh = decide(503, None, None, failures=1, queued_at=first_try - 1, now=first_try,
                   policy=POLICY, rng=random.Random(1))  # fmt: skip
    assert fresh.action == "retry"


def test_decisions() -> None:
    rng = random.Random(0)

    def after(
        status: int | None, error: str | None = None, now: float = 1.0
    ) -> tuple[str, str | None, str | None]:
        d = decide(status, None, error, failures=1, queued_at=0.0, now=now, policy=POLICY,
                   rng=rng)  # fmt: skip
        return d.action, d.reason, d.error

    assert after(204) == ("delivered", None, None)
    assert after(410) == ("disable", None, "HTTP 410")
    assert after(401) == ("retry", None, "HTTP 401")
    assert after(404, error="HTTP 404 Not Found") == ("retry", None, "HTTP 404 Not Found")
    assert after(503)[:2] == ("retry", None)
    assert after(None, error="cannot connect: Connection refused") == (
        "retry", None, "cannot connect: Connection refused",
    )  # fmt: skip
    # Past the horizon: the failure is the last one.
    assert after(503, now=POLICY.max_age) == ("dead_letter", "retries_exhausted", "HTTP 503")


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0.0}, {"cap": float("inf")}, {"max_age": -1.0},
               {"initial": 10.0, "cap": 1.0}],
)  # fmt: skip
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_the_module_examples_run() -> None:
    assert doctest.testmod(backoff).failed == 0
