"""Contact groups and their membership; total_contacts is kept exact by triggers (sql/0001)."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import Connection, errors, sql
from psycopg.rows import DictRow

from smsplatform.core import audit, db, pagination
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import ConflictError, FieldError, NotFoundError
from smsplatform.core.pagination import Cursor, Page, page_of

_COLUMNS = "id, name, description, total_contacts, created_at, updated_at"
MAX_MEMBERS_PER_REQUEST = 10_000


@dataclass(frozen=True)
class Group:
    id: UUID
    name: str
    description: str | None
    total_contacts: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: DictRow) -> "Group":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


def _name_taken(exc: errors.UniqueViolation, name: str) -> ConflictError:
    return ConflictError(f"A group named {name!r} already exists.", errors=[FieldError("name", "is already used")])


def create_group(
    conn: Connection[DictRow], user_id: UUID, name: str, description: str | None, meta: RequestMeta
) -> Group:
    try:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO contact_groups (user_id, name, description) VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
                (user_id, name, description),
            ).fetchone()
    except errors.UniqueViolation as exc:
        raise _name_taken(exc, name) from exc
    assert row is not None
    group = Group.from_row(row)
    audit.record(conn, user_id, "group.create", {"group_id": str(group.id), "name": name}, meta)
    return group


def get_group(conn: Connection[DictRow], user_id: UUID, group_id: UUID) -> Group:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM contact_groups WHERE id = %s AND user_id = %s", (group_id, user_id)
    ).fetchone()
    if row is None:
        raise NotFoundError("No such group.")
    return Group.from_row(row)


def list_groups(conn: Connection[DictRow], user_id: UUID, limit: int, cursor: Cursor | None) -> Page[Group]:
    keyset, params = pagination.after(cursor)
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM contact_groups WHERE user_id = %(user)s {keyset}
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"user": user_id, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([Group.from_row(row) for row in rows], limit)


def update_group(
    conn: Connection[DictRow], user_id: UUID, group_id: UUID, changes: dict[str, str | None], meta: RequestMeta
) -> Group:
    if not changes:
        return get_group(conn, user_id, group_id)
    try:
        with conn.transaction():
            row = conn.execute(
                sql.SQL(
                    "UPDATE contact_groups SET {}, updated_at = now() WHERE id = %(id)s AND user_id = %(user)s "
                    "RETURNING " + _COLUMNS
                ).format(db.set_clause(changes)),
                {**changes, "id": group_id, "user": user_id},
            ).fetchone()
    except errors.UniqueViolation as exc:
        raise _name_taken(exc, str(changes.get("name"))) from exc
    if row is None:
        raise NotFoundError("No such group.")
    audit.record(conn, user_id, "group.update", {"group_id": str(group_id), "changed": sorted(changes)}, meta)
    return Group.from_row(row)


def delete_group(conn: Connection[DictRow], user_id: UUID, group_id: UUID, meta: RequestMeta) -> None:
    """The group and its memberships go; the contacts stay."""
    deleted = conn.execute(
        "DELETE FROM contact_groups WHERE id = %s AND user_id = %s RETURNING id", (group_id, user_id)
    ).fetchone()
    if deleted is None:
        raise NotFoundError("No such group.")
    audit.record(conn, user_id, "group.delete", {"group_id": str(group_id)}, meta)


def add_members(
    conn: Connection[DictRow], user_id: UUID, group_id: UUID, contact_ids: list[UUID], meta: RequestMeta
) -> int:
    """Adds the caller's contacts, all or none; returns how many were not members yet."""
    get_group(conn, user_id, group_id)
    wanted = list(set(contact_ids))
    owned = conn.execute(
        "SELECT count(*) AS n FROM contacts WHERE user_id = %s AND id = ANY(%s)", (user_id, wanted)
    ).fetchone()
    if owned is None or owned["n"] != len(wanted):
        raise NotFoundError("One or more of the contacts do not exist.")
    try:
        with conn.transaction():
            added = conn.execute(
                """INSERT INTO contact_group_members (group_id, contact_id)
                   SELECT %s, id FROM contacts WHERE user_id = %s AND id = ANY(%s)
                   ON CONFLICT DO NOTHING""",
                (group_id, user_id, wanted),
            ).rowcount
    except errors.ForeignKeyViolation as exc:  # a contact deleted while this ran
        raise NotFoundError("One or more of the contacts do not exist.") from exc
    audit.record(conn, user_id, "group.add_members", {"group_id": str(group_id), "added": added}, meta)
    return added


def remove_member(
    conn: Connection[DictRow], user_id: UUID, group_id: UUID, contact_id: UUID, meta: RequestMeta
) -> None:
    removed = conn.execute(
        """DELETE FROM contact_group_members m USING contact_groups g
            WHERE m.group_id = g.id AND g.user_id = %s AND m.group_id = %s AND m.contact_id = %s
        RETURNING m.contact_id""",
        (user_id, group_id, contact_id),
    ).fetchone()
    if removed is None:
        raise NotFoundError("No such group, or the contact is not in it.")
    audit.record(conn, user_id, "group.remove_member", {"group_id": str(group_id), "contact_id": str(contact_id)}, meta)
