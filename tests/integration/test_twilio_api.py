"""The Twilio-compatible Messages API, driven by Twilio's official Python SDK over HTTP.

The SDK is the client an integrator already has: only its base URL changes. The
gateway serves the template's routes on loopback, in this process, so the
pipeline fixtures drain what the SDK sends.
"""

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import psycopg
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from local.gateway import GatewayServer
from tests.support.corpus import MESSAGES
from tests.support.endpoints import Endpoint
from tests.support.harness import Api, Pipeline, create_token
from tests.support.scenarios import balance_of, give_credits, register_sender_id

SENDER = "+447400100200"
NUMBERS = [f"+4474001230{n:02d}" for n in range(10, 20)]
BODIES = [sent for _, sent in MESSAGES if "{" not in sent]


@pytest.fixture
def server(api: Api) -> Iterator[str]:
    served = GatewayServer(api.gateway, "127.0.0.1", 0)
    served.start()
    try:
        yield f"http://127.0.0.1:{served.port}"
    finally:
        served.stop()


@pytest.fixture
def account(api: Api, admin: dict[str, Any], user: dict[str, Any], configure: Any) -> dict[str, Any]:
    configure(callback_allow_http=True)
    give_credits(api, admin, user, 1000)
    register_sender_id(api, admin, user, SENDER, kind="number")
    token = create_token(api, user["token"], "messages:send", "messages:read")["token"]
    sid = api.request("GET", "/v1/users/me", token=user["token"]).json()["twilio_account_sid"]
    return {**user, "sid": sid, "api_token": token}


@pytest.fixture
def client(server: str, account: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Client:
    # The SDK rewrites the host for a region or edge named in the environment.
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    sdk = Client(account["sid"], account["api_token"])
    sdk.api.base_url = server
    return sdk


RESOURCE_KEYS = {
    "sid", "account_sid", "messaging_service_sid", "to", "from", "body", "status", "num_segments", "num_media",
    "direction", "price", "price_unit", "error_code", "error_message", "date_created", "date_updated", "date_sent",
    "uri", "api_version", "subresource_uris",
}  # fmt: skip


def test_create_fetch_and_a_signed_status_callback(
    client: Client, account: dict[str, Any], api: Api, pipeline: Pipeline, server: str
) -> None:
    endpoint = Endpoint()
    try:
        auth_token = api.request("POST", "/v1/status-callback/secret", token=account["token"]).json()[
            "twilio_auth_token"
        ]
        body = '🎉 Ann, your gold plan renews 🔁 soon 💳 — 50% off, "quoted" \\ and مرحبا'
        created = client.messages.create(to=NUMBERS[0], from_=SENDER, body=body, status_callback=endpoint.url)
        pipeline.drain()
        fetched = client.messages(created.sid).fetch()
    finally:
        endpoint.stop()

    assert created.sid.startswith("SM")
    assert len(created.sid) == 34
    assert created.account_sid == account["sid"]
    assert (created.status, created.to, created.from_, created.body) == ("queued", NUMBERS[0], SENDER, body)
    assert (created.direction, created.num_segments, created.api_version) == ("outbound-api", "2", "2010-04-01")
    assert isinstance(created.date_created, datetime)
    assert created.uri == f"/2010-04-01/Accounts/{account['sid']}/Messages/{created.sid}.json"
    assert created.messaging_service_sid == "MG" + account["sid"][2:]
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None
    assert fetched.error_code is None
    assert fetched.price == "-2"
    raw = httpx.get(server + created.uri, auth=(account["sid"], account["api_token"])).json()
    assert set(raw) == RESOURCE_KEYS  # Twilio's keys, no others
    assert raw["date_created"].endswith(" GMT")  # RFC 2822
    assert fetched.price_unit == "credits"

    validator = RequestValidator(auth_token)
    statuses = []
    for headers, raw in endpoint.received:
        fields = dict(parse_qsl(raw.decode()))
        assert headers["content-type"] == "application/x-www-form-urlencoded"
        assert validator.validate(endpoint.url, fields, headers["x-twilio-signature"])
        assert not validator.validate(endpoint.url, {**fields, "To": NUMBERS[1]}, headers["x-twilio-signature"])
        assert (fields["MessageSid"], fields["SmsSid"]) == (created.sid, created.sid)
        assert fields["AccountSid"] == account["sid"]
        assert (fields["To"], fields["From"], fields["ApiVersion"]) == (NUMBERS[0], SENDER, "2010-04-01")
        assert fields["SmsStatus"] == fields["MessageStatus"]
        statuses.append(fields["MessageStatus"])
    assert sorted(statuses) == ["delivered", "sent"]  # posted side by side: either may land first


def test_list_pages_through_every_message_with_the_filters_repeated(
    client: Client, account: dict[str, Any], pipeline: Pipeline
) -> None:
    service = "MG" + account["sid"][2:]
    sent = [client.messages.create(to=NUMBERS[1], messaging_service_sid=service, body=text).sid for text in BODIES[:5]]
    client.messages.create(to=NUMBERS[2], from_=SENDER, body="Another number, not listed")

    listed = client.messages.list(to=NUMBERS[1], page_size=2)
    first = client.messages.page(to=NUMBERS[1], page_size=2)
    second = first.next_page()
    third = second.next_page()

    assert [m.sid for m in listed] == list(reversed(sent))  # newest first, across three pages
    assert [m.body for m in listed] == list(reversed(BODIES[:5]))
    assert [len(list(p)) for p in (first, second, third)] == [2, 2, 1]
    assert third.next_page() is None
    next_uri = first._payload["next_page_uri"]
    assert next_uri.startswith(f"/2010-04-01/Accounts/{account['sid']}/Messages.json?")
    query = dict(parse_qsl(urlsplit(next_uri).query))
    assert (query["To"], query["PageSize"], query["Page"]) == (NUMBERS[1], "2", "1")
    assert query["PageToken"].startswith("PA")
    assert set(first._payload) == {
        "messages", "end", "first_page_uri", "next_page_uri", "page", "page_size", "previous_page_uri", "start", "uri",
    }  # fmt: skip
    today = datetime.now(UTC)
    assert client.messages.list(to=NUMBERS[1], date_sent=today) == []  # not sent yet
    pipeline.drain()
    assert len(client.messages.list(to=NUMBERS[1], date_sent=today)) == 5
    assert len(client.messages.list(from_=SENDER, date_sent_after=today)) == 1
    assert client.messages.list(to=NUMBERS[1], date_sent_before=today - timedelta(days=1)) == []


def test_a_scheduled_message_is_cancelled_and_refunded(client: Client, account: dict[str, Any], api: Api) -> None:
    before = balance_of(api, account["token"])
    scheduled = client.messages.create(
        to=NUMBERS[3],
        messaging_service_sid="MG" + account["sid"][2:],
        body="Your appointment is tomorrow at 09:30 — reply C to cancel",
        send_at=datetime.now(UTC) + timedelta(hours=2),
        schedule_type="fixed",
        validity_period=600,
    )
    held = balance_of(api, account["token"])
    cancelled = client.messages(scheduled.sid).update(status="canceled")

    assert scheduled.status == "scheduled"
    assert held == before - 1
    assert cancelled.status == "canceled"
    assert balance_of(api, account["token"]) == before
    with pytest.raises(TwilioRestException) as again:
        client.messages(scheduled.sid).update(status="canceled")
    assert again.value.code == 30400


def test_twilios_error_codes_reach_the_sdk(
    client: Client,
    account: dict[str, Any],
    api: Api,
    server: str,
    configure: Any,
    conn: psycopg.Connection[Any],
) -> None:
    def refused(**params: Any) -> TwilioRestException:
        with pytest.raises(TwilioRestException) as caught:
            client.messages.create(**params)
        return caught.value

    invalid_to = refused(to="+4412", from_=SENDER, body="Hi there, 20% off")
    not_owned = refused(to=NUMBERS[4], from_="+447400999999", body="Hi")
    api.request("POST", "/v1/opt-outs", token=account["token"], json_body={"phone_number": NUMBERS[5]})
    unsubscribed = refused(to=NUMBERS[5], from_=SENDER, body="We miss you")
    no_body = refused(to=NUMBERS[4], from_=SENDER, body="")
    bad_callback = refused(to=NUMBERS[4], from_=SENDER, body="Hi", status_callback="ftp://example.com/x")
    unscheduled = refused(to=NUMBERS[4], from_=SENDER, body="Hi", send_at=datetime.now(UTC) + timedelta(hours=1))
    too_soon = refused(
        to=NUMBERS[4], from_=SENDER, body="Hi", send_at=datetime.now(UTC) + timedelta(minutes=1), schedule_type="fixed"
    )
    no_validity = refused(to=NUMBERS[4], from_=SENDER, body="Hi", validity_period=0)
    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()
    stranger = Client(account["sid"], "sk_live_" + "x" * 40)
    stranger.api.base_url = server
    with pytest.raises(TwilioRestException) as unauthenticated:
        stranger.messages("SM" + "0" * 32).fetch()
    configure(max_queued_messages=1)
    client.messages.create(to=NUMBERS[6], from_=SENDER, body="First of the queue")
    overflow = refused(to=NUMBERS[7], from_=SENDER, body="One too many")

    codes = {
        "invalid_to": (invalid_to.code, invalid_to.status),
        "not_owned": (not_owned.code, not_owned.status),
        "unsubscribed": (unsubscribed.code, unsubscribed.status),
        "no_body": (no_body.code, no_body.status),
        "bad_callback": (bad_callback.code, bad_callback.status),
        "unscheduled": (unscheduled.code, unscheduled.status),
        "too_soon": (too_soon.code, too_soon.status),
        "no_validity": (no_validity.code, no_validity.status),
        "missing": (missing.value.code, missing.value.status),
        "unauthenticated": (unauthenticated.value.code, unauthenticated.value.status),
        "overflow": (overflow.code, overflow.status),
    }
    assert codes == {
        "invalid_to": (21211, 400),
        "not_owned": (21606, 400),
        "unsubscribed": (21610, 400),
        "no_body": (21602, 400),
        "bad_callback": (21609, 400),
        "unscheduled": (35111, 400),
        "too_soon": (35114, 400),
        "no_validity": (21624, 400),
        "missing": (20404, 404),
        "unauthenticated": (20003, 401),
        "overflow": (21611, 400),
    }
    raw = httpx.post(
        f"{server}/2010-04-01/Accounts/{account['sid']}/Messages.json",
        data={"To": "+4412", "From": SENDER, "Body": "Hi"},
        auth=(account["sid"], account["api_token"]),
    )
    as_json = httpx.post(
        f"{server}/2010-04-01/Accounts/{account['sid']}/Messages.json",
        json={"To": NUMBERS[4], "From": SENDER, "Body": "JSON is not what Twilio's API takes"},
        auth=(account["sid"], account["api_token"]),
    )
    assert (as_json.status_code, as_json.json()["code"]) == (415, 20001)  # Twilio's shape, not problem+json
    assert raw.json() == {
        "code": 21211,
        "message": "The 'To' number +4412 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    # Only the one accepted message was written: the refusals changed nothing.
    rows = conn.execute("SELECT phone_number FROM sms_delivery_logs").fetchall()
    assert [row["phone_number"] for row in rows] == [NUMBERS[6]]


def test_another_accounts_sid_or_message_is_not_reachable(
    client: Client, account: dict[str, Any], api: Api, admin: dict[str, Any], other_user: dict[str, Any], server: str
) -> None:
    give_credits(api, admin, other_user, 10)
    other_token = create_token(api, other_user["token"], "messages:send", "messages:read")["token"]
    other_sid = api.request("GET", "/v1/users/me", token=other_user["token"]).json()["twilio_account_sid"]
    theirs = Client(other_sid, other_token)
    theirs.api.base_url = server
    message = theirs.messages.create(to=NUMBERS[8], messaging_service_sid="MG" + other_sid[2:], body="Private")

    with pytest.raises(TwilioRestException) as fetched:
        client.messages(message.sid).fetch()
    mixed = Client(account["sid"], other_token)  # a valid token, for another account's sid
    mixed.api.base_url = server
    with pytest.raises(TwilioRestException) as mismatched:
        mixed.messages(message.sid).fetch()

    misnamed = Client("AC" + "0" * 32, other_token, account_sid=other_sid)  # right URL, wrong Basic username
    misnamed.api.base_url = server
    with pytest.raises(TwilioRestException) as misnamed_fetch:
        misnamed.messages(message.sid).fetch()

    assert (fetched.value.code, fetched.value.status) == (20404, 404)
    assert (mismatched.value.code, mismatched.value.status) == (20003, 401)
    assert (misnamed_fetch.value.code, misnamed_fetch.value.status) == (20003, 401)
    assert theirs.messages(message.sid).fetch().body == "Private"


def test_a_token_needs_messages_send_to_send_and_messages_read_to_read(
    client: Client, account: dict[str, Any], api: Api, server: str
) -> None:
    reader = create_token(api, account["token"], "messages:read")["token"]
    sender = create_token(api, account["token"], "messages:send")["token"]
    readers, senders = Client(account["sid"], reader), Client(account["sid"], sender)
    readers.api.base_url = senders.api.base_url = server
    sent = senders.messages.create(to=NUMBERS[0], from_=SENDER, body="Only a sender may send this")

    with pytest.raises(TwilioRestException) as refused_send:
        readers.messages.create(to=NUMBERS[0], from_=SENDER, body="A reader may not")
    with pytest.raises(TwilioRestException) as refused_read:
        senders.messages(sent.sid).fetch()

    assert (refused_send.value.code, refused_send.value.status) == (20403, 403)
    assert (refused_read.value.code, refused_read.value.status) == (20403, 403)
    assert readers.messages(sent.sid).fetch().body == "Only a sender may send this"


@pytest.mark.parametrize("header", ["Basic ü", "Basic !!!!", "Basic " + "w4g=", "Basic QUNhYmM6", "Bearer sk_live_x"])
def test_a_malformed_basic_credential_is_twilios_20003_not_an_error(
    account: dict[str, Any], server: str, header: str
) -> None:
    answer = httpx.get(
        f"{server}/2010-04-01/Accounts/{account['sid']}/Messages.json",
        headers={"Authorization": header.encode()},  # bytes: "ü" goes as UTF-8, as a client might send it
    )

    assert answer.status_code == 401
    assert answer.json()["code"] == 20003


NODE_SCRIPT = """
const twilio = require('twilio');
const [sid, token, baseUrl, to, from] = process.argv.slice(2);
const client = twilio(sid, token);
client.api.baseUrl = baseUrl;
(async () => {
  const created = await client.messages.create({to, from, body: 'Node says hi — 20% off 🎉'});
  const fetched = await client.messages(created.sid).fetch();
  let code = null;
  try { await client.messages.create({to: '+4412', from, body: 'x'}); } catch (e) { code = e.code; }
  console.log(JSON.stringify({sid: created.sid, status: fetched.status, body: fetched.body, code}));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.fixture(scope="session")
def twilio_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("Node.js is not installed")
    where = tmp_path_factory.mktemp("twilio-node")
    installed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "twilio@5.10.6"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if installed.returncode != 0:
        pytest.skip(f"npm could not install twilio: {installed.stderr[-300:]}")
    (where / "send.js").write_text(NODE_SCRIPT)
    return where


def test_the_node_sdk_creates_and_fetches(
    twilio_node: Path, account: dict[str, Any], server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    run = subprocess.run(
        ["node", "send.js", account["sid"], account["api_token"], server, NUMBERS[9], SENDER],
        cwd=twilio_node,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["sid"].startswith("SM")
    assert (outcome["status"], outcome["body"], outcome["code"]) == ("queued", "Node says hi — 20% off 🎉", 21211)
