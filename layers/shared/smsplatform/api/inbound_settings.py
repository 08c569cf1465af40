"""Routes for what becomes of inbound messages: the account's keywords and replies, and its inbound callback."""

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, Field

from smsplatform.accounts import permissions
from smsplatform.api.context import caller, request_meta
from smsplatform.api.models import RequestModel
from smsplatform.api.resolver import BEARER
from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.sending import keywords, status_callbacks
from smsplatform.sending.keywords import Keyword

Word = Annotated[str, Field(min_length=1, max_length=keywords.MAX_WORD_CHARACTERS)]
Words = Annotated[list[Word], Field(max_length=keywords.MAX_WORDS)]
ReplyText = Annotated[str, Field(min_length=1, max_length=1600)]


class Replies(BaseModel):
    opt_out: ReplyText | None
    opt_in: ReplyText | None
    help: ReplyText | None


class RepliesRequest(RequestModel):
    # Sent as written: keep leading and trailing spaces as the messages API does.
    model_config = RequestModel.model_config | {"str_strip_whitespace": False}

    opt_out: ReplyText | None = None
    opt_in: ReplyText | None = None
    help: ReplyText | None = None


class KeywordsRequest(RequestModel):
    opt_out: Annotated[Words | None, Field(description="Must include STOP; left out: the platform's list")] = None
    opt_in: Words | None = None
    help: Words | None = None
    replies: Annotated[
        RepliesRequest | None,
        Field(description="A reply left out keeps the platform's text; null sends none"),
    ] = None


class KeywordsResponse(BaseModel):
    opt_out: list[str]
    opt_in: list[str]
    help: list[str]
    replies: Replies


class InboundCallbackRequest(RequestModel):
    url: Annotated[str | None, Field(max_length=2048, description="https URL; null stops the callbacks")]


class InboundCallbackResponse(BaseModel):
    url: str | None
    event: str = "message.inbound"
    signature: str = Field(
        default=f"{status_callbacks.SIGNATURE_HEADER}: as status callbacks, with the same secret",
        description="How each callback is signed",
    )


def _response(found: keywords.Keywords) -> KeywordsResponse:
    return KeywordsResponse(
        opt_out=found.opt_out, opt_in=found.opt_in, help=found.help, replies=Replies(**found.replies)
    )


def inbound_settings_routes() -> Router:
    router = Router()

    @router.get(
        "/v1/keywords",
        tags=["Inbound"],
        summary="The account's opt-out, opt-in and help keywords and their replies",
        security=BEARER,
    )
    def get_keywords() -> KeywordsResponse:
        principal = caller(router, permissions.MESSAGES_READ)
        with db.transaction() as conn:
            return _response(keywords.get(conn, principal.user_id))

    @router.put(
        "/v1/keywords",
        tags=["Inbound"],
        summary="Replace the account's keywords and replies",
        description="Keywords match the whole message, ignoring case, accents' composition, spaces and "
        "punctuation around it. A word may be in one list only. Replies are charged like any message.",
        security=BEARER,
    )
    def put_keywords(body: Annotated[KeywordsRequest, Body()]) -> KeywordsResponse:
        principal = caller(router, permissions.ACCOUNT_WRITE)
        given = body.replies
        replies: dict[Keyword, str | None] = {
            keyword: getattr(given, keyword)
            for keyword in keywords.KEYWORDS
            if given and keyword in given.model_fields_set
        }
        lists: dict[Keyword, list[str] | None] = {keyword: getattr(body, keyword) for keyword in keywords.KEYWORDS}
        with db.transaction() as conn:
            return _response(keywords.put(conn, principal.user_id, lists, replies, request_meta(router)))

    @router.get("/v1/inbound-callback", tags=["Inbound"], summary="Where inbound messages are sent", security=BEARER)
    def get_inbound_callback() -> InboundCallbackResponse:
        principal = caller(router, permissions.WEBHOOKS_WRITE)
        with db.transaction() as conn:
            return InboundCallbackResponse(url=status_callbacks.get_inbound_url(conn, principal.user_id))

    @router.put(
        "/v1/inbound-callback",
        tags=["Inbound"],
        summary="Set or clear the inbound callback URL",
        description="Each inbound message is POSTed there as event message.inbound, signed and retried like "
        "status callbacks (X-Signature, the same secret).",
        security=BEARER,
    )
    def set_inbound_callback(body: Annotated[InboundCallbackRequest, Body()]) -> InboundCallbackResponse:
        principal = caller(router, permissions.WEBHOOKS_WRITE)
        url = status_callbacks.check_url(body.url, get_settings()) if body.url else None
        with db.transaction() as conn:
            return InboundCallbackResponse(
                url=status_callbacks.set_inbound_url(conn, principal.user_id, url, request_meta(router))
            )

    return router
