"""Message templates: `{{field}}` and `{{field|fallback}}` over a contact's fields.

A template is parsed once, at creation, into literal text and field references
drawn from a fixed vocabulary; anything else is refused. Literal text reaches
the message exactly as written (`%`, `\\`, quotes, `$1`, emoji, newlines); the
only special sequences are `{{` and `}}`, and a quoted string in a placeholder
writes them literally: `{{"{{"}}` renders `{{` and `{{"}}"}}` renders `}}`.

Rendering compiles the parsed template into a SQL expression over the
`contacts` row aliased `c`, whose literal parts, fallbacks and custom-field keys
are query parameters, never SQL text: the dispatcher renders (and prices) a
million recipients in one statement, and no template can run code, read
anything but the recipient's own contact row, or be taken for a placeholder.
`render` is the same rendering in Python, for one contact's values.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from smsplatform.contacts.contacts import CUSTOM_FIELD_KEY
from smsplatform.core.errors import FieldError, InvalidInputError

MAX_TEMPLATE_CHARACTERS = 1600
# A rendered message longer than this (a template filled with long custom fields) is not sent to that
# recipient: 1,600 characters is what providers take as one message (10 concatenated GSM-7 parts).
MAX_RENDERED_CHARACTERS = 1600
MAX_FALLBACK_CHARACTERS = 100

# Contact columns a template may name, with the SQL that reads each.
_COLUMNS = {
    "first_name": sql.SQL("c.first_name"),
    "last_name": sql.SQL("c.last_name"),
    "phone_number": sql.SQL("c.phone_number"),
    "email": sql.SQL("c.email"),
}
FIELDS = (*sorted(_COLUMNS), "custom_fields.<key>")

_PLACEHOLDER = re.compile(r"\{\{(?:\s*\"([^\"]*)\"\s*|(.*?))\}\}", re.DOTALL)
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
        return self.render({})

    def render(self, contact: Mapping[str, Any]) -> str:
        """The text for one contact's values (its columns, and `custom_fields` as a dict), as the SQL renders it."""
        custom = contact.get("custom_fields") or {}
        rendered = []
        for part in self.parts:
            if isinstance(part, str):
                rendered.append(part)
                continue
            if part.name.startswith("custom_fields."):
                value = _json_text(custom.get(part.name.split(".", 1)[1]))
            else:
                value = contact.get(part.name)
            rendered.append(value if value else part.fallback)
        return "".join(rendered)

    def sql_expression(self, prefix: str = "template") -> tuple[sql.Composable, dict[str, str]]:
        """The rendered text of the contact row `c` as one SQL expression, and the parameters it names.

        Every literal, fallback and key is a `%(<prefix>_<n>)s` parameter, so no text of the template is SQL.
        """
        params: dict[str, str] = {}

        def param(value: str) -> sql.Composable:
            name = f"{prefix}_{len(params)}"
            params[name] = value
            return sql.SQL("{}::text").format(sql.Placeholder(name))

        pieces: list[sql.Composable] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(param(part))
                continue
            if part.name.startswith("custom_fields."):
                value: sql.Composable = sql.SQL("(c.custom_fields ->> {})").format(param(part.name.split(".", 1)[1]))
            else:
                value = _COLUMNS[part.name]
            pieces.append(sql.SQL("coalesce(nullif({}, ''), {})").format(value, param(part.fallback)))
        if not pieces:
            return sql.SQL("''::text"), params
        return sql.SQL("concat({})").format(sql.SQL(", ").join(pieces)), params


def sendable(body: sql.Composable) -> sql.Composable:
    """The SQL condition a rendered body meets to be sent: not empty, and within MAX_RENDERED_CHARACTERS.

    The dispatcher and the preview's estimate filter recipients with this one condition, so they agree.
    """
    return sql.SQL("({body} <> '' AND char_length({body}) <= {limit})").format(
        body=body, limit=sql.Literal(MAX_RENDERED_CHARACTERS)
    )


def _json_text(value: Any) -> str | None:
    """A custom field's value as PostgreSQL's `->>` gives it: strings as they are, other JSON as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


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


def _literal(text: str, field: str) -> str:
    if "{{" in text or "}}" in text:
        raise InvalidInputError(
            "The template has an unclosed '{{' or a stray '}}'.",
            errors=[FieldError(field, 'has unbalanced braces; write a literal {{ as {{"{{"}} and }} as {{"}}"}}')],
        )
    return text


def parse(text: str, field: str = "message_template") -> Template:
    """The template's literal text and field references; refuses unknown fields and stray braces."""
    if len(text) > MAX_TEMPLATE_CHARACTERS:
        raise InvalidInputError(
            f"A template has at most {MAX_TEMPLATE_CHARACTERS} characters.", errors=[FieldError(field, "is too long")]
        )
    parts: list[Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(_literal(text[position : match.start()], field))
        quoted, reference = match.group(1), match.group(2)
        parts.append(quoted if quoted is not None else _field(reference, field))
        position = match.end()
    parts.append(_literal(text[position:], field))
    merged: list[Part] = []
    for part in parts:
        if part == "":
            continue
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part  # quoted braces join the literal text around them
        else:
            merged.append(part)
    return Template(tuple(merged))
