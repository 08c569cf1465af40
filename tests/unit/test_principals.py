from uuid import uuid4

import pytest

from smsplatform.accounts import principals
from smsplatform.core.errors import AccountSuspendedError, AuthenticationError, PermissionDeniedError


def test_a_principal_survives_the_trip_through_the_authorizer_context() -> None:
    principal = principals.Principal(uuid4(), "client", frozenset({"contacts:read", "billing:read"}), "session")

    restored = principals.from_context(principal.to_context())

    assert restored == principal
    assert all(isinstance(value, str) for value in principal.to_context().values())


def test_a_missing_context_means_unauthenticated() -> None:
    with pytest.raises(AuthenticationError):
        principals.from_context(None)


def test_failures_travel_as_the_error_they_were() -> None:
    suspended = principals.failure_context(AccountSuspendedError("This account is suspended; contact support."))
    expired = principals.failure_context(AuthenticationError("The session has expired; log in again."))

    with pytest.raises(AccountSuspendedError, match="suspended"):
        principals.from_context(suspended)
    with pytest.raises(AuthenticationError, match="expired"):
        principals.from_context(expired)


def test_require_refuses_a_permission_the_principal_lacks() -> None:
    principal = principals.Principal(uuid4(), "client", frozenset({"contacts:read"}), "token")

    principal.require("contacts:read")
    with pytest.raises(PermissionDeniedError, match="contacts:write"):
        principal.require("contacts:write")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc", "Basic YWxpY2U6eA=="])
def test_only_bearer_credentials_are_read(header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        principals.bearer_token(header)


def test_the_bearer_token_is_read_case_insensitively() -> None:
    assert principals.bearer_token("bearer abc.def") == "abc.def"
