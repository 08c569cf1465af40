"""The sender's backoff for transient failures: doubling from the base, never past SQS's 15-minute delay."""

from smsplatform.sending.sender import retry_delay


def test_the_delay_doubles_from_the_base_with_each_attempt() -> None:
    assert [retry_delay(attempt, 5) for attempt in range(1, 7)] == [5, 10, 20, 40, 80, 160]


def test_the_delay_stops_at_sqs_s_fifteen_minutes() -> None:
    assert [retry_delay(attempt, 60) for attempt in (4, 5, 6, 20)] == [480, 900, 900, 900]


def test_a_zero_base_retries_at_once_and_attempt_zero_counts_as_the_first() -> None:
    assert [retry_delay(attempt, 0) for attempt in (1, 5)] == [0, 0]
    assert retry_delay(0, 7) == 7
