"""Routes for single messages."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import Field

from smsplatform import encoding
from smsplatform.api.context import caller
from smsplatform.api.models import RequestModel, ResponseModel
from smsplatform.api.resolver import BEARER

MAX_TEXT_CHARACTERS = 1600


class PreviewRequest(RequestModel):
    # Leading and trailing spaces are sent, and counted: keep them.
    model_config = RequestModel.model_config | {"str_strip_whitespace": False}

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARACTERS)]


class PreviewResponse(ResponseModel):
    encoding: Literal["GSM-7", "UCS-2"]
    segments: Annotated[int, Field(description="Parts the message is sent (and billed) as")]
    characters: Annotated[int, Field(description="Septets (GSM-7) or UTF-16 units (UCS-2) the text takes")]
    characters_per_segment: int
    remaining_in_segment: Annotated[int, Field(description="Room left before another part is needed")]


def messages_routes() -> Router:
    router = Router()

    @router.post(
        "/v1/messages/preview",
        tags=["Messages"],
        summary="Encoding and segments of a text, before anything is sent",
        description="Nothing is sent or charged. GSM 03.38 when every character allows it, else UCS-2.",
        security=BEARER,
    )
    def preview(body: Annotated[PreviewRequest, Body()]) -> PreviewResponse:
        caller(router)
        return PreviewResponse.model_validate(encoding.analyse(body.text))

    return router
