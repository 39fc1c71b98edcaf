"""The retry policy, table-driven, with the waiting patched out."""

from __future__ import annotations

import email.utils

import pytest

from pipelines.client.retry import RETRY_STATUSES, RetryPolicy, parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 12 ", 12.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(header, expected) -> None:
    assert parse_retry_after(header, now=NOW) == expected


@pytest.mark.parametrize(
    ("attempt", "header", "low", "high"),
    [
        (1, None, 0.25, 0.5),
        (2, None, 0.5, 1.0),
        (4, None, 2.0, 4.0),
        (10, None, 10.0, 20.0),  # capped
        (1, "5", 5.0, 5.0),  # Retry-After wins over backoff
        (1, "3600", 60.0, 60.0),  # ... up to its cap
    ],
)
def test_delay(attempt, header, low, high) -> None:
    policy = RetryPolicy()
    for _ in range(50):
        assert low <= policy.delay(attempt, header, now=NOW) <= high


def test_jitter_spreads_the_waits() -> None:
    assert len({round(RetryPolicy().delay(3), 6) for _ in range(20)}) > 10


def test_bounded_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(a) for a in (1, 2, 3)] == [True, True, False]


@pytest.mark.parametrize(("status", "retried"), [(429, True), (502, True), (503, True), (504, True), (408, True),
                                                 (400, False), (401, False), (403, False), (404, False)])
def test_which_statuses_are_transient(status, retried) -> None:
    assert (status in RETRY_STATUSES) is retried


def test_run_waits_out_rate_limits_without_using_up_tries(monkeypatch) -> None:
    from pipelines.client import ApiError, retry

    waits: list[float] = []
    monkeypatch.setattr(retry, "sleep", waits.append)

    def failing(status: int, times: int, retry_after: str | None):
        calls = []

        def attempt():
            calls.append(1)
            if len(calls) <= times:
                error = ApiError("busy", status, "http://h/api/risks", transient=True)
                error.retry_after = retry_after
                raise error
            return "ok"
        return attempt

    policy = RetryPolicy(max_attempts=3, max_rate_limited=10)
    assert retry.run(policy, failing(429, 8, "2"), "GET") == "ok", "eight 429s with Retry-After are waited out"
    assert waits == [2.0] * 8
    with pytest.raises(ApiError):
        retry.run(policy, failing(503, 3, None), "GET")  # three failures: out of tries
    with pytest.raises(ApiError):
        retry.run(policy, failing(429, 10, "1"), "GET")  # the cap on rate-limited waits
    assert retry.run(policy, failing(429, 2, None), "GET") == "ok"  # a bare 429 is a failed try
