"""Sign-up, login and the caller's profile through the template's routes and the real authorizer."""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from smsplatform.accounts import sessions
from tests.support.harness import SIGNING_KEY, Api

PROBLEM = "application/problem+json"


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"])


def test_signup_creates_an_account_and_never_returns_the_hash(api: Api, conn: psycopg.Connection[Any]) -> None:
    response = api.request(
        "POST",
        "/v1/auth/signup",
        json_body={
            "username": "alice",
            "email": "alice@example.com",
            "password": "correct horse battery",
            "company_name": "Acme",
            "phone_number": "+44 7911 123456",
        },
    )

    assert response.status == 201
    body = response.json()
    assert body["username"] == "alice"
    assert body["role"] == "client"
    assert body["sms_credits"] == 0
    assert body["account_status"] == "active"
    assert body["phone_number"] == "+447911123456"
    assert "password" not in response.body.decode()
    assert "argon2" not in response.body.decode()
    stored = conn.execute("SELECT password_hash FROM users WHERE username = 'alice'").fetchone()
    assert stored["password_hash"].startswith("$argon2id$")
    audit = conn.execute("SELECT action, details, ip_address, user_agent FROM audit_logs").fetchall()
    assert [(row["action"], row["ip_address"], row["user_agent"]) for row in audit] == [
        ("user.signup", "203.0.113.7", "pytest")
    ]
    assert "correct horse" not in str(audit[0]["details"])


def test_signing_up_twice_with_the_same_email_is_a_conflict_that_changes_nothing(
    api: Api, conn: psycopg.Connection[Any]
) -> None:
    api.signup("alice")
    before = (_count(conn, "users"), _count(conn, "audit_logs"))

    response = api.request(
        "POST",
        "/v1/auth/signup",
        json_body={"username": "bob", "email": "ALICE@example.com", "password": "another good passphrase"},
    )

    assert response.status == 409
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 409
    assert problem["type"].endswith("/conflict")
    assert "e-mail" in problem["detail"]
    assert problem["errors"] == [{"field": "email", "message": "is already registered"}]
    assert (_count(conn, "users"), _count(conn, "audit_logs")) == before


def test_a_taken_username_is_a_conflict_regardless_of_case(api: Api) -> None:
    api.signup("alice")

    response = api.request(
        "POST",
        "/v1/auth/signup",
        json_body={"username": "Alice", "email": "someone@example.com", "password": "another good passphrase"},
    )

    assert response.status == 409
    assert response.json()["errors"] == [{"field": "username", "message": "is already taken"}]


def test_weak_passwords_are_refused_with_the_reason(api: Api, conn: psycopg.Connection[Any]) -> None:
    for password, reason in [
        ("short", "at least 10 characters"),
        ("aaaaaaaaaaaa", "repeated characters"),
        ("password123", "most common"),
        ("xx-alice-2024", "contain the username"),
    ]:
        response = api.request(
            "POST",
            "/v1/auth/signup",
            json_body={"username": "alice", "email": "alice@example.com", "password": password},
        )
        assert response.status == 422, password
        problem = response.json()
        assert problem["errors"][0]["field"] == "password"
        assert reason in problem["detail"], problem
    assert _count(conn, "users") == 0


def test_invalid_fields_are_listed_each_with_its_message(api: Api) -> None:
    response = api.request(
        "POST",
        "/v1/auth/signup",
        json_body={"username": "a", "email": "not-an-email", "password": "correct horse battery", "extra": 1},
    )

    assert response.status == 422
    assert response.headers["content-type"] == PROBLEM
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"username", "email", "extra"}


def test_a_missing_field_names_the_field(api: Api) -> None:
    response = api.request("POST", "/v1/auth/signup", json_body={"username": "alice", "password": "x" * 12})

    assert response.status == 422
    assert response.json()["errors"] == [{"field": "email", "message": "Field required"}]


def test_an_invalid_phone_number_is_refused(api: Api, conn: psycopg.Connection[Any]) -> None:
    response = api.request(
        "POST",
        "/v1/auth/signup",
        json_body={
            "username": "alice",
            "email": "alice@example.com",
            "password": "correct horse battery",
            "phone_number": "12345",
        },
    )

    assert response.status == 422
    assert response.json()["errors"][0]["field"] == "phone_number"
    assert _count(conn, "users") == 0


def test_a_malformed_body_is_a_400(api: Api) -> None:
    response = api.request(
        "POST", "/v1/auth/signup", raw_body=b'{"username": "alice",', headers={"content-type": "application/json"}
    )

    assert response.status == 400
    assert response.json()["type"].endswith("/malformed-request")


def test_login_by_username_or_email_returns_a_bearer_session(api: Api, conn: psycopg.Connection[Any]) -> None:
    api.signup("alice")

    for login in ("alice", "Alice@Example.com"):
        response = api.request(
            "POST", "/v1/auth/login", json_body={"login": login, "password": "correct horse battery"}
        )
        assert response.status == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 3600
        claims = sessions.verify_session(body["access_token"], SIGNING_KEY)
        assert str(claims.user_id) == conn.execute("SELECT id::text FROM users").fetchone()["id"]
    assert conn.execute("SELECT last_login FROM users").fetchone()["last_login"] is not None


def test_a_wrong_password_and_an_unknown_login_get_the_same_401(api: Api) -> None:
    api.signup("alice")

    wrong = api.request("POST", "/v1/auth/login", json_body={"login": "alice", "password": "not the password"})
    unknown = api.request("POST", "/v1/auth/login", json_body={"login": "nobody", "password": "not the password"})

    assert wrong.status == unknown.status == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["detail"] == "The login or password is incorrect."


def test_a_suspended_account_cannot_log_in(api: Api, conn: psycopg.Connection[Any]) -> None:
    api.signup("alice")
    conn.execute("UPDATE users SET account_status = 'suspended'")

    response = api.request("POST", "/v1/auth/login", json_body={"login": "alice", "password": "correct horse battery"})

    assert response.status == 403
    assert response.json()["type"].endswith("/account-suspended")
    assert conn.execute("SELECT last_login FROM users").fetchone()["last_login"] is None


def test_me_returns_the_callers_profile(api: Api, user: dict[str, Any]) -> None:
    response = api.request("GET", "/v1/users/me", token=user["token"])

    assert response.status == 200
    assert response.json()["id"] == user["id"]
    assert response.json()["username"] == "alice"


def test_me_without_a_token_is_401(api: Api) -> None:
    response = api.request("GET", "/v1/users/me")

    assert response.status == 401
    assert response.headers["content-type"] == PROBLEM
    assert "Authorization" in response.json()["detail"]


def test_me_with_a_forged_or_malformed_token_is_401(api: Api, user: dict[str, Any]) -> None:
    forged = sessions.issue_session(user["id"], "another-key-entirely-0123456789abcdef", 3600).access_token
    for header in (f"Bearer {forged}", "Bearer not-a-token", "Basic YWxpY2U6cGFzcw==", "Bearer "):
        response = api.request("GET", "/v1/users/me", headers={"authorization": header})
        assert response.status == 401, header
        assert response.json()["type"].endswith("/unauthenticated")


def test_me_with_an_expired_token_is_401_saying_so(api: Api, user: dict[str, Any]) -> None:
    expired = sessions.issue_session(
        user["id"], SIGNING_KEY, 3600, now=datetime.now(UTC) - timedelta(hours=2)
    ).access_token

    response = api.request("GET", "/v1/users/me", token=expired)

    assert response.status == 401
    assert "expired" in response.json()["detail"]


def test_a_suspended_accounts_existing_session_is_refused_at_once(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    assert api.request("GET", "/v1/users/me", token=user["token"]).status == 200
    conn.execute("UPDATE users SET account_status = 'suspended'")

    response = api.request("GET", "/v1/users/me", token=user["token"])

    assert response.status == 403
    assert response.json()["type"].endswith("/account-suspended")


def test_patch_me_changes_company_and_normalises_the_phone(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    response = api.request(
        "PATCH",
        "/v1/users/me",
        token=user["token"],
        json_body={"company_name": "Acme Group", "phone_number": "+1 (202) 555-0143"},
    )

    assert response.status == 200
    assert response.json()["company_name"] == "Acme Group"
    assert response.json()["phone_number"] == "+12025550143"
    audit = conn.execute("SELECT details FROM audit_logs WHERE action = 'user.update'").fetchone()
    assert audit["details"] == {"changed": ["company_name", "phone_number"]}


def test_patch_me_clears_a_field_set_to_null_and_leaves_others(api: Api, user: dict[str, Any]) -> None:
    api.request("PATCH", "/v1/users/me", token=user["token"], json_body={"company_name": "Acme"})

    response = api.request("PATCH", "/v1/users/me", token=user["token"], json_body={"phone_number": None})

    assert response.json()["company_name"] == "Acme"
    assert response.json()["phone_number"] is None


def test_changing_the_password_needs_the_current_one(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    before = conn.execute("SELECT password_hash FROM users").fetchone()["password_hash"]

    refused = api.request(
        "PATCH",
        "/v1/users/me",
        token=user["token"],
        json_body={"current_password": "a wrong guess here", "new_password": "a brand new passphrase"},
    )
    assert refused.status == 422
    assert refused.json()["errors"] == [{"field": "current_password", "message": "is missing or incorrect"}]
    assert conn.execute("SELECT password_hash FROM users").fetchone()["password_hash"] == before

    changed = api.request(
        "PATCH",
        "/v1/users/me",
        token=user["token"],
        json_body={"current_password": "correct horse battery", "new_password": "a brand new passphrase"},
    )
    assert changed.status == 200
    assert (
        api.request("POST", "/v1/auth/login", json_body={"login": "alice", "password": "correct horse battery"}).status
        == 401
    )
    assert api.login("alice", "a brand new passphrase")
    details = conn.execute("SELECT details::text AS d FROM audit_logs WHERE action = 'user.update'").fetchone()["d"]
    assert "passphrase" not in details
    assert "$argon2" not in details


def test_a_weak_new_password_is_refused(api: Api, user: dict[str, Any]) -> None:
    response = api.request(
        "PATCH",
        "/v1/users/me",
        token=user["token"],
        json_body={"current_password": "correct horse battery", "new_password": "short"},
    )

    assert response.status == 422
    assert response.json()["errors"][0]["field"] == "new_password"


def test_patch_me_refuses_fields_the_owner_may_not_change(
    api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    for field, value in (("role", "admin"), ("sms_credits", 1000), ("account_status", "active")):
        response = api.request("PATCH", "/v1/users/me", token=user["token"], json_body={field: value})
        assert response.status == 422, field
        assert response.json()["errors"][0]["field"] == field
    row = conn.execute("SELECT role, sms_credits FROM users").fetchone()
    assert (row["role"], row["sms_credits"]) == ("client", 0)


def test_an_unknown_route_is_a_404(api: Api) -> None:
    assert api.request("GET", "/v1/nothing-here").status == 404


def test_swagger_ui_loads_only_its_own_assets_and_they_are_the_npm_packages_files(api: Api) -> None:
    import base64
    import gzip
    import hashlib
    import io
    import re
    import tarfile
    import urllib.request

    from smsplatform.api.health_and_docs import SWAGGER_UI_DIR, SWAGGER_UI_VERSION

    page = api.request("GET", "/v1/docs").body.decode()
    sources = re.findall(r'<(?:link|script)[^>]*(?:href|src)="([^"]+)"[^>]*>', page)
    integrity = dict(re.findall(r'(?:href|src)="docs/([^"?]+)\?v=[^"]+"\s+integrity="([^"]+)"', page))

    assert [source.split("?")[0] for source in sources] == ["docs/swagger-ui.css", "docs/swagger-ui-bundle.js"]
    assert "https://" not in page  # nothing from a CDN: the page works offline
    assert set(integrity) == {"swagger-ui.css", "swagger-ui-bundle.js"}
    for name, expected in integrity.items():
        served = api.request("GET", f"/v1/docs/{name}", headers={"accept-encoding": "gzip"})
        assert served.status == 200
        assert served.headers["content-encoding"] == "gzip"
        assert served.headers["cache-control"] == "public, max-age=86400"
        body = gzip.decompress(served.body)
        assert body == (SWAGGER_UI_DIR / name).read_bytes()
        assert expected == "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode(), name
    assert api.request("GET", "/v1/docs/index.html").status == 422  # only the two files are served

    try:  # the shipped files are the npm package's own (the registry is reachable wherever tests run)
        url = f"https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-{SWAGGER_UI_VERSION}.tgz"
        with urllib.request.urlopen(url, timeout=20) as answer:
            tarball = answer.read()
    except OSError as exc:
        pytest.skip(f"the npm registry is unreachable, so the files are not checked against the package: {exc}")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as package:
        for name in integrity:
            member = package.extractfile(f"package/{name}")
            assert member is not None
            assert member.read() == (SWAGGER_UI_DIR / name).read_bytes(), name
