"""Scenario builders over the API: credits, groups of people, campaigns, balances."""

import uuid
from typing import Any

from tests.support.harness import Api


def give_credits(api: Api, admin: dict[str, Any], user: dict[str, Any], credits: int) -> None:
    response = api.request(
        "POST", f"/v1/users/{user['id']}/credits", token=admin["token"], json_body={"credits": credits}
    )
    assert response.status < 300, response.body


def register_sender_id(
    api: Api, admin: dict[str, Any], user: dict[str, Any], sender_id: str, kind: str = "alphanumeric", **extra: Any
) -> dict[str, Any]:
    """An operator verifies a sender id for the account."""
    response = api.request(
        "POST",
        f"/v1/users/{user['id']}/sender-ids",
        token=admin["token"],
        json_body={"sender_id": sender_id, "kind": kind, **extra},
    )
    assert response.status == 201, response.body
    return dict(response.json())


def make_group(api: Api, token: str, name: str, people: list[dict[str, Any]]) -> str:
    group = api.request("POST", "/v1/groups", token=token, json_body={"name": name}).json()
    ids = []
    for person in people:
        created = api.request("POST", "/v1/contacts", token=token, json_body=person)
        contact = created.json() if created.status == 201 else find_contact(api, token, person["phone_number"])
        ids.append(contact["id"])
    api.request("POST", f"/v1/groups/{group['id']}/members", token=token, json_body={"contact_ids": ids})
    return str(group["id"])


def find_contact(api: Api, token: str, number: str) -> dict[str, Any]:
    found = api.request("GET", f"/v1/contacts?q={number.replace('+', '%2B')}", token=token).json()["data"]
    return dict(found[0])


def make_campaign(
    api: Api, token: str, groups: list[str], template: str = "Hi {{first_name|there}}!", **extra: Any
) -> str:
    body = {"name": "Launch", "message_template": template, "group_ids": groups, **extra}
    response = api.request("POST", "/v1/campaigns", token=token, json_body=body)
    assert response.status == 201, response.body
    return str(response.json()["id"])


def balance_of(api: Api, token: str) -> int:
    return int(api.request("GET", "/v1/users/me", token=token).json()["sms_credits"])


PEOPLE = [
    {"phone_number": "+447400123101", "first_name": "Ann"},
    {"phone_number": "+447400123102", "first_name": "Ben", "custom_fields": {"plan": "gold"}},
    {"phone_number": "+447400123103"},
    {"phone_number": "+447400123104", "first_name": "Dee"},
    {"phone_number": "+447400123105", "first_name": "Eve"},
    {"phone_number": "+447400123106", "first_name": "Fay"},
]


def leave_idle(conn: Any, minutes: int, where: str = "TRUE") -> None:
    """Messages left alone for `minutes`, as the recovery sweep sees it: nothing has written them since
    (`updated_at`), nor put them in a queue (`idle_since`, and their open batch's, the sweep's bound)."""
    conn.execute(
        f"""WITH aged AS (
               UPDATE sms_delivery_logs SET updated_at = now() - make_interval(mins => %(m)s),
                                            idle_since = now() - make_interval(mins => %(m)s)
                WHERE {where}
            RETURNING coalesce(campaign_id, request_id) AS reference_id, batch_number)
            UPDATE send_batches b SET idle_since = now() - make_interval(mins => %(m)s)
              FROM (SELECT DISTINCT reference_id, batch_number FROM aged) a
             WHERE b.reference_id = a.reference_id AND b.batch_number = a.batch_number""",
        {"m": minutes},
    )


def insert_recorded(conn: Any, columns: dict[str, Any]) -> None:
    """A message row as a sender records it (an API send's, unless `columns` say otherwise), with the
    provider's id that receipts and replies find it by (sql/0027)."""
    values = {"request_id": uuid.uuid4(), "status": "sent", **columns}
    names = ", ".join(values)
    placeholders = ", ".join(f"%({name})s" for name in values)
    conn.execute(
        f"""WITH recorded AS (
               INSERT INTO sms_delivery_logs ({names}) VALUES ({placeholders})
            RETURNING provider, external_message_id, id, created_at)
            INSERT INTO provider_message_ids (provider, external_id, message_id, created_at)
            SELECT * FROM recorded""",
        values,
    )
