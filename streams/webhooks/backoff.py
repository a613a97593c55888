"""When to try a webhook delivery again, and whether to try at all (pure: no I/O, no clock).

What an answer means (docs/webhooks.md):

* 2xx: delivered.
* 408, 425, 429, 5xx, 3xx, a timeout or a connection error: the receiver may take it
  later, so retry. (A redirect is followed by nobody: signatures cover the body, not the
  URL, and an outdated URL is the operator's to fix, within the retry horizon.)
* 410 Gone: the receiver says the endpoint is gone for good: disable it.
* any other 4xx: the receiver refuses *this* payload (a bad signature, a schema it
  rejects); the same bytes will be refused again, so the state goes to the dead-letter
  topic at once instead of being retried for three days.

The schedule is exponential backoff with full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"): after the n-th failed attempt, wait a uniformly
random time in ``[0, min(cap, initial * 2**(n-1))]``, so many workers retrying one
recovered receiver do not arrive in waves. A ``Retry-After`` from the receiver replaces
the random wait (bounded by the cap). Attempts stop at ``max_age`` after the first:
the last one is made at that horizon, and if it fails the state is dead-lettered.

>>> import random
>>> policy = RetryPolicy(initial=1.0, cap=60.0, max_age=3600.0)
>>> rng = random.Random(7)
>>> [round(backoff_delay(n, policy, rng), 2) for n in (1, 2, 3, 10)]
[0.32, 0.3, 2.6, 4.35]
>>> decide(429, "2", None, failures=1, first_attempt=0.0, now=5.0, policy=policy, rng=rng)
Decision(action='retry', next_attempt=7.0, error='HTTP 429', reason=None)
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal

Action = Literal["delivered", "retry", "dead_letter", "disable"]
RETRIABLE_4XX: Final = frozenset({408, 425, 429})
GONE: Final = 410


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Seconds: first wait's upper bound, longest wait, and the retry horizon.

    Defaults: 5 s doubling to at most an hour, for three days from the first attempt
    (about 80 attempts when a receiver stays down).
    """

    initial: float = 5.0
    cap: float = 3600.0
    max_age: float = 3 * 86400.0

    def __post_init__(self) -> None:
        for name in ("initial", "cap", "max_age"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number of seconds > 0: {value!r}")
        if self.cap < self.initial:
            raise ValueError(f"backoff cap {self.cap} s is below the initial {self.initial} s")


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do with the head of an alert's queue after one attempt.

    ``next_attempt``: the wall-clock time (Unix seconds) of the retry, for ``retry``.
    ``error``: what went wrong, for the state's ``last_error`` and the dead letter.
    ``reason``: why a dead letter: ``refused`` (a 4xx) or ``retries_exhausted``.
    """

    action: Action
    next_attempt: float | None = None
    error: str | None = None
    reason: str | None = None


def classify(status: int | None) -> Literal["delivered", "retry", "refused", "gone"]:
    """What an HTTP status means for the delivery; ``None``: no answer at all."""
    if status is None:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    if status == GONE:
        return "gone"
    if 400 <= status < 500 and status not in RETRIABLE_4XX:
        return "refused"
    return "retry"


def backoff_delay(failures: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter after ``failures`` (>= 1) failed attempts: uniform in [0, ceiling]."""
    exponent = min(max(failures, 1) - 1, 64)  # 2**64 * any initial is past any cap
    ceiling = min(policy.cap, policy.initial * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110).

    >>> retry_after_seconds("2", 0.0), retry_after_seconds("soon", 0.0)
    (2.0, None)
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:01:40 GMT", 40.0)
    60.0
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110: an HTTP-date is always GMT
    return max(0.0, when.timestamp() - now)


def next_attempt_at(
    *,
    failures: int,
    first_attempt: float,
    now: float,
    retry_after: float | None,
    policy: RetryPolicy,
    rng: random.Random,
) -> float | None:
    """When to try again after a failure at ``now``; None once the horizon has passed."""
    horizon = first_attempt + policy.max_age
    if now >= horizon:
        return None
    delay = (
        min(retry_after, policy.cap)
        if retry_after is not None
        else backoff_delay(failures, policy, rng)
    )
    return min(now + delay, horizon)


def decide(
    status: int | None,
    retry_after: str | None,
    error: str | None,
    *,
    failures: int,
    first_attempt: float,
    now: float,
    policy: RetryPolicy,
    rng: random.Random,
) -> Decision:
    """The decision after an attempt that got ``status`` (or ``error`` and no answer).

    ``failures`` counts this attempt if it failed: 1 after the first failed attempt.
    """
    verdict = classify(status)
    if verdict == "delivered":
        return Decision("delivered")
    what = error or (f"HTTP {status}" if status is not None else "no answer")
    if verdict == "gone":
        return Decision("disable", error=what)
    if verdict == "refused":
        return Decision("dead_letter", error=what, reason="refused")
    when = next_attempt_at(
        failures=failures,
        first_attempt=first_attempt,
        now=now,
        retry_after=retry_after_seconds(retry_after, now),
        policy=policy,
        rng=rng,
    )
    if when is None:
        return Decision("dead_letter", error=what, reason="retries_exhausted")
    return Decision("retry", next_attempt=when, error=what)


def iso(when: float) -> str:
    """A wall-clock Unix time as RFC 3339 UTC with milliseconds (dead-letter records)."""
    moment = datetime.fromtimestamp(when, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
