"""Routes for signing up, logging in and the caller's own profile."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, EmailStr, Field, computed_field

from smsplatform.accounts import accounts, permissions, principals, sessions
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import RequestModel, ResponseModel, UpdateRequestModel
from smsplatform.api.resolver import BEARER
from smsplatform.contacts import phones
from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.core.errors import AuthenticationError, PermissionDeniedError
from smsplatform.core.observability import metrics
from smsplatform.core.secret_store import jwt_signing_key

Username = Annotated[
    str,
    Field(
        min_length=3,
        max_length=50,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Letters, digits, '_', '.', '-'; starts with a letter or digit.",
    ),
]
Password = Annotated[str, Field(min_length=1, max_length=256, json_schema_extra={"format": "password"})]
CompanyName = Annotated[str, Field(min_length=1, max_length=100)]
PhoneNumber = Annotated[str, Field(min_length=3, max_length=32, description="E.164, e.g. +447700900123")]


class SignupRequest(RequestModel):
    username: Username
    email: Annotated[EmailStr, Field(max_length=120)]
    password: Password
    company_name: CompanyName | None = None
    phone_number: PhoneNumber | None = None


class LoginRequest(RequestModel):
    login: Annotated[str, Field(min_length=1, max_length=120, description="Username or e-mail address")]
    password: Password


class ProfileUpdateRequest(UpdateRequestModel):
    company_name: CompanyName | None = None
    phone_number: PhoneNumber | None = None
    low_balance_threshold: Annotated[
        int | None,
        Field(
            strict=True,  # a JSON true is not 1
            ge=0,
            le=1_000_000_000,
            description="When the balance falls below it, one signed balance.low callback and an audit row; "
            "null turns the alert off",
        ),
    ] = None
    current_password: Password | None = None
    new_password: Password | None = None


class UserResponse(ResponseModel):
    id: UUID
    username: str
    email: str
    role: str
    sms_credits: int
    account_status: str
    created_at: datetime
    last_login: datetime | None
    company_name: str | None
    phone_number: str | None
    low_balance_threshold: int | None

    @computed_field(description="The AccountSid of the Twilio-compatible API (/2010-04-01/Accounts/{AccountSid})")
    def twilio_account_sid(self) -> str:
        return principals.twilio_account_sid(self.id)


class SessionResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  # the OAuth token type, not a secret
    expires_in: Annotated[int, Field(description="Seconds until the token expires")]


def accounts_routes() -> Router:
    """A fresh router per resolver: Powertools routers hold the current event."""
    router = Router()

    @router.post("/v1/auth/signup", status_code=201, tags=["Accounts"], summary="Create an account")
    def signup(body: Annotated[SignupRequest, Body()]) -> UserResponse:
        phone = phones.normalise_e164(body.phone_number) if body.phone_number else None
        with db.transaction() as conn:
            user = accounts.create_user(
                conn,
                username=body.username,
                email=str(body.email),
                password=body.password,
                company_name=body.company_name,
                phone_number=phone,
                meta=request_meta(router),
            )
        metrics.add_metric(name="Signups", unit=MetricUnit.Count, value=1)
        return UserResponse.model_validate(user)

    @router.post(
        "/v1/auth/login",
        tags=["Accounts"],
        summary="Exchange a login and password for a session token",
        description="Repeated failures for one login or one address are refused for a while with 429 and Retry-After.",
    )
    def login(body: Annotated[LoginRequest, Body()]) -> SessionResponse:
        settings = get_settings()
        with db.transaction() as conn:
            user = accounts.log_in(conn, body.login, body.password, request_meta(router))
        if user is None:
            raise AuthenticationError("The login or password is incorrect.")
        session = sessions.issue_session(user.id, jwt_signing_key(settings), settings.session_ttl_seconds)
        return SessionResponse(access_token=session.access_token, expires_in=session.expires_in)

    @router.get("/v1/users/me", tags=["Accounts"], summary="The caller's profile", security=BEARER)
    def get_me() -> UserResponse:
        principal = caller(router)
        with db.transaction() as conn:
            return UserResponse.model_validate(accounts.get_user(conn, principal.user_id))

    def change_me(body: ProfileUpdateRequest) -> UserResponse:
        principal = caller(router, permissions.ACCOUNT_WRITE)
        if body.new_password is not None and principal.credential != "session":
            raise PermissionDeniedError("Changing the password needs a session from /v1/auth/login, not an API token.")
        given = body.model_fields_set
        changes: dict[str, str | int | None] = {}
        if "company_name" in given:
            changes["company_name"] = body.company_name
        if "phone_number" in given:
            changes["phone_number"] = phones.normalise_e164(body.phone_number) if body.phone_number else None
        if "low_balance_threshold" in given:
            changes["low_balance_threshold"] = body.low_balance_threshold
        with db.transaction() as conn:
            user = accounts.update_profile(
                conn,
                principal.user_id,
                request_meta(router),
                current_password=body.current_password,
                new_password=body.new_password,
                **changes,  # type: ignore[arg-type]
            )
        return UserResponse.model_validate(user)

    @router.patch(
        "/v1/users/me",
        tags=["Accounts"],
        summary="Change company, phone, password or the low-balance alert",
        security=BEARER,
    )
    def update_me(body: Annotated[ProfileUpdateRequest, Body()]) -> UserResponse:
        return change_me(body)

    @router.put(
        "/v1/users/me",
        tags=["Accounts"],
        summary="Change company, phone, password or the low-balance alert",
        description="As PATCH: only the fields given change.",
        security=BEARER,
    )
    def put_me(body: Annotated[ProfileUpdateRequest, Body()]) -> UserResponse:
        return change_me(body)

    return router
