"""Customer status callbacks: every status change POSTed, signed, retried until the endpoint takes it, once."""

import hashlib
import hmac
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from smsplatform.core.config import get_settings
from smsplatform.sending import status_callbacks
from tests.support.endpoints import Endpoint
from tests.support.harness import Api, Pipeline, create_token
from tests.support.scenarios import PEOPLE, give_credits, make_campaign, make_group

REJECTED = "+447400199990"  # the simulator refuses it: one failed status


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint(failures=3)
    yield served
    served.stop()


def _configure(api: Api, token: str, url: str | None) -> dict[str, Any]:
    response = api.request("PUT", "/v1/status-callback", token=token, json_body={"url": url})
    assert response.status == 200, response.body
    return dict(response.json())


def _send(api: Api, token: str, people: list[dict[str, Any]], **extra: Any) -> str:
    campaign_id = make_campaign(
        api, token, [make_group(api, token, "audience", people)], "Hi {{first_name|there}}", **extra
    )
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    return campaign_id


def test_an_endpoint_failing_three_times_then_receives_each_callback_exactly_once_signed(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    endpoint: Endpoint,
) -> None:
    give_credits(api, admin, user, 100)
    _configure(api, user["token"], endpoint.url)
    rotated = api.request("POST", "/v1/status-callback/secret", token=user["token"]).json()
    campaign_id = _send(api, user["token"], [*PEOPLE[:3], {"phone_number": REJECTED}])
    pipeline.drain()

    payloads = endpoint.payloads()
    changes = Counter((p["message_id"], p["status"]) for p in payloads)
    by_status = Counter(p["status"] for p in payloads)
    outbox = conn.execute("SELECT status, attempts FROM status_callbacks").fetchall()
    assert rotated["secret_version"] == 1
    assert rotated["secret"].startswith("whsec_")
    assert set(changes.values()) == {1}  # each status change once, however often the endpoint failed
    assert by_status == {"sent": 3, "delivered": 3, "failed": 1}
    assert set(endpoint.attempts.values()) == {4}  # three failures, then the one that counted
    assert {row["status"] for row in outbox} == {"delivered"}
    assert {row["attempts"] for row in outbox} == {4}
    for headers, body in endpoint.received:
        expected = hmac.new(rotated["secret"].encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-signature"], expected)
        assert json.loads(body)["id"] == headers["x-callback-id"]
    rejected = next(p for p in payloads if p["to"] == REJECTED)
    assert (rejected["status"], rejected["campaign_id"], rejected["error_code"]) == ("failed", campaign_id, "SIM-21211")
    assert {p["campaign_id"] for p in payloads} == {campaign_id}


def test_a_rotated_secret_signs_every_callback_from_then_on(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline
) -> None:
    endpoint = Endpoint()
    try:
        give_credits(api, admin, user, 100)
        _configure(api, user["token"], endpoint.url)
        first = api.request("POST", "/v1/status-callback/secret", token=user["token"]).json()["secret"]
        second = api.request("POST", "/v1/status-callback/secret", token=user["token"]).json()["secret"]
        _send(api, user["token"], PEOPLE[:1])
        pipeline.drain()
        shown = api.request("GET", "/v1/status-callback", token=user["token"]).json()
    finally:
        endpoint.stop()

    assert first != second
    assert shown["secret_version"] == 2
    assert "secret" not in shown  # shown once, when rotated
    for headers, body in endpoint.received:
        assert headers["x-signature"] == hmac.new(second.encode(), body, hashlib.sha256).hexdigest()
    assert len(endpoint.received) == 2  # sent, delivered


def test_a_campaigns_own_url_wins_and_accounts_without_one_get_nothing(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    other_user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
) -> None:
    account_endpoint, campaign_endpoint = Endpoint(), Endpoint()
    try:
        for account in (user, other_user):
            give_credits(api, admin, account, 100)
        _configure(api, user["token"], account_endpoint.url)
        _send(api, user["token"], PEOPLE[:1], settings={"status_callback_url": campaign_endpoint.url})
        _send(api, other_user["token"], PEOPLE[:2])
        pipeline.drain()
    finally:
        account_endpoint.stop()
        campaign_endpoint.stop()

    assert account_endpoint.received == []
    assert Counter(p["status"] for p in campaign_endpoint.payloads()) == {"sent": 1, "delivered": 1}
    owners = conn.execute("SELECT DISTINCT user_id::text AS id FROM status_callbacks").fetchall()
    assert owners == [{"id": user["id"]}]


def test_a_campaigns_own_url_is_called_when_its_account_names_none(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline
) -> None:
    """The trigger looks for a URL among the statement's accounts and campaigns before writing (sql/0023):
    the campaign's alone must be found."""
    campaign_endpoint = Endpoint()
    try:
        give_credits(api, admin, user, 100)
        _send(api, user["token"], PEOPLE[:2], settings={"status_callback_url": campaign_endpoint.url})
        pipeline.drain()
    finally:
        campaign_endpoint.stop()

    assert Counter(p["status"] for p in campaign_endpoint.payloads()) == {"sent": 2, "delivered": 2}


def test_callback_urls_are_checked_and_clearing_one_stops_the_callbacks(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 100)
    refused = api.request("PUT", "/v1/status-callback", token=user["token"], json_body={"url": "ftp://example.com/x"})
    _configure(api, user["token"], "https://hooks.example.com/sms?token=integrators-own-secret")
    cleared = _configure(api, user["token"], None)
    audited = conn.execute(
        "SELECT details FROM audit_logs WHERE action = 'status_callback.set' ORDER BY created_at"
    ).fetchall()
    _send(api, user["token"], PEOPLE[:1])
    pipeline.drain()
    token = create_token(api, user["token"], "messages:read")["token"]

    assert refused.status == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert cleared["url"] is None
    assert [row["details"] for row in audited] == [{"host": "hooks.example.com"}, {"host": None}]
    assert conn.execute("SELECT count(*) AS n FROM status_callbacks").fetchone()["n"] == 0
    assert api.request("GET", "/v1/status-callback", token=token).status == 403


def test_maintenance_purges_settled_callbacks_after_a_week_and_keeps_pending_ones(
    user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    from smsplatform.core import db

    conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload, status, created_at)
           VALUES (%(u)s, 'https://x.example/h', '{}', 'delivered', now() - interval '8 days'),
                  (%(u)s, 'https://x.example/h', '{}', 'failed', now() - interval '8 days'),
                  (%(u)s, 'https://x.example/h', '{}', 'pending', now() - interval '8 days'),
                  (%(u)s, 'https://x.example/h', '{}', 'delivered', now() - interval '1 day')""",
        {"u": user["id"]},
    )

    with db.transaction() as pooled:
        purged = status_callbacks.purge_settled(pooled)

    left = conn.execute("SELECT status FROM status_callbacks ORDER BY status").fetchall()
    assert purged == 2
    assert [row["status"] for row in left] == ["delivered", "pending"]


def test_a_callback_is_retried_on_a_doubling_schedule_capped_at_an_hour_then_given_up(
    api: Api,
    admin: dict[str, Any],
    user: dict[str, Any],
    pipeline: Pipeline,
    conn: psycopg.Connection[Any],
    configure: Callable[..., None],
) -> None:
    give_credits(api, admin, user, 10)
    _configure(api, user["token"], "https://hooks.example.com/sms")
    callbacks = pipeline.pollers.pop("CallbacksFunction")
    try:
        api.request(
            "POST", "/v1/messages", token=user["token"], json_body={"to": PEOPLE[0]["phone_number"], "text": "Hi"}
        )
        pipeline.drain()
    finally:
        pipeline.pollers["CallbacksFunction"] = callbacks
    pipeline.discard()
    configure(callback_max_attempts=4, callback_retry_base_seconds=1000)
    settings = get_settings()

    def refused(url: str, body: bytes, headers: dict[str, str]) -> None:
        raise ConnectionRefusedError("the endpoint is down")

    waits, states = [], []
    for _ in range(4):
        status_callbacks.deliver(settings, "master-key", user["id"], refused)
        rows = conn.execute(
            """SELECT status, attempts, round(extract(epoch FROM next_attempt_at - now())) AS wait, last_error
                 FROM status_callbacks ORDER BY created_at"""
        ).fetchall()
        waits.append([int(row["wait"]) for row in rows])
        states.append({(row["status"], row["attempts"]) for row in rows})
        conn.execute("UPDATE status_callbacks SET next_attempt_at = now() WHERE status = 'pending'")

    # Two callbacks (sent, delivered), each waiting 1000 s, 2000 s, then an hour (not 4000 s), then given up.
    assert [sorted(set(w)) for w in waits[:3]] == [[1000], [2000], [3600]]
    assert states == [{("pending", 1)}, {("pending", 2)}, {("pending", 3)}, {("failed", 4)}]
    assert "ConnectionRefusedError" in rows[0]["last_error"]
    assert status_callbacks.deliver(settings, "master-key", user["id"], refused).delivered == 0
    assert conn.execute("SELECT max(attempts) AS n FROM status_callbacks").fetchone()["n"] == 4  # no fifth


class SlowDrip:
    """An endpoint that answers one byte every half second, for ever: each read succeeds, none finishes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/slow"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close() while waiting
                return
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        with client:
            client.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 10_000:
                if self.stop.wait(0.5):
                    return
                try:
                    client.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def test_a_slow_drip_endpoint_is_cut_off_at_the_total_deadline_and_the_attempt_counts(
    configure: Callable[..., None], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    configure(callback_timeout_seconds=1.5)
    endpoint = SlowDrip()
    conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload) VALUES (%s, %s, '{"status": "delivered"}')""",
        (user["id"], endpoint.url),
    )
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            status_callbacks.deliver(get_settings(), "k", user["id"], status_callbacks.http_post(get_settings()))
        ),
        daemon=True,
    )
    try:
        worker.start()
        worker.join(timeout=10)  # the deadline is 1.5 s; the endpoint would take 80 minutes
        finished = not worker.is_alive()
    finally:
        endpoint.close()

    row = conn.execute("SELECT status, attempts, last_error FROM status_callbacks").fetchone()
    assert finished
    assert outcome[0].failed == 1
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "1.5" in row["last_error"]


def test_an_invocation_claims_only_what_it_can_finish_and_leaves_the_rest_due(
    configure: Callable[..., None], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    configure(callback_timeout_seconds=2, callback_concurrency=3, callback_batch_size=100)
    conn.execute(
        """INSERT INTO status_callbacks (user_id, url, payload)
           SELECT %s, 'https://hooks.example.com/sms', '{"status": "delivered"}' FROM generate_series(1, 20)""",
        (user["id"],),
    )
    posted: list[str] = []
    remaining = iter([14.0, 8.9, 3.0])  # seconds left at each round: room for 3 waves, then 1, then none

    outcome = status_callbacks.deliver(
        get_settings(), "k", user["id"], lambda url, body, headers: posted.append(url), lambda: next(remaining)
    )

    # 14 s less 5 s kept back = 4 waves of 2 s, 3 at a time: 12; then 3.9 s: 1 wave, 3; then none.
    assert len(posted) == outcome.delivered == 15
    assert outcome.retry_in == 0  # the other five are due now: the account is announced again at once
    assert conn.execute("SELECT count(*) AS n FROM status_callbacks WHERE status = 'pending'").fetchone()["n"] == 5


def test_the_callbacks_function_takes_one_account_per_invocation() -> None:
    from local.template import load_yaml
    from tests.support.paths import ROOT

    events = load_yaml(ROOT / "template.yaml")["Resources"]["CallbacksFunction"]["Properties"]["Events"]
    assert [event["Properties"]["BatchSize"] for event in events.values()] == [1]
