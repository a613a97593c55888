"""When to try a webhook delivery again, and whether to try at all (pure: no I/O, no clock).

What an answer means (docs/webhooks.md):

* 2xx: delivered.
* 410 Gone: the receiver says the endpoint is gone for good: disable it.
* anything else (3xx, every other 4xx, 5xx, a timeout, a connection error): retry, as
  Standard Webhooks' and Svix's reference senders do. A 401, 403 or 404 is what a
  receiver answers in the middle of a deploy or a secret rotation; dead-lettering on it
  would drop alerts that minutes later would have been taken. (A redirect is followed by
  nobody: signatures cover the body, not the URL, and an outdated URL is the operator's
  to fix, within the retry horizon.)

The schedule is exponential backoff with full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"): after the n-th failed attempt, wait a uniformly
random time in ``[0, min(cap, initial * 2**(n-1))]``, so many workers retrying one
recovered receiver do not arrive in waves. A ``Retry-After`` from the receiver can
lengthen that wait (up to the cap), never shorten it: ``Retry-After: 0`` or a date in
the past would otherwise retry at once, again and again, for the whole horizon.
Attempts stop at ``max_age`` after the state was queued: the last one is made at that
horizon, and if it fails the state is dead-lettered.

>>> import random
>>> policy = RetryPolicy(initial=1.0, cap=60.0, max_age=3600.0)
>>> rng = random.Random(7)
>>> [round(backoff_delay(n, policy, rng), 2) for n in (1, 2, 3, 10)]
[0.32, 0.3, 2.6, 4.35]
>>> decide(429, "2", None, failures=1, queued_at=0.0, now=5.0, policy=policy, rng=rng)
Decision(action='retry', next_attempt=7.0, error='HTTP 429', reason=None)
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal

Action = Literal["delivered", "retry", "dead_letter", "disable"]
GONE: Final = 410
# RFC 9110 delta-seconds: ASCII digits only. ``str.isdigit`` also takes "²" or "٣",
# which ``int`` then refuses or reads as a number the receiver never sent.
_DELTA_SECONDS: Final = re.compile(r"[0-9]+")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Seconds: first wait's upper bound, longest wait, and the retry horizon.

    Defaults: 5 s doubling to at most an hour, for three days from when the state was
    queued: about 155 attempts (140 to 170, by the jitter) when a receiver stays down.
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
    ``reason``: why a dead letter: ``retries_exhausted`` (``decide`` gives no other).
    """

    action: Action
    next_attempt: float | None = None
    error: str | None = None
    reason: str | None = None


def classify(status: int | None) -> Literal["delivered", "retry", "gone"]:
    """What an HTTP status means for the delivery; ``None``: no answer at all."""
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == GONE:
        return "gone"
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
    if _DELTA_SECONDS.fullmatch(text):
        # float, not int: a 5,000-digit value would make int() raise (Python's limit on
        # digits); as a float it is infinity, which the cap then bounds.
        return float(text)
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
    queued_at: float,
    now: float,
    retry_after: float | None,
    policy: RetryPolicy,
    rng: random.Random,
) -> float | None:
    """When to try again after a failure at ``now``; None once the horizon has passed.

    The horizon is ``max_age`` after the state was queued, not after its first attempt:
    a state that waited behind its predecessor (only a queue's head is attempted) has
    used up that time already, and an operator reads ``max_age`` as "no alert state is
    still undelivered after this long".

    >>> policy = RetryPolicy(initial=1.0, cap=60.0, max_age=3600.0)
    >>> next_attempt_at(failures=3, queued_at=0.0, now=100.0, retry_after=0.0,
    ...                 policy=policy, rng=random.Random(7)) > 100.0
    True
    """
    horizon = queued_at + policy.max_age
    if now >= horizon:
        return None
    delay = backoff_delay(failures, policy, rng)
    if retry_after is not None:
        # A floor, not a replacement: the receiver may ask for more time, but a
        # "Retry-After: 0" (or a past date) must not turn the schedule into a hot loop.
        delay = min(max(retry_after, delay), policy.cap)
    return min(now + delay, horizon)


def decide(
    status: int | None,
    retry_after: str | None,
    error: str | None,
    *,
    failures: int,
    queued_at: float,
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
    when = next_attempt_at(
        failures=failures,
        queued_at=queued_at,
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
