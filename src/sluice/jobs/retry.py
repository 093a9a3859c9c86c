"""Retries of transient failures (a source that is down or drops the connection).

Exponential backoff with full jitter (tenacity), bounded by a number of attempts and by a
time budget; only ``TransientError`` is retried, so a wrong query fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sluice.config import RetryConfig
from sluice.errors import TransientError

T = TypeVar("T")
log = logging.getLogger("sluice.jobs.retry")


def retrying(
    fn: Callable[[], T], *, policy: RetryConfig, what: str, sleep: Callable[[float], None]
) -> T:
    """Call ``fn``, retrying transient errors per ``policy``; ``sleep`` waits between tries.

    When the attempts or the budget run out, the last error is raised again, saying how many
    attempts were made over how long.
    """
    started = time.monotonic()
    try:
        return fn()  # the usual case, which needs no tenacity (0.1 s to import)
    except TransientError as exc:
        if policy.attempts <= 1:
            raise
        first = exc
    return _retry(fn, first, policy=policy, what=what, sleep=sleep, started=started)


def _retry(
    fn: Callable[[], T],
    first: TransientError,
    *,
    policy: RetryConfig,
    what: str,
    sleep: Callable[[float], None],
    started: float,
) -> T:
    """Go on after ``fn`` failed once with ``first``: tenacity counts that failure as its
    first attempt (``fn`` is not called again for it) and the time spent as used budget."""
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_after_delay,
        wait_random_exponential,
    )

    pending = [first]

    def attempt() -> T:
        if pending:
            raise pending.pop()
        return fn()

    def announce(state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1f s",
            what,
            state.attempt_number,
            policy.attempts,
            error,
            wait,
        )

    budget = max(0.0, policy.budget_seconds - (time.monotonic() - started))
    attempts = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(budget),
        wait=wait_random_exponential(multiplier=policy.initial_seconds, max=policy.max_seconds),
        sleep=sleep,
        before_sleep=announce,
        reraise=True,
    )
    try:
        return attempts(attempt)
    except TransientError as exc:
        tries = attempts.statistics.get("attempt_number", 1)
        if tries == 1:
            raise
        raise type(exc)(
            f"{exc.message} (gave up after {tries} attempts in {time.monotonic() - started:.0f} s)",
            hint=exc.hint or "Nothing was published; rerun the job once the source is back.",
        ) from exc
