"""Request and response shapes shared by several routers."""

import re
from typing import Annotated, Generic, Self, TypeVar

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from smsplatform.core import pagination
from smsplatform.core.pagination import Cursor

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=pagination.MAX_LIMIT, description="Page size, at most 200")]
CursorParam = Annotated[str | None, Query(max_length=200, description="next_cursor from the previous page")]


def _iso_8601(value: object) -> object:
    """A query string's time is ISO 8601 only: pydantic would also read "0.5" as seconds since 1970."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\S+", value):
        raise ValueError("an ISO 8601 date and time with its UTC offset, e.g. 2026-11-30T09:00:00Z")
    return value


QueryTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class UpdateRequestModel(RequestModel):
    """A PATCH body: the fields to change, at least one of them."""

    model_config = RequestModel.model_config | {"json_schema_extra": {"minProperties": 1}}

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("a PATCH body names at least one field to change")
        return self


class ResponseModel(BaseModel):
    """Built from a domain object's attributes: the fields listed here are all a client sees."""

    model_config = ConfigDict(from_attributes=True)


class PageResponse(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: Annotated[str | None, Field(description="Pass as cursor for the next page; null on the last")]


def cursor_from(value: str | None) -> Cursor | None:
    return Cursor.decode(value) if value else None
