"""Message templates: `{{field}}` and `{{field|fallback}}` over a contact's fields.

A template is parsed once, at creation, into literal text and field references
drawn from a fixed vocabulary; anything else is refused. Rendering compiles the
parsed template into a SQL expression over the `contacts` row aliased `c`, with
every literal and custom-field key passed as a quoted literal: the dispatcher
renders (and prices) a million recipients in one statement, and no template can
run code or read anything but the recipient's own contact row.
"""

import re
from dataclasses import dataclass

from psycopg import sql

from smsplatform.contacts.contacts import CUSTOM_FIELD_KEY
from smsplatform.core.errors import FieldError, InvalidInputError

MAX_TEMPLATE_CHARACTERS = 1600
MAX_FALLBACK_CHARACTERS = 100

# Contact columns a template may name, with the SQL that reads each.
_COLUMNS = {
    "first_name": sql.SQL("c.first_name"),
    "last_name": sql.SQL("c.last_name"),
    "phone_number": sql.SQL("c.phone_number"),
    "email": sql.SQL("c.email"),
}
FIELDS = (*sorted(_COLUMNS), "custom_fields.<key>")

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_REFERENCE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\|(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Field:
    name: str  # a key of _COLUMNS, or "custom_fields.<key>"
    fallback: str


Part = str | Field


@dataclass(frozen=True)
class Template:
    parts: tuple[Part, ...]

    @property
    def fields(self) -> list[str]:
        return [part.name for part in self.parts if isinstance(part, Field)]

    def render_fallbacks(self) -> str:
        """The text a contact with none of the fields would get."""
        return "".join(part if isinstance(part, str) else part.fallback for part in self.parts)

    def sql_expression(self) -> sql.Composable:
        """The rendered text of the contact row `c`, as one SQL expression."""
        if not self.parts:
            return sql.Literal("")
        pieces = [sql.Literal(part) if isinstance(part, str) else _field_sql(part) for part in self.parts]
        return sql.SQL("concat({})").format(sql.SQL(", ").join(pieces))


def _field_sql(field: Field) -> sql.Composable:
    if field.name.startswith("custom_fields."):
        value: sql.Composable = sql.SQL("(c.custom_fields ->> {})").format(sql.Literal(field.name.split(".", 1)[1]))
    else:
        value = _COLUMNS[field.name]
    return sql.SQL("coalesce(nullif({}, ''), {})").format(value, sql.Literal(field.fallback))


def _field(reference: str, field: str) -> Field:
    match = _REFERENCE.match(reference)
    if match is None:
        raise InvalidInputError(
            f"'{{{{{reference}}}}}' is not a field reference.",
            errors=[FieldError(field, f"use one of {', '.join(FIELDS)}, optionally with |fallback")],
        )
    name, fallback = match.group(1), (match.group(2) or "").strip()
    known = name in _COLUMNS or (
        name.startswith("custom_fields.") and CUSTOM_FIELD_KEY.match(name.split(".", 1)[1]) is not None
    )
    if not known:
        raise InvalidInputError(
            f"The template refers to an unknown field {name!r}.",
            errors=[FieldError(field, f"unknown field {name!r}; use one of {', '.join(FIELDS)}")],
        )
    if len(fallback) > MAX_FALLBACK_CHARACTERS or "{" in fallback or "}" in fallback:
        raise InvalidInputError(
            "A fallback is plain text of at most 100 characters.", errors=[FieldError(field, "has a bad fallback")]
        )
    return Field(name, fallback)


def parse(text: str, field: str = "message_template") -> Template:
    """The template's literal text and field references; refuses unknown fields and stray braces."""
    if len(text) > MAX_TEMPLATE_CHARACTERS:
        raise InvalidInputError(
            f"A template has at most {MAX_TEMPLATE_CHARACTERS} characters.", errors=[FieldError(field, "is too long")]
        )
    parts: list[Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[position : match.start()])
        parts.append(_field(match.group(1), field))
        position = match.end()
    parts.append(text[position:])
    for literal in parts:
        if isinstance(literal, str) and ("{{" in literal or "}}" in literal):
            raise InvalidInputError(
                "The template has an unclosed '{{' or a stray '}}'.",
                errors=[FieldError(field, "has unbalanced braces")],
            )
    return Template(tuple(part for part in parts if part != ""))
