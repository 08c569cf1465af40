"""A newcomer's first session, over HTTP against the local stack."""

import json
import re
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from local.template import load_yaml
from tests.support.local_stack import StackFactory, StackProcess
from tests.support.paths import ROOT

pytestmark = pytest.mark.e2e


def _signup(client: httpx.Client, username: str, password: str = "correct horse battery") -> httpx.Response:
    return client.post(
        "/v1/auth/signup", json={"username": username, "email": f"{username}@example.com", "password": password}
    )


def test_the_printed_curl_examples_work_as_printed(stack: StackProcess) -> None:
    health = subprocess.run(  # noqa: S602  # the banner's own command line, on loopback
        stack.banner_value("Try it:"), shell=True, capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(health.stdout) == {"status": "ok", "database": "ok"}

    lines = stack.output.splitlines()
    start = next(index for index, line in enumerate(lines) if "Sign up:" in line)
    command = (lines[start].split("Sign up:", 1)[1].rstrip("\\") + lines[start + 1]).replace("alice", "bannerexample")
    signup = subprocess.run(command, shell=True, capture_output=True, text=True, check=True, timeout=30)  # noqa: S602
    assert '"username":"bannerexample"' in signup.stdout.replace(" ", "")


def test_sign_up_log_in_and_read_the_profile(client: httpx.Client) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    created = _signup(client, name)
    assert created.status_code == 201

    login = client.post("/v1/auth/login", json={"login": name, "password": "correct horse battery"})
    assert login.status_code == 200
    token = login.json()["access_token"]

    me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["id"] == created.json()["id"]


def test_the_documented_errors_over_http(client: httpx.Client) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    assert _signup(client, name).status_code == 201

    duplicate = client.post(
        "/v1/auth/signup",
        json={"username": f"other{name}", "email": f"{name}@example.com", "password": "correct horse battery"},
    )
    wrong = client.post("/v1/auth/login", json={"login": name, "password": "definitely wrong"})
    anonymous = client.get("/v1/users/me")

    assert (duplicate.status_code, wrong.status_code, anonymous.status_code) == (409, 401, 401)
    for response in (duplicate, wrong, anonymous):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]

    # A method API Gateway has no route for is a JSON 404 there, not http.server's 501 page.
    trace = client.request("TRACE", "/v1/contacts")
    assert (trace.status_code, trace.json()) == (404, {"message": "Not Found"})


def test_docs_and_openapi_are_served(client: httpx.Client) -> None:
    document = client.get("/v1/openapi.json")
    page = client.get("/v1/docs")

    assert document.status_code == 200
    assert {"/v1/auth/signup", "/v1/auth/login", "/v1/users/me", "/v1/health"} <= set(document.json()["paths"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text
    assert 'url: "openapi.json"' in page.text


def test_the_operator_account_can_log_in_with_the_printed_password(client: httpx.Client, stack: StackProcess) -> None:
    printed = stack.banner_value("Operator account created:")
    password = printed.split("password", 1)[1].strip()

    login = client.post("/v1/auth/login", json={"login": "admin", "password": password})
    me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})

    assert me.json()["role"] == "admin"


def test_a_route_the_handlers_have_but_the_template_lacks_is_not_served(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    template = load_yaml(ROOT / "template.yaml")
    del template["Resources"]["UsersFunction"]["Properties"]["Events"]["GetMe"]
    trimmed = tmp_path / "template.yaml"
    trimmed.write_text(yaml.safe_dump(template))

    stack = stack_factory.start(template=trimmed)
    with httpx.Client(base_url=stack.base_url) as http:
        missing = http.get("/v1/users/me", headers={"Authorization": "Bearer whatever"})
        assert http.get("/v1/health").status_code == 200
    stack.stop()

    assert missing.status_code == 404
    assert missing.json() == {"message": "Not Found"}


def test_data_survives_a_restart_and_ctrl_c_stops_everything(stack_factory: StackFactory) -> None:
    first = stack_factory.start()
    with httpx.Client(base_url=first.base_url) as http:
        assert _signup(http, "persistent").status_code == 201

    second = stack_factory.restart(first)
    assert first.process is not None
    assert first.process.returncode == 0
    with httpx.Client(base_url=second.base_url) as http:
        login = http.post("/v1/auth/login", json={"login": "persistent", "password": "correct horse battery"})
    assert login.status_code == 200
    # The operator password is printed on the first start only (each start logs to its own file).
    assert first.output.count("Operator account created") == 1
    assert "Operator account created" not in second.output.split("running at")[-1]

    assert second.stop() == 0
    pgdata = str(second.data_dir / "postgres")
    leftovers = [p for p in psutil.process_iter(["name", "cmdline"]) if pgdata in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_an_integrator_gets_credits_and_an_api_token(client: httpx.Client, stack: StackProcess) -> None:
    operator_password = stack.banner_value("Operator account created:").split("password", 1)[1].strip()
    operator = client.post("/v1/auth/login", json={"login": "admin", "password": operator_password}).json()
    name = f"u{uuid.uuid4().hex[:8]}"
    account = _signup(client, name).json()
    session = client.post("/v1/auth/login", json={"login": name, "password": "correct horse battery"}).json()

    topped_up = client.post(
        f"/v1/users/{account['id']}/credits",
        json={"credits": 1000, "amount": "50.00", "payment_method": "invoice"},
        headers={"Authorization": f"Bearer {operator['access_token']}"},
    )
    created = client.post(
        "/v1/tokens",
        json={"name": "crm integration", "permissions": ["billing:read"]},
        headers={"Authorization": f"Bearer {session['access_token']}"},
    ).json()
    token_headers = {"Authorization": f"Bearer {created['token']}"}
    ledger = client.get("/v1/billing/transactions", headers=token_headers)
    forbidden = client.get("/v1/tokens", headers=token_headers)
    client.delete(f"/v1/tokens/{created['id']}", headers={"Authorization": f"Bearer {session['access_token']}"})
    revoked = client.get("/v1/billing/transactions", headers=token_headers)

    assert topped_up.status_code == 201
    assert ledger.json()["data"][0]["credits_after"] == 1000
    assert forbidden.status_code == 403
    assert revoked.status_code == 401


def test_contacts_arrive_by_csv_upload_and_land_in_a_group(client: httpx.Client) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    _signup(client, name)
    session = client.post("/v1/auth/login", json={"login": name, "password": "correct horse battery"}).json()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    group = client.post("/v1/groups", json={"name": "newsletter"}, headers=auth).json()

    posted = client.post(
        f"/v1/contacts/imports?group_id={group['id']}&default_region=GB",
        content="phone;first_name\n07400 000001;Ada\n07400 000002;Grace\nnope;Bad\n",
        headers={**auth, "content-type": "text/csv"},
    ).json()
    upload = client.post("/v1/contacts/imports", json={"upload": True, "group_id": group["id"]}, headers=auth).json()
    put = httpx.put(upload["upload_url"], content=b"phone\n+447400000003\n", headers={"content-type": "text/csv"})

    def finished(import_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            state = client.get(f"/v1/contacts/imports/{import_id}", headers=auth).json()
            if state["status"] in ("completed", "failed") or time.monotonic() > deadline:
                return dict(state)
            time.sleep(0.2)

    first, second = finished(posted["import_id"]), finished(upload["import_id"])

    assert put.status_code == 200
    assert (first["status"], first["imported"], first["invalid"]) == ("completed", 2, 1)
    assert first["errors"] == [{"row": 4, "reason": "phone number 'nope' is not a phone number"}]
    assert (second["status"], second["imported"]) == ("completed", 1)
    listed = client.get(f"/v1/contacts?group_id={group['id']}", headers=auth).json()["data"]
    assert sorted(c["phone_number"] for c in listed) == ["+447400000001", "+447400000002", "+447400000003"]
    assert client.get(f"/v1/groups/{group['id']}", headers=auth).json()["total_contacts"] == 3


def test_a_personalised_campaign_reaches_each_recipient_once(client: httpx.Client, stack: StackProcess) -> None:
    operator_password = stack.banner_value("Operator account created:").split("password", 1)[1].strip()
    operator = client.post("/v1/auth/login", json={"login": "admin", "password": operator_password}).json()
    name = f"u{uuid.uuid4().hex[:8]}"
    account = _signup(client, name).json()
    session = client.post("/v1/auth/login", json={"login": name, "password": "correct horse battery"}).json()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    client.post(
        f"/v1/users/{account['id']}/credits",
        json={"credits": 100},
        headers={"Authorization": f"Bearer {operator['access_token']}"},
    )
    customers = client.post("/v1/groups", json={"name": "customers"}, headers=auth).json()
    newsletter = client.post("/v1/groups", json={"name": "newsletter"}, headers=auth).json()
    for group, rows in (
        (customers, "phone,first_name,city\n07400 100001,Ada,Leeds\n07400 100002,Grace,York\n07400 100003,,Bath\n"),
        (newsletter, "phone,first_name,city\n07400 100003,,Bath\n07400 100004,Alan,Hull\n07400 100005,Joan,Ely\n"),
    ):
        started = client.post(
            f"/v1/contacts/imports?group_id={group['id']}&default_region=GB",
            content=rows,
            headers={**auth, "content-type": "text/csv"},
        ).json()
        _wait(lambda started=started: client.get(f"/v1/contacts/imports/{started['import_id']}", headers=auth).json(),
              lambda state: state["status"] == "completed")  # fmt: skip
    client.post("/v1/opt-outs", json={"phone_number": "+447400100005"}, headers=auth)
    template = "Hi {{first_name|friend}}, see you in {{custom_fields.city}}!"
    soon = client.post(
        "/v1/campaigns",
        json={"name": "later", "message_template": "Reminder", "group_ids": [customers["id"]],
              "scheduled_time": (datetime.now(UTC) + timedelta(seconds=5)).isoformat()},
        headers=auth,
    ).json()  # fmt: skip
    campaign = client.post(
        "/v1/campaigns",
        json={"name": "spring", "message_template": template, "group_ids": [customers["id"], newsletter["id"]]},
        headers=auth,
    ).json()

    sent = client.post(f"/v1/campaigns/{campaign['id']}/send", headers=auth)
    done = _wait(lambda: client.get(f"/v1/campaigns/{campaign['id']}", headers=auth).json(),
                 lambda state: state["status"] == "completed")  # fmt: skip
    stats = _wait(lambda: client.get(f"/v1/campaigns/{campaign['id']}/stats", headers=auth).json(),
                  lambda state: state["delivered"] == 4)  # fmt: skip  # receipts arrive through the webhook
    messages = client.get(f"/v1/campaigns/{campaign['id']}/messages", headers=auth).json()["data"]
    # Due 5 s after it was made; once due, SIGUSR1 runs the stack's schedules at once instead of at the next
    # minute (the test waited 60-120 s for that tick).
    time.sleep(max(0.0, (datetime.fromisoformat(soon["scheduled_time"]) - datetime.now(UTC)).total_seconds()) + 0.5)
    assert stack.process is not None
    stack.process.send_signal(signal.SIGUSR1)
    later = _wait(lambda: client.get(f"/v1/campaigns/{soon['id']}", headers=auth).json(),
                  lambda state: state["status"] == "completed", timeout=30)  # fmt: skip

    assert sent.status_code == 202
    assert done["total_recipients"] == 4
    assert sorted((m["to"], m["body"], m["status"]) for m in messages) == [
        ("+447400100001", "Hi Ada, see you in Leeds!", "delivered"),
        ("+447400100002", "Hi Grace, see you in York!", "delivered"),
        ("+447400100003", "Hi friend, see you in Bath!", "delivered"),
        ("+447400100004", "Hi Alan, see you in Hull!", "delivered"),
    ]
    assert all(m["external_id"] and m["provider"] == "simulator" for m in messages)
    assert stats["total"] == 4
    assert stats["credits_reserved"] == stats["credits_spent"] + stats["credits_refunded"] == 4
    assert (later["status"], later["total_recipients"]) == ("completed", 3)  # released by the scheduler's tick
    balance = client.get("/v1/users/me", headers=auth).json()["sms_credits"]
    assert balance == 100 - 4 - 3
    # The console told the story: the requests, the release and the completion, the imports.
    short = campaign["id"][:8]
    console = _wait(
        lambda: {"text": stack.output}, lambda out: f"campaign {short} completed: 4 credits spent" in out["text"]
    )
    assert re.search(rf"campaign {short} released: 4 recipients, 4 credits reserved, \d batch(es)?\n", console["text"])
    assert re.search(rf"\d\d:\d\d:\d\d POST   /v1/campaigns/{campaign['id']}/send 202 \d+ ms", console["text"])
    assert console["text"].count(" imported, 0 invalid") >= 2


def test_the_console_shows_a_line_per_request_and_the_json_logs_go_to_a_file(
    client: httpx.Client, stack: StackProcess
) -> None:
    client.get("/v1/health")
    client.get("/v1/no-such-route?to=%2B447400100001")
    lines = _wait(lambda: {"text": stack.output}, lambda out: "GET    /v1/no-such-route 404" in out["text"])["text"]
    log = (stack.data_dir / "logs" / "platform.log").read_text()

    assert re.search(r"^\d\d:\d\d:\d\d GET    /v1/health 200 \d+ ms$", lines, re.MULTILINE)
    assert "%2B447400100001" not in lines  # the query is not shown: it may hold numbers
    assert not [line for line in lines.splitlines() if line.lstrip().startswith(("{", "Traceback"))]
    assert "Warning" not in lines
    assert "WARNING" not in lines
    assert '"message":"request"' in log.replace(" ", "")
    assert '"CloudWatchMetrics"' in log


def _wait(read: Any, done: Any, timeout: float = 60) -> dict[str, Any]:
    """The state once `done` holds; fails the test, showing the last state, if it does not within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        state = read()
        if done(state):
            return dict(state)
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout:.0f} s; the last state read was {state!r}")
        time.sleep(0.2)


def test_a_recipients_stop_and_the_signed_status_callbacks_work_locally(
    client: httpx.Client, stack: StackProcess
) -> None:
    import hashlib
    import hmac
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, bytes]] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.headers["X-Signature"], self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    operator_password = stack.banner_value("Operator account created:").split("password", 1)[1].strip()
    operator = client.post("/v1/auth/login", json={"login": "admin", "password": operator_password}).json()
    name = f"u{uuid.uuid4().hex[:8]}"
    account = _signup(client, name).json()
    session = client.post("/v1/auth/login", json={"login": name, "password": "correct horse battery"}).json()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    client.post(f"/v1/users/{account['id']}/credits", json={"credits": 100},
                headers={"Authorization": f"Bearer {operator['access_token']}"})  # fmt: skip
    client.post(f"/v1/users/{account['id']}/sender-ids", json={"sender_id": "SHOP", "kind": "alphanumeric"},
                headers={"Authorization": f"Bearer {operator['access_token']}"})  # fmt: skip
    callback_url = f"http://127.0.0.1:{endpoint.server_address[1]}/sms"
    assert client.put("/v1/status-callback", json={"url": callback_url}, headers=auth).status_code == 200
    secret = client.post("/v1/status-callback/secret", headers=auth).json()["secret"]
    group = client.post("/v1/groups", json={"name": "shop"}, headers=auth).json()
    numbers = ["+447400200001", "+447400200002"]
    ids = [client.post("/v1/contacts", json={"phone_number": n}, headers=auth).json()["id"] for n in numbers]
    client.post(f"/v1/groups/{group['id']}/members", json={"contact_ids": ids}, headers=auth)

    def campaign() -> dict[str, Any]:
        body = {"name": "offers", "message_template": "Offer!", "group_ids": [group["id"]], "sender_id": "SHOP"}
        created = client.post("/v1/campaigns", headers=auth, json=body).json()
        client.post(f"/v1/campaigns/{created['id']}/send", headers=auth)
        return _wait(lambda: client.get(f"/v1/campaigns/{created['id']}", headers=auth).json(),
                     lambda state: state["status"] == "completed")  # fmt: skip

    first = campaign()
    _wait(lambda: {"n": len(received)}, lambda state: state["n"] == 4)  # sent and delivered, twice
    simulator_key = json.loads((stack.data_dir / "secrets.json").read_text())["SimulatorSigningSecret"]
    reply = json.dumps({"messages": [{"external_id": uuid.uuid4().hex, "from_number": numbers[0],
                                      "to_number": "SHOP", "body": " Stop "}]}).encode()  # fmt: skip
    signature = "sha256=" + hmac.new(simulator_key.encode(), reply, hashlib.sha256).hexdigest()
    signed = {"content-type": "application/json", "X-Simulator-Signature": signature}
    answered = client.post("/v1/webhooks/simulator/inbound", content=reply, headers=signed)
    opted_out = _wait(lambda: client.get("/v1/opt-outs", headers=auth).json(), lambda state: len(state["data"]) == 1)
    second = campaign()
    endpoint.shutdown()

    assert answered.status_code == 200
    assert [entry["phone_number"] for entry in opted_out["data"]] == [numbers[0]]
    assert (first["total_recipients"], second["total_recipients"]) == (2, 1)
    for header, body in received:
        assert hmac.compare_digest(header, hmac.new(secret.encode(), body, hashlib.sha256).hexdigest())
    assert sorted(json.loads(body)["status"] for _, body in received[:4]) == ["delivered", "delivered", "sent", "sent"]


def test_a_handset_texts_the_local_stack_and_gets_one_reply_the_integrator_sees_everywhere(
    client: httpx.Client, stack: StackProcess
) -> None:
    """`make inbound` (python -m local inbound) originates the messages; replies go out through the pipeline."""
    import hashlib
    import hmac
    import os
    import sys

    from smsplatform.providers import simulator
    from smsplatform.sending import keywords
    from tests.support.endpoints import Endpoint

    operator_password = stack.banner_value("Operator account created:").split("password", 1)[1].strip()
    operator = client.post("/v1/auth/login", json={"login": "admin", "password": operator_password}).json()
    as_operator = {"Authorization": f"Bearer {operator['access_token']}"}
    name = f"u{uuid.uuid4().hex[:8]}"
    account = _signup(client, name).json()
    session = client.post("/v1/auth/login", json={"login": name, "password": "correct horse battery"}).json()
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    number, handset = "+447400300001", "+447400300002"
    client.post(f"/v1/users/{account['id']}/credits", json={"credits": 10}, headers=as_operator)
    client.post(f"/v1/users/{account['id']}/sender-ids", json={"sender_id": number, "kind": "number"},
                headers=as_operator)  # fmt: skip
    contact = client.post("/v1/contacts", json={"phone_number": handset, "first_name": "Zoë"}, headers=auth).json()
    endpoint = Endpoint()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"}
    try:
        assert client.put("/v1/inbound-callback", json={"url": endpoint.url}, headers=auth).status_code == 200
        secret = client.post("/v1/status-callback/secret", headers=auth).json()["secret"]
        texted = [
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "local",
                    "inbound",
                    "--data-dir",
                    str(stack.data_dir),
                    "--from",
                    handset,
                    "--to",
                    number,
                    text,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            for text in ("Help", "¿Abren el domingo? 🙏")
        ]
        key = json.loads((stack.data_dir / "secrets.json").read_text())["SimulatorSigningSecret"]
        stop = simulator.inbound_body(handset, number, "Stopp", external_id=f"MO{uuid.uuid4().hex}")
        statuses = [simulator.originate(stack.base_url, key, stop) for _ in range(3)]  # the carrier retries

        def history() -> dict[str, Any]:
            return {"data": client.get("/v1/messages", headers=auth).json()["data"]}

        sent = _wait(history, lambda state: sorted(m["status"] for m in state["data"]) == ["delivered"] * 2)
        _wait(lambda: {"n": len(endpoint.received)}, lambda state: state["n"] == 3)
        time.sleep(2)  # anything sent twice would have arrived by now
        sent = history()
        inbound = client.get("/v1/inbound-messages", headers=auth).json()["data"]
        conversation = client.get(f"/v1/contacts/{contact['id']}/conversation", headers=auth).json()["data"]
        received = list(endpoint.received)
    finally:
        endpoint.stop()

    assert [run.returncode for run in texted] == [0, 0], [run.stderr for run in texted]
    assert statuses == [200, 200, 200]
    assert sorted(m["body"] for m in sent["data"]) == sorted(
        [keywords.DEFAULT_REPLIES["help"], keywords.DEFAULT_REPLIES["opt_out"]]
    )
    assert {(m["to"], m["sender_id"]) for m in sent["data"]} == {(handset, number)}
    assert [(m["body"], m["keyword"], m["contact_id"]) for m in inbound] == [
        ("Stopp", "opt_out", contact["id"]),
        ("¿Abren el domingo? 🙏", None, contact["id"]),
        ("Help", "help", contact["id"]),
    ]
    assert len(received) == 3
    for headers, body in received:
        assert headers["x-signature"] == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert {json.loads(body)["event"] for _, body in received} == {"message.inbound"}
    assert [item["direction"] for item in conversation].count("inbound") == 3
    assert [item["direction"] for item in conversation].count("outbound") == 2
