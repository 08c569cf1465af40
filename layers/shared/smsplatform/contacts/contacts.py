"""Contacts: one E.164 number per account, with names, e-mail and custom fields."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg import Connection, errors, sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.contacts import phones
from smsplatform.core import audit, db, pagination
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import ConflictError, FieldError, InvalidInputError, NotFoundError
from smsplatform.core.pagination import Cursor, Page, page_of

MAX_CUSTOM_FIELDS = 50
MAX_CUSTOM_VALUE_CHARACTERS = 500  # a value is text for a message: no more than a third of the longest one
CUSTOM_FIELD_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_COLUMNS = """c.id, c.phone_number, c.country_code, c.timezone, c.first_name, c.last_name, c.email, c.custom_fields,
              c.status, c.created_at, c.updated_at,
              coalesce((SELECT array_agg(m.group_id ORDER BY m.group_id) FROM contact_group_members m
                         WHERE m.contact_id = c.id), '{}') AS group_ids"""


ContactStatus = Literal["active", "unsubscribed", "invalid"]


@dataclass(frozen=True)
class Contact:
    id: UUID
    phone_number: str
    country_code: str | None
    timezone: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    custom_fields: dict[str, Any]
    status: ContactStatus
    created_at: datetime
    updated_at: datetime
    group_ids: list[UUID]

    @classmethod
    def from_row(cls, row: DictRow) -> "Contact":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def check_custom_fields(fields: dict[str, Any], field: str = "custom_fields") -> None:
    """Keys that templates can name ({{custom_fields.key}}), scalar values of at most 500 characters."""
    if len(fields) > MAX_CUSTOM_FIELDS:
        raise InvalidInputError(
            f"At most {MAX_CUSTOM_FIELDS} custom fields.", errors=[FieldError(field, "has too many keys")]
        )
    problems = (
        [
            FieldError(f"{field}.{key}", "keys are lower-case letters, digits and _, starting with a letter")
            for key in fields
            if not CUSTOM_FIELD_KEY.match(key)
        ]
        + [
            FieldError(f"{field}.{key}", "values are strings, numbers, booleans or null")
            for key, value in fields.items()
            if isinstance(value, dict | list)
        ]
        + [
            FieldError(f"{field}.{key}", f"values have at most {MAX_CUSTOM_VALUE_CHARACTERS} characters")
            for key, value in fields.items()
            if isinstance(value, str) and len(value) > MAX_CUSTOM_VALUE_CHARACTERS
        ]
    )
    if problems:
        raise InvalidInputError("Some custom fields are not usable.", errors=problems)


def _owned_groups(conn: Connection[DictRow], user_id: UUID, group_ids: list[UUID]) -> None:
    if not group_ids:
        return
    found = conn.execute(
        "SELECT count(*) AS n FROM contact_groups WHERE user_id = %s AND id = ANY(%s)", (user_id, list(set(group_ids)))
    ).fetchone()
    if found is None or found["n"] != len(set(group_ids)):
        raise NotFoundError("One or more of the groups do not exist.")


def _fetch(conn: Connection[DictRow], user_id: UUID, contact_id: UUID) -> Contact:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM contacts c WHERE c.user_id = %s AND c.id = %s", (user_id, contact_id)
    ).fetchone()
    if row is None:
        raise NotFoundError("No such contact.")
    return Contact.from_row(row)


def create_contact(
    conn: Connection[DictRow],
    user_id: UUID,
    meta: RequestMeta,
    *,
    phone_number: str,
    country_code: str | None,
    first_name: str | None,
    last_name: str | None,
    email: str | None,
    custom_fields: dict[str, Any],
    group_ids: list[UUID],
    timezone: str | None = None,
) -> Contact:
    """A number on the account's opt-out list is stored as unsubscribed."""
    check_custom_fields(custom_fields)
    _owned_groups(conn, user_id, group_ids)
    try:
        with conn.transaction():
            row = conn.execute(
                """INSERT INTO contacts (user_id, phone_number, country_code, first_name, last_name, email,
                                         custom_fields, timezone, number_time_zones, status)
                   SELECT %(user)s::uuid, %(phone)s::varchar, %(country)s, %(first)s, %(last)s, %(email)s,
                          %(fields)s, %(timezone)s, %(zones)s,
                          CASE WHEN EXISTS (SELECT 1 FROM opt_outs WHERE user_id = %(user)s::uuid
                                                                     AND phone_number = %(phone)s::varchar)
                               THEN 'unsubscribed' ELSE 'active' END
                   RETURNING id""",
                {
                    "user": user_id,
                    "phone": phone_number,
                    "country": country_code,
                    "first": first_name,
                    "last": last_name,
                    "email": email,
                    "fields": Jsonb(custom_fields),
                    "timezone": timezone,
                    "zones": phones.time_zones(phone_number),
                },
            ).fetchone()
    except errors.UniqueViolation as exc:
        raise ConflictError(
            f"A contact with the number {phone_number} already exists.",
            errors=[FieldError("phone_number", "is already a contact")],
        ) from exc
    assert row is not None
    if group_ids:
        conn.execute(
            "INSERT INTO contact_group_members (group_id, contact_id) SELECT unnest(%s::uuid[]), %s",
            (list(set(group_ids)), row["id"]),
        )
    audit.record(conn, user_id, "contact.create", {"contact_id": str(row["id"])}, meta)
    return _fetch(conn, user_id, row["id"])


def account_region(conn: Connection[DictRow], user_id: UUID) -> str | None:
    """The region of the account's own phone number: the default for numbers without a country code."""
    row = conn.execute("SELECT phone_number FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None or not row["phone_number"]:
        return None
    return phones.region_of(row["phone_number"])


def get_contact(conn: Connection[DictRow], user_id: UUID, contact_id: UUID) -> Contact:
    return _fetch(conn, user_id, contact_id)


def list_contacts(
    conn: Connection[DictRow],
    user_id: UUID,
    limit: int,
    cursor: Cursor | None,
    *,
    group_id: UUID | None = None,
    status: str | None = None,
    query: str | None = None,
) -> Page[Contact]:
    """Newest first. `query` matches a number prefix (with or without +) or a first/last name prefix."""
    keyset, params = pagination.after(cursor, "c")
    conditions = ["c.user_id = %(user)s"]
    if group_id is not None:
        conditions.append(
            "EXISTS (SELECT 1 FROM contact_group_members m WHERE m.contact_id = c.id AND m.group_id = %(group)s)"
        )
    if status is not None:
        conditions.append("c.status = %(status)s")
    if query:
        digits = re.sub(r"[\s\-().]", "", query)
        if re.fullmatch(r"\+?\d+", digits):
            conditions.append("c.phone_number LIKE %(number)s")
            params["number"] = ("+" + digits.lstrip("+")) + "%"
        else:
            conditions.append("(lower(c.first_name) LIKE %(name)s OR lower(c.last_name) LIKE %(name)s)")
            params["name"] = _like_prefix(query.strip().lower())
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM contacts c WHERE {" AND ".join(conditions)} {keyset}
             ORDER BY c.created_at DESC, c.id DESC LIMIT %(limit)s""",
        {"user": user_id, "group": group_id, "status": status, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([Contact.from_row(row) for row in rows], limit)


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def update_contact(
    conn: Connection[DictRow], user_id: UUID, contact_id: UUID, changes: dict[str, Any], meta: RequestMeta
) -> Contact:
    """Changes the given fields; custom_fields is replaced whole. Status 'unsubscribed' comes from opt-outs."""
    current = _fetch(conn, user_id, contact_id)
    if "custom_fields" in changes:
        check_custom_fields(changes["custom_fields"])
        changes["custom_fields"] = Jsonb(changes["custom_fields"])
    if "status" in changes:
        opted_out = conn.execute(
            "SELECT 1 FROM opt_outs WHERE user_id = %s AND phone_number = %s",
            (user_id, changes.get("phone_number", current.phone_number)),
        ).fetchone()
        if changes["status"] == "unsubscribed" and not opted_out:
            raise InvalidInputError(
                "To unsubscribe a number, add it to /v1/opt-outs.",
                errors=[FieldError("status", "'unsubscribed' follows the opt-out list")],
            )
        if changes["status"] != "unsubscribed" and opted_out:
            raise ConflictError("This number is on the opt-out list; remove it from /v1/opt-outs first.")
    if not changes:
        return current
    if "phone_number" in changes:
        changes["number_time_zones"] = phones.time_zones(changes["phone_number"])
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("UPDATE contacts SET {}, updated_at = now() WHERE id = %(id)s AND user_id = %(user)s").format(
                    db.set_clause(changes)
                ),
                {**changes, "id": contact_id, "user": user_id},
            )
    except errors.UniqueViolation as exc:
        raise ConflictError(
            "Another contact already has this number.", errors=[FieldError("phone_number", "is already a contact")]
        ) from exc
    audit.record(conn, user_id, "contact.update", {"contact_id": str(contact_id), "changed": sorted(changes)}, meta)
    return _fetch(conn, user_id, contact_id)


_FILL_CHUNK = 5_000


def fill_number_time_zones(conn: Connection[DictRow], user_id: UUID) -> int:
    """Gives the account's contacts written before numbers carried their zones (0016), or written by hand
    in SQL, their zones and, if missing, their country, a chunk per statement, each committed; a no-op (one
    index probe) once every contact has them. A number libphonenumber cannot place keeps no country: it is
    unpriced, so nothing is sent to it."""
    filled = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                """SELECT id, phone_number FROM contacts WHERE user_id = %s AND number_time_zones IS NULL
                    LIMIT %s FOR UPDATE SKIP LOCKED""",
                (user_id, _FILL_CHUNK),
            ).fetchall()
            if not rows:
                return filled
            conn.execute(
                """UPDATE contacts c SET number_time_zones = z.zones, country_code = coalesce(c.country_code, z.country)
                     FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS z(id, zones, country) WHERE c.id = z.id""",
                (
                    [row["id"] for row in rows],
                    [phones.time_zones(row["phone_number"]) for row in rows],
                    [phones.region_of(row["phone_number"]) for row in rows],
                ),
            )
        filled += len(rows)


def delete_contact(conn: Connection[DictRow], user_id: UUID, contact_id: UUID, meta: RequestMeta) -> None:
    deleted = conn.execute(
        "DELETE FROM contacts WHERE id = %s AND user_id = %s RETURNING id", (contact_id, user_id)
    ).fetchone()
    if deleted is None:
        raise NotFoundError("No such contact.")
    audit.record(conn, user_id, "contact.delete", {"contact_id": str(contact_id)}, meta)
