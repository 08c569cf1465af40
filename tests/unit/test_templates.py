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


def test_the_sql_quotes_literals_and_keys_instead_of_splicing_them() -> None:
    parsed = templates.parse("it's {{custom_fields.a_b|o'clock}}; DROP TABLE users; --")

    rendered = parsed.sql_expression().as_string(None)

    assert "'it''s '" in rendered
    assert "(c.custom_fields ->> 'a_b')" in rendered
    assert "'o''clock'" in rendered
    assert "'; DROP TABLE users; --'" in rendered
