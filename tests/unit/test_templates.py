"""Message templates: what they may name, and what they refuse."""

import pytest

from smsplatform.campaigns import templates
from smsplatform.core.errors import InvalidInputError


def test_fields_fallbacks_and_literal_text_are_parsed_in_order() -> None:
    parsed = templates.parse("Hi {{ first_name | there }}, plan {{custom_fields.plan}}.")

    assert parsed.parts == (
        "Hi ",
        templates.Field("first_name", "there"),
        ", plan ",
        templates.Field("custom_fields.plan", ""),
        ".",
    )
    assert parsed.render_fallbacks() == "Hi there, plan ."


@pytest.mark.parametrize(
    "text",
    [
        "{{password_hash}}",
        "{{users.email}}",
        "{{custom_fields}}",
        "{{custom_fields.Bad-Key}}",
        "{{first_name",
        "stray }} braces",
        "{{}}",
        "{{first_name|{{last_name}}}}",
        "x" * (templates.MAX_TEMPLATE_CHARACTERS + 1),
    ],
)
def test_unknown_fields_and_broken_braces_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        templates.parse(text)

    assert refused.value.errors[0].field == "message_template"


def test_no_text_of_the_template_becomes_sql() -> None:
    parsed = templates.parse("it's 20% {{custom_fields.a_b|o'clock}}; DROP TABLE users; -- %(user)s")

    expression, params = parsed.sql_expression()
    rendered = expression.as_string(None)

    assert "it's" not in rendered
    assert "DROP" not in rendered
    assert "a_b" not in rendered
    assert "%(user)s" not in rendered
    assert "(c.custom_fields ->> %(template_1)s::text)" in rendered
    assert params == {
        "template_0": "it's 20% ",
        "template_1": "a_b",
        "template_2": "o'clock",
        "template_3": "; DROP TABLE users; -- %(user)s",
    }


def test_literal_double_braces_are_written_as_quoted_strings() -> None:
    parsed = templates.parse('Use {{"{{"}}first_name{{"}}"}} for {{ first_name | you }}')

    assert parsed.parts == ("Use {{first_name}} for ", templates.Field("first_name", "you"))
    assert parsed.render({"first_name": "Ann"}) == "Use {{first_name}} for Ann"
