"""Request and response shapes shared by several routers."""

from typing import Annotated, Generic, TypeVar

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from smsplatform.core import pagination
from smsplatform.core.pagination import Cursor

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT, description="Page size, at most 200")]
CursorParam = Annotated[str | None, Query(max_length=200, description="next_cursor from the previous page")]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class ResponseModel(BaseModel):
    """Built from a domain object's attributes: the fields listed here are all a client sees."""

    model_config = ConfigDict(from_attributes=True)


class PageResponse(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: Annotated[str | None, Field(description="Pass as cursor for the next page; null on the last")]


def cursor_from(value: str | None) -> Cursor | None:
    return Cursor.decode(value) if value else None
