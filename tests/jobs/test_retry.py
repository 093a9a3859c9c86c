"""Retries: only transient errors, exponential waits with jitter within bounds, a clear end."""

from __future__ import annotations

import pytest

from sluice.config import RetryConfig
from sluice.errors import SourceError, SourceUnavailableError
from sluice.jobs.retry import retrying


def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    waits: list[float] = []
    calls = iter([SourceUnavailableError("down"), SourceUnavailableError("down"), "rows"])

    def flaky() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryConfig(attempts=5, initial_seconds=0.5, max_seconds=3)
    assert retrying(flaky, policy=policy, what="extract", sleep=waits.append) == "rows"
    assert len(waits) == 2
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0


def test_the_last_error_says_how_long_it_tried() -> None:
    waits: list[float] = []

    def down() -> None:
        raise SourceUnavailableError("Cannot connect to source mysql://db/shop")

    policy = RetryConfig(attempts=4, initial_seconds=10, max_seconds=20)
    with pytest.raises(SourceUnavailableError) as caught:
        retrying(down, policy=policy, what="connect", sleep=waits.append)
    assert len(waits) == 3 and all(0 <= w <= 20 for w in waits)
    assert "Cannot connect to source mysql://db/shop (gave up after 4 attempts in" in str(
        caught.value
    )


def test_other_errors_fail_at_once() -> None:
    calls = []

    def wrong() -> None:
        calls.append(1)
        raise SourceError("Access denied")

    with pytest.raises(SourceError, match="Access denied"):
        retrying(wrong, policy=RetryConfig(), what="connect", sleep=lambda s: None)
    assert calls == [1]
