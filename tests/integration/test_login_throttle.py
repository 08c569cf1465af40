"""Password guessing is slowed: 429 with Retry-After, the same for real and unknown logins."""

from typing import Any

import psycopg

from smsplatform.accounts import login_throttle
from tests.support.harness import Api


def _attempt(api: Api, login: str, password: str = "a wrong guess", ip: str = "203.0.113.7") -> Any:
    return api.gateway.handle(
        "POST",
        "/v1/auth/login",
        {"content-type": "application/json", "user-agent": "pytest"},
        f'{{"login": "{login}", "password": "{password}"}}'.encode(),
        ip,
    )


def test_repeated_failures_for_one_login_are_refused_for_a_while(api: Api, user: dict[str, Any]) -> None:
    statuses = [_attempt(api, "alice")[0] for _ in range(login_throttle.MAX_FAILURES_PER_LOGIN)]
    status, headers, _, body = _attempt(api, "alice", "correct horse battery")

    assert statuses == [401] * login_throttle.MAX_FAILURES_PER_LOGIN
    assert status == 429
    assert 0 < int(headers["retry-after"]) <= login_throttle.WINDOW_SECONDS
    assert b"too-many-attempts" in body


def test_an_unknown_login_is_throttled_exactly_like_a_real_one(api: Api, user: dict[str, Any]) -> None:
    real = [_attempt(api, "alice")[0] for _ in range(login_throttle.MAX_FAILURES_PER_LOGIN + 1)]
    unknown = [_attempt(api, "nobody-here")[0] for _ in range(login_throttle.MAX_FAILURES_PER_LOGIN + 1)]

    assert real == unknown
    assert _attempt(api, "alice")[3].replace(b"alice", b"") == _attempt(api, "nobody-here")[3].replace(
        b"nobody-here", b""
    )


def test_one_address_guessing_many_logins_is_refused(api: Api, conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """INSERT INTO login_failures (login_key, ip_address)
           SELECT 'user' || n, '198.51.100.9' FROM generate_series(1, %s) n""",
        (login_throttle.MAX_FAILURES_PER_ADDRESS,),
    )

    assert _attempt(api, "someone-new", ip="198.51.100.9")[0] == 429
    assert _attempt(api, "someone-new", ip="198.51.100.10")[0] == 401


def test_a_successful_login_clears_earlier_failures(api: Api, user: dict[str, Any]) -> None:
    for _ in range(login_throttle.MAX_FAILURES_PER_LOGIN - 1):
        _attempt(api, "alice")
    assert _attempt(api, "alice", "correct horse battery")[0] == 200

    assert [_attempt(api, "alice")[0] for _ in range(3)] == [401, 401, 401]


def test_failures_age_out_of_the_window(api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    for _ in range(login_throttle.MAX_FAILURES_PER_LOGIN):
        _attempt(api, "alice")
    assert _attempt(api, "alice", "correct horse battery")[0] == 429

    conn.execute(
        "UPDATE login_failures SET created_at = created_at - make_interval(secs => %s)",
        (login_throttle.WINDOW_SECONDS,),
    )

    assert _attempt(api, "alice", "correct horse battery")[0] == 200
