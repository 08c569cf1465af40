"""Accounts: sign-up, credential checks, profiles and the operator account."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg import Connection, errors, sql
from psycopg.rows import DictRow

from smsplatform.accounts import login_throttle, passwords
from smsplatform.accounts.permissions import Role
from smsplatform.core import audit, db, pagination
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import (
    AccountSuspendedError,
    ConflictError,
    FieldError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from smsplatform.core.pagination import Cursor, Page, page_of

_USER_COLUMNS = """id, username, email, role, sms_credits, account_status, created_at, updated_at,
                   last_login, company_name, phone_number, low_balance_threshold"""


AccountStatus = Literal["active", "suspended", "closed"]


@dataclass(frozen=True)
class User:
    id: UUID
    username: str
    email: str
    role: Role
    sms_credits: int
    account_status: AccountStatus
    created_at: datetime
    updated_at: datetime
    last_login: datetime | None
    company_name: str | None
    phone_number: str | None
    low_balance_threshold: int | None

    @classmethod
    def from_row(cls, row: DictRow) -> "User":
        return cls(**{key: row[key] for key in cls.__dataclass_fields__})


_UNSET: Any = object()


def create_user(
    conn: Connection[DictRow],
    *,
    username: str,
    email: str,
    password: str,
    meta: RequestMeta,
    company_name: str | None = None,
    phone_number: str | None = None,
    role: Role = "client",
) -> User:
    passwords.check_strength(password, username=username, email=email)
    password_hash = passwords.hash_password(password)
    try:
        with conn.transaction():
            row = conn.execute(
                f"""INSERT INTO users (username, email, password_hash, role, company_name, phone_number)
                    VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_USER_COLUMNS}""",
                (username, email, password_hash, role, company_name, phone_number),
            ).fetchone()
    except errors.UniqueViolation as exc:
        constraint = exc.diag.constraint_name or ""
        if "email" in constraint:
            raise ConflictError(
                "An account with this e-mail address already exists.",
                errors=[FieldError("email", "is already registered")],
            ) from exc
        raise ConflictError(
            "This username is already taken.", errors=[FieldError("username", "is already taken")]
        ) from exc
    assert row is not None
    user = User.from_row(row)
    audit.record(conn, user.id, "user.signup", {"username": username, "email": email, "role": role}, meta)
    return user


def log_in(conn: Connection[DictRow], login: str, password: str, meta: RequestMeta) -> User | None:
    """Checks a username-or-email and password under the login throttle.

    Returns None when the credentials are wrong: the failure is recorded in this
    transaction, so the caller commits before answering 401. Raises when the
    login is throttled or the account is not active.
    """
    login_throttle.lock(conn, login)
    login_throttle.check(conn, login, meta.ip_address)
    row = conn.execute(
        f"""SELECT {_USER_COLUMNS}, password_hash FROM users
             WHERE lower(username) = lower(%(login)s) OR lower(email) = lower(%(login)s)""",
        {"login": login},
    ).fetchone()
    if row is None or not passwords.verify_password(row["password_hash"] if row else None, password):
        login_throttle.record_failure(conn, login, meta.ip_address)
        if row is not None:
            audit.record(conn, row["id"], "user.login_failed", {}, meta)
        return None
    user = User.from_row(row)
    if user.account_status != "active":
        raise AccountSuspendedError(f"This account is {user.account_status}; contact support.")
    login_throttle.clear(conn, login)
    new_hash = passwords.hash_password(password) if passwords.needs_rehash(row["password_hash"]) else None
    conn.execute(
        "UPDATE users SET last_login = now(), password_hash = coalesce(%s, password_hash) WHERE id = %s",
        (new_hash, user.id),
    )
    audit.record(conn, user.id, "user.login", {}, meta)
    return user


def get_user(conn: Connection[DictRow], user_id: UUID) -> User:
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFoundError("No such user.")
    return User.from_row(row)


def update_profile(
    conn: Connection[DictRow],
    user_id: UUID,
    meta: RequestMeta,
    *,
    company_name: str | None = _UNSET,
    phone_number: str | None = _UNSET,
    low_balance_threshold: int | None = _UNSET,
    current_password: str | None = None,
    new_password: str | None = None,
) -> User:
    """Changes what the owner may change; a new password needs the current one."""
    current = conn.execute(
        f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE id = %s FOR UPDATE", (user_id,)
    ).fetchone()
    if current is None:
        raise NotFoundError("No such user.")
    changes: dict[str, Any] = {}
    if company_name is not _UNSET:
        changes["company_name"] = company_name
    if phone_number is not _UNSET:
        changes["phone_number"] = phone_number
    if low_balance_threshold is not _UNSET:
        changes["low_balance_threshold"] = low_balance_threshold
    if new_password is not None:
        if current_password is None or not passwords.verify_password(current["password_hash"], current_password):
            raise InvalidInputError(
                "Changing the password needs the correct current password.",
                errors=[FieldError("current_password", "is missing or incorrect")],
            )
        passwords.check_strength(
            new_password, field="new_password", username=current["username"], email=current["email"]
        )
        changes["password_hash"] = passwords.hash_password(new_password)
    if not changes:
        return User.from_row(current)
    ends_sessions = sql.SQL(", password_changed_at = now()" if "password_hash" in changes else "")
    row = conn.execute(
        sql.SQL("UPDATE users SET {}{}, updated_at = now() WHERE id = %(id)s RETURNING " + _USER_COLUMNS).format(
            db.set_clause(changes), ends_sessions
        ),
        {**changes, "id": user_id},
    ).fetchone()
    assert row is not None
    changed_fields = sorted("password" if key == "password_hash" else key for key in changes)
    audit.record(conn, user_id, "user.update", {"changed": changed_fields}, meta)
    return User.from_row(row)


def list_accounts(
    conn: Connection[DictRow],
    limit: int,
    cursor: Cursor | None,
    *,
    account_status: AccountStatus | None = None,
    role: Role | None = None,
) -> Page[User]:
    """Every account, newest first (operators only)."""
    keyset, params = pagination.after(cursor)
    rows = conn.execute(
        f"""SELECT {_USER_COLUMNS} FROM users
             WHERE (%(status)s::text IS NULL OR account_status = %(status)s)
               AND (%(role)s::text IS NULL OR role = %(role)s) {keyset}
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",
        {"status": account_status, "role": role, "limit": limit + 1, **params},
    ).fetchall()
    return page_of([User.from_row(row) for row in rows], limit)


def change_account(
    conn: Connection[DictRow],
    operator_id: UUID,
    user_id: UUID,
    meta: RequestMeta,
    *,
    account_status: AccountStatus | None = None,
    role: Role | None = None,
) -> User:
    """An operator suspends, reactivates, closes, promotes or demotes an account (never their own)."""
    if user_id == operator_id:
        raise PermissionDeniedError("Operators cannot change their own status or role; ask another operator.")
    current = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()
    if current is None:
        raise NotFoundError("No such user.")
    row = conn.execute(
        f"""UPDATE users SET account_status = coalesce(%s, account_status), role = coalesce(%s, role),
                             updated_at = now()
             WHERE id = %s RETURNING {_USER_COLUMNS}""",
        (account_status, role, user_id),
    ).fetchone()
    assert row is not None
    changes = {
        key: {"from": current[key], "to": row[key]} for key in ("account_status", "role") if current[key] != row[key]
    }
    if changes:
        audit.record(conn, operator_id, "admin.user_update", {"user_id": str(user_id), "changes": changes}, meta)
    return User.from_row(row)


def promote_or_create_admin(conn: Connection[DictRow], *, username: str, email: str, password: str | None) -> str:
    """The operator command's work: makes the named account an active admin, creating it if needed.

    Returns "created", "promoted" or "unchanged".
    """
    row = conn.execute(
        "SELECT id, role, account_status FROM users WHERE lower(username) = lower(%s) OR lower(email) = lower(%s)",
        (username, email),
    ).fetchone()
    meta = RequestMeta(user_agent="operator command")
    if row is None:
        if not password:
            raise InvalidInputError(
                "A new admin account needs a password.", errors=[FieldError("password", "is required")]
            )
        create_user(conn, username=username, email=email, password=password, role="admin", meta=meta)
        return "created"
    if row["role"] == "admin" and row["account_status"] == "active":
        return "unchanged"
    conn.execute(
        "UPDATE users SET role = 'admin', account_status = 'active', updated_at = now() WHERE id = %s", (row["id"],)
    )
    audit.record(conn, None, "admin.promote", {"user_id": str(row["id"])}, meta)
    return "promoted"


def ensure_admin(conn: Connection[DictRow], *, username: str, email: str, password: str) -> bool:
    """Creates the operator account unless an admin exists; True when it created one."""
    if conn.execute("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1").fetchone():
        return False
    create_user(
        conn,
        username=username,
        email=email,
        password=password,
        role="admin",
        meta=RequestMeta(user_agent="local-stack bootstrap"),
    )
    return True
