"""CSV imports end to end in-process: API -> S3 (moto) -> notification -> SQS -> import function."""

import threading
import time
from typing import Any

import httpx
import psycopg

from local.pollers import SqsPoller
from tests.support.harness import Api


def _start(api: Api, token: str, csv_text: str | bytes, query: str = "") -> dict[str, Any]:
    body = csv_text.encode() if isinstance(csv_text, str) else csv_text
    response = api.request(
        "POST", f"/v1/contacts/imports{query}", token=token, raw_body=body, headers={"content-type": "text/csv"}
    )
    assert response.status == 202, response.body
    return dict(response.json())


def _run(worker: SqsPoller, api: Api, token: str, import_id: str) -> None:
    """Polls the import queue as Lambda would until the import has finished."""
    deadline = time.monotonic() + 60
    while _status(api, token, import_id)["status"] not in ("completed", "failed"):
        assert time.monotonic() < deadline, "the import did not finish"
        worker.poll_once()


def _status(api: Api, token: str, import_id: str) -> dict[str, Any]:
    return dict(api.request("GET", f"/v1/contacts/imports/{import_id}", token=token).json())


def _big_csv(rows: int) -> tuple[str, list[int]]:
    """Every 100th data row has a malformed number; returns the text and the bad rows' line numbers."""
    lines, bad = ["phone,first_name,last_name,plan"], []
    for n in range(rows):
        line_number = n + 2
        if n % 100 == 99:
            lines.append(f"12{n},Bad,Row{n},none")
            bad.append(line_number)
        else:
            lines.append(f"+4474{n:08d},First{n},Last{n},gold")
    return "\n".join(lines) + "\n", bad


def test_a_small_file_with_bom_semicolons_quotes_and_duplicates(
    api: Api, user: dict[str, Any], import_worker: SqsPoller, conn: psycopg.Connection[Any]
) -> None:
    csv_text = (
        "\ufeffMobile;First Name;last_name;Email;Favourite Colour;2nd line\n"
        '+447400000001;Ada;"Lovelace; Countess";ada@example.com;blue;x\n'
        '07400 000002;"Grace\nMurray";Hopper;;;\n'
        "not-a-number;Bad;Row;;;\n"
        "\n"
        "+447400000001;Ada;King;;green;\n"
        "+447400000003;Alan;Turing;not-an-email;;\n"
    )

    started = _start(api, user["token"], csv_text, "?default_region=GB")
    assert started["status"] == "pending"
    _run(import_worker, api, user["token"], started["import_id"])
    result = _status(api, user["token"], started["import_id"])

    assert result["status"] == "completed"
    assert (result["total_rows"], result["imported"], result["duplicates"], result["invalid"]) == (5, 2, 1, 2)
    assert result["ignored_columns"] == ["2nd line"]
    assert result["errors"] == [
        {"row": 5, "reason": "phone number 'not-a-number' is not a phone number"},
        {"row": 8, "reason": "email 'not-an-email' is not an e-mail address"},
    ]
    stored = {
        row["phone_number"]: row
        for row in conn.execute("SELECT phone_number, first_name, last_name, custom_fields FROM contacts")
    }
    assert set(stored) == {"+447400000001", "+447400000002"}
    assert stored["+447400000001"]["last_name"] == "King"  # the file's last line for a number wins
    assert stored["+447400000001"]["custom_fields"] == {"favourite_colour": "green"}
    assert stored["+447400000002"]["first_name"] == "Grace\nMurray"


def test_numbers_from_many_countries_in_their_own_formats_are_stored_as_e164(
    api: Api, user: dict[str, Any], import_worker: SqsPoller, conn: psycopg.Connection[Any]
) -> None:
    csv_text = (
        "phone,first_name\n"
        "(415) 555-2671,Ava\n"  # national, in the file's default region (US)
        "011 44 7400 000009,Olivia\n"  # the US international prefix, to the UK
        "+33 6 12 34 56 78,Chloé\n"
        "+49 1512 3456789,Jürgen\n"
        "+81 90-1234-5678,山田\n"
        "+91 98765 43210,Priya\n"
        "+55 11 91234-5678,João\n"
        "+234 803 123 4567,Chinedu\n"
        "+971 50 123 4567,محمد\n"
        "+61 412 345 678,Mia\n"
        "07400 000002,Not in the US\n"  # a UK national number read as American: invalid
        "+44 1234,Too short\n"
    )

    started = _start(api, user["token"], csv_text, "?default_region=US")
    _run(import_worker, api, user["token"], started["import_id"])
    result = _status(api, user["token"], started["import_id"])
    french = _start(api, user["token"], "phone,first_name\n06 12 34 56 78,Chloé\n", "?default_region=FR")
    _run(import_worker, api, user["token"], french["import_id"])

    rows = conn.execute("SELECT phone_number, first_name FROM contacts").fetchall()
    stored = {row["phone_number"]: row["first_name"] for row in rows}
    assert (result["imported"], result["invalid"]) == (10, 2)
    assert [error["row"] for error in result["errors"]] == [12, 13]
    assert stored == {
        "+14155552671": "Ava",
        "+447400000009": "Olivia",
        "+33612345678": "Chloé",
        "+4915123456789": "Jürgen",
        "+819012345678": "山田",
        "+919876543210": "Priya",
        "+5511912345678": "João",
        "+2348031234567": "Chinedu",
        "+971501234567": "محمد",
        "+61412345678": "Mia",
    }
    # The same French number written nationally in a French file is the contact already there.
    assert (_status(api, user["token"], french["import_id"])["unchanged"], len(stored)) == (1, 10)


def test_a_hundred_thousand_rows_with_one_percent_malformed(
    api: Api, user: dict[str, Any], import_worker: SqsPoller, conn: psycopg.Connection[Any]
) -> None:
    group = api.request("POST", "/v1/groups", token=user["token"], json_body={"name": "everyone"}).json()
    csv_text, bad_lines = _big_csv(100_000)
    started = _start(api, user["token"], csv_text, f"?group_id={group['id']}")
    seen: list[dict[str, Any]] = []

    def watch() -> None:
        while not seen or seen[-1]["status"] not in ("completed", "failed"):
            seen.append(_status(api, user["token"], started["import_id"]))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    _run(import_worker, api, user["token"], started["import_id"])
    watcher.join(timeout=60)
    result = seen[-1]

    assert result["status"] == "completed"
    assert (result["total_rows"], result["imported"], result["invalid"]) == (100_000, 99_000, 1_000)
    assert [error["row"] for error in result["errors"]] == bad_lines[:1000]
    assert conn.execute("SELECT count(*) AS n FROM contacts").fetchone()["n"] == 99_000
    assert api.request("GET", f"/v1/groups/{group['id']}", token=user["token"]).json()["total_contacts"] == 99_000
    assert any(s["status"] == "processing" and 0 < s["processed_rows"] < 100_000 for s in seen), "no progress seen"

    again = _start(api, user["token"], csv_text, f"?group_id={group['id']}")
    _run(import_worker, api, user["token"], again["import_id"])
    second = _status(api, user["token"], again["import_id"])

    assert (second["imported"], second["updated"], second["unchanged"], second["invalid"]) == (0, 0, 99_000, 1_000)
    changed = conn.execute("SELECT count(*) AS n FROM contacts WHERE updated_at <> created_at").fetchone()["n"]
    assert changed == 0
    assert api.request("GET", f"/v1/groups/{group['id']}", token=user["token"]).json()["total_contacts"] == 99_000


def test_a_large_file_goes_through_a_presigned_upload(api: Api, user: dict[str, Any], import_worker: SqsPoller) -> None:
    started = api.request(
        "POST", "/v1/contacts/imports", token=user["token"], json_body={"upload": True, "default_region": "GB"}
    ).json()

    assert started["status"] == "awaiting_upload"
    uploaded = httpx.put(started["upload_url"], content=b"phone\n07400 000009\n", headers={"content-type": "text/csv"})
    assert uploaded.status_code == 200
    _run(import_worker, api, user["token"], started["import_id"])

    result = _status(api, user["token"], started["import_id"])
    assert (result["status"], result["imported"]) == ("completed", 1)


def test_a_file_without_a_phone_column_fails_with_the_reason(
    api: Api, user: dict[str, Any], import_worker: SqsPoller
) -> None:
    started = _start(api, user["token"], "name,email\nAda,ada@example.com\n")
    _run(import_worker, api, user["token"], started["import_id"])

    result = _status(api, user["token"], started["import_id"])
    assert result["status"] == "failed"
    assert "phone column" in result["error_message"]


def test_a_redelivered_notification_does_not_import_twice(
    api: Api, user: dict[str, Any], import_worker: SqsPoller, conn: psycopg.Connection[Any]
) -> None:
    started = _start(api, user["token"], "phone\n+447400000001\n")
    _run(import_worker, api, user["token"], started["import_id"])
    from smsplatform.contacts.imports.runs import process_uploaded_file

    key = f"imports/{user['id']}/{started['import_id']}.csv"
    assert process_uploaded_file("ignored-bucket", key) is None
    assert _status(api, user["token"], started["import_id"])["imported"] == 1


def test_bad_import_requests_are_refused(api: Api, user: dict[str, Any], other_user: dict[str, Any]) -> None:
    token = user["token"]
    group = api.request("POST", "/v1/groups", token=token, json_body={"name": "g"}).json()

    def post(body: bytes, content_type: str, query: str = "", as_token: str = token) -> int:
        return api.request(
            "POST",
            f"/v1/contacts/imports{query}",
            token=as_token,
            raw_body=body,
            headers={"content-type": content_type},
        ).status

    assert post(b"", "text/csv") == 422
    assert post(b"phone\n1\n", "text/csv", "?default_region=XX") == 422
    assert post(b"phone\n1\n", "text/csv", f"?group_id={group['id']}", other_user["token"]) == 404
    assert post(b"<xml/>", "application/xml") == 415
    assert post(b'{"upload": false}', "application/json") == 422
    assert post(b"x" * (5 * 1024 * 1024 + 1), "text/csv") == 413
    other = api.request("GET", "/v1/contacts/imports/00000000-0000-4000-8000-000000000000", token=token)
    assert other.status == 404


def test_worker_processes_give_the_same_result_in_file_order(
    api: Api, user: dict[str, Any], import_worker: SqsPoller, conn: psycopg.Connection[Any], monkeypatch: Any
) -> None:
    from smsplatform.contacts.imports import normalisation, runs

    monkeypatch.setattr(runs, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(normalisation, "BATCH_ROWS", 7)
    assert runs.workers_for(1) > 1  # the run below does use worker processes
    lines = ["phone,first_name"] + [f"+4474000000{n % 40:02d},Name{n}" for n in range(100)] + ["bad,Row"]
    started = _start(api, user["token"], "\n".join(lines) + "\n")
    _run(import_worker, api, user["token"], started["import_id"])
    result = _status(api, user["token"], started["import_id"])

    assert (result["imported"], result["duplicates"], result["invalid"]) == (40, 60, 1)
    assert result["errors"] == [{"row": 102, "reason": "phone number 'bad' is not a phone number"}]
    # The last line of each number wins, as without workers: Name60 .. Name99.
    names = {row["first_name"] for row in conn.execute("SELECT first_name FROM contacts")}
    assert names == {f"Name{n}" for n in range(60, 100)}


def test_an_imported_contact_keeps_its_time_zone_and_its_numbers_zones(
    api: Api, user: dict[str, Any], import_worker: SqsPoller, conn: psycopg.Connection[Any]
) -> None:
    csv_text = (
        "phone,first_name,timezone\n"
        "+12025550123,Zoë,America/Chicago\n"  # a DC number whose owner lives in Chicago
        "+919876543210,प्रिया,\n"
        "+447400123101,Ann,Mars/Olympus_Mons\n"
    )

    started = _start(api, user["token"], csv_text)
    _run(import_worker, api, user["token"], started["import_id"])
    result = _status(api, user["token"], started["import_id"])
    rows = {
        row["phone_number"]: (row["country_code"], row["timezone"], row["number_time_zones"])
        for row in conn.execute("SELECT phone_number, country_code, timezone, number_time_zones FROM contacts")
    }

    assert (result["imported"], result["invalid"]) == (2, 1)
    assert result["errors"] == [
        {"row": 4, "reason": "timezone 'Mars/Olympus_Mons' is not an IANA time zone (e.g. Europe/London)"}
    ]
    assert rows == {
        "+12025550123": ("US", "America/Chicago", "America/New_York"),
        "+919876543210": ("IN", None, "Asia/Calcutta"),
    }
