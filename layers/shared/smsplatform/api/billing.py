"""Routes for the credits ledger: the owner's history and operators' top-ups."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import Field

from smsplatform.accounts import permissions
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import CursorParam, Limit, PageResponse, RequestModel, ResponseModel, cursor_from
from smsplatform.api.resolver import BEARER
from smsplatform.billing import ledger
from smsplatform.core import audit, db, pagination


class CreditsRequest(RequestModel):
    credits: Annotated[
        int, Field(strict=True, ge=-10_000_000, le=10_000_000, description="Credits to add (negative to remove)")
    ]
    amount: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2, description="Money paid")] = Decimal(0)
    payment_method: Annotated[str | None, Field(max_length=50)] = None
    description: Annotated[str | None, Field(max_length=500)] = None


class TransactionResponse(ResponseModel):
    id: UUID
    transaction_type: str
    amount: Decimal
    credits: int
    credits_before: int
    credits_after: int
    settled_credits: int
    description: str | None
    payment_method: str | None
    transaction_status: str
    reference_id: UUID | None
    created_at: datetime


def billing_routes() -> Router:
    router = Router()

    @router.get(
        "/v1/billing/transactions", tags=["Billing"], summary="The caller's ledger, newest first", security=BEARER
    )
    def transactions(
        limit: Limit = pagination.DEFAULT_LIMIT, cursor: CursorParam = None
    ) -> PageResponse[TransactionResponse]:
        principal = caller(router, permissions.BILLING_READ)
        with db.transaction() as conn:
            page = ledger.list_entries(conn, principal.user_id, limit, cursor_from(cursor))
        return PageResponse(
            data=[TransactionResponse.model_validate(e) for e in page.items], next_cursor=page.next_cursor
        )

    @router.post(
        "/v1/users/<user_id>/credits",
        status_code=201,
        tags=["Operators"],
        summary="Top up or adjust an account's credits",
        security=BEARER,
    )
    def add_credits(user_id: UUID, body: Annotated[CreditsRequest, Body()]) -> TransactionResponse:
        principal = caller(router, permissions.BILLING_ADMIN)
        with db.transaction() as conn:
            if body.credits > 0:
                entry = ledger.top_up(
                    conn,
                    user_id,
                    body.credits,
                    amount=body.amount,
                    payment_method=body.payment_method,
                    description=body.description,
                )
            else:
                entry = ledger.adjust(conn, user_id, body.credits, description=body.description)
            audit.record(
                conn,
                principal.user_id,
                "admin.credits",
                {
                    "user_id": str(user_id),
                    "transaction_id": str(entry.id),
                    "credits": body.credits,
                    "amount": str(body.amount),
                },
                request_meta(router),
            )
        return TransactionResponse.model_validate(entry)

    return router
