"""Routes for prices per destination: an account's effective prices, and operators' price lists."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import Field

from smsplatform.accounts import accounts, permissions
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import RequestModel, ResponseModel
from smsplatform.api.resolver import BEARER
from smsplatform.billing import pricing
from smsplatform.core import db
from smsplatform.core.config import get_settings


class PriceRequest(RequestModel):
    credits_per_segment: Annotated[
        int | None, Field(strict=True, ge=1, le=10_000, description="Omit when blocking")
    ] = None
    blocked: Annotated[bool, Field(description="Nothing is sent to this country (premium-rate, fraud)")] = False


class CountryPriceResponse(ResponseModel):
    country: str
    credits_per_segment: int | None
    blocked: bool
    source: Annotated[Literal["platform", "account"], Field(description="Whose price list this row comes from")]
    updated_at: datetime


class PriceListResponse(ResponseModel):
    default_credits_per_segment: Annotated[
        int | None, Field(description="For countries not listed; null: unlisted countries are not sent to")
    ]
    data: list[CountryPriceResponse]


_COUNTRY = "ISO 3166-1 alpha-2 (GB, US)"


def pricing_routes() -> Router:
    router = Router()

    @router.get(
        "/v1/pricing",
        tags=["Billing"],
        summary="The caller's prices: credits per message segment by destination country",
        description="The account's own prices where an operator set them, else the platform's; countries not "
        "listed cost default_credits_per_segment. Blocked countries are not sent to.",
        security=BEARER,
    )
    def effective() -> PriceListResponse:
        principal = caller(router, permissions.BILLING_READ)
        with db.transaction() as conn:
            prices = pricing.effective(conn, principal.user_id, get_settings().default_credits_per_segment)
        return PriceListResponse.model_validate(prices)

    @router.put(
        "/v1/pricing/<country>",
        tags=["Operators"],
        summary="Set the platform's price of a destination country, or block it",
        description=_COUNTRY + ". A change applies to what is released from then on, never to a campaign "
        "already released.",
        security=BEARER,
    )
    def set_platform(country: str, body: Annotated[PriceRequest, Body()]) -> CountryPriceResponse:
        principal = caller(router, permissions.BILLING_ADMIN)
        with db.transaction() as conn:
            price = pricing.set_price(
                conn, principal.user_id, None, country, body.credits_per_segment, body.blocked, request_meta(router)
            )
        return CountryPriceResponse.model_validate(price)

    @router.delete(
        "/v1/pricing/<country>",
        tags=["Operators"],
        summary="Remove the platform's price of a country (the default applies)",
        security=BEARER,
    )
    def delete_platform(country: str) -> Response[None]:
        principal = caller(router, permissions.BILLING_ADMIN)
        with db.transaction() as conn:
            pricing.delete_price(conn, principal.user_id, None, country, request_meta(router))
        return Response(status_code=204)

    @router.get(
        "/v1/users/<user_id>/pricing",
        tags=["Operators"],
        summary="An account's effective prices, as it sees them",
        description="Rows with source 'account' are its own overrides.",
        security=BEARER,
    )
    def effective_for(user_id: UUID) -> PriceListResponse:
        caller(router, permissions.BILLING_ADMIN)
        with db.transaction() as conn:
            accounts.get_user(conn, user_id)  # 404 if there is none
            prices = pricing.effective(conn, user_id, get_settings().default_credits_per_segment)
        return PriceListResponse.model_validate(prices)

    @router.put(
        "/v1/users/<user_id>/pricing/<country>",
        tags=["Operators"],
        summary="Set one account's own price of a country, or block or unblock it for that account",
        description=_COUNTRY + ". It wins over the platform's price list for this account.",
        security=BEARER,
    )
    def set_account(user_id: UUID, country: str, body: Annotated[PriceRequest, Body()]) -> CountryPriceResponse:
        principal = caller(router, permissions.BILLING_ADMIN)
        with db.transaction() as conn:
            price = pricing.set_price(
                conn, principal.user_id, user_id, country, body.credits_per_segment, body.blocked, request_meta(router)
            )
        return CountryPriceResponse.model_validate(price)

    @router.delete(
        "/v1/users/<user_id>/pricing/<country>",
        tags=["Operators"],
        summary="Remove an account's own price of a country (the platform's applies)",
        security=BEARER,
    )
    def delete_account(user_id: UUID, country: str) -> Response[None]:
        principal = caller(router, permissions.BILLING_ADMIN)
        with db.transaction() as conn:
            pricing.delete_price(conn, principal.user_id, user_id, country, request_meta(router))
        return Response(status_code=204)

    return router
