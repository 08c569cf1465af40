"""Templates render any text exactly: preview, the dispatcher's SQL and the Python rendering agree, byte for byte."""

from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from smsplatform.campaigns import templates
from tests.support.corpus import ANN, MESSAGES
from tests.support.harness import Api, Pipeline
from tests.support.scenarios import give_credits, make_campaign, make_group


@pytest.mark.parametrize(("template", "expected"), MESSAGES)
def test_the_sql_and_python_renderings_are_the_expected_text(
    template: str, expected: str, conn: psycopg.Connection[Any]
) -> None:
    parsed = templates.parse(template)
    expression, params = parsed.sql_expression()

    row = conn.execute(
        sql.SQL(
            "SELECT {} AS body FROM (SELECT %(first)s::text AS first_name, %(last)s::text AS last_name,"
            " %(phone)s::text AS phone_number, NULL::text AS email, %(custom)s::jsonb AS custom_fields) c"
        ).format(expression),
        {
            "first": ANN["first_name"],
            "last": ANN["last_name"],
            "phone": ANN["phone_number"],
            "custom": Jsonb(ANN["custom_fields"]),
            **params,
        },
    ).fetchone()

    assert parsed.render(ANN) == expected
    assert row["body"] == expected


def test_custom_field_values_of_every_json_type_render_alike_in_sql_and_python(conn: psycopg.Connection[Any]) -> None:
    values = ["text", 42, 1.5, -0.25, True, False, None, "", "100%", {"a": [1, "b"]}, [1, 2], "naïve ☃"]
    parsed = templates.parse("[{{custom_fields.v|none}}]")
    expression, params = parsed.sql_expression()

    for value in values:
        row = conn.execute(
            sql.SQL("SELECT {} AS body FROM (SELECT %(custom)s::jsonb AS custom_fields) c").format(expression),
            {"custom": Jsonb({"v": value}), **params},
        ).fetchone()
        assert row["body"] == parsed.render({"custom_fields": {"v": value}}), value


def test_a_percent_sign_previews_and_sends_exactly(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    # Given one campaign per message of the corpus, each to Ann
    give_credits(api, admin, user, 1000)
    token = user["token"]
    group = make_group(api, token, "ann", [ANN])
    campaigns = {make_campaign(api, token, [group], template): expected for template, expected in MESSAGES}

    # When each is previewed and sent
    previews = {
        campaign_id: api.request("POST", f"/v1/campaigns/{campaign_id}/preview", token=token, json_body={})
        for campaign_id in campaigns
    }
    for campaign_id in campaigns:
        assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    pipeline.drain()

    # Then the preview and the delivered body are the expected text, byte for byte
    delivered = {
        str(row["campaign_id"]): row["body"]
        for row in conn.execute(
            """SELECT l.campaign_id, s.body FROM sms_delivery_logs l JOIN simulator_messages s ON s.message_id = l.id"""
        )
    }
    for campaign_id, expected in campaigns.items():
        assert previews[campaign_id].status == 200, previews[campaign_id].body
        assert previews[campaign_id].json()["text"] == expected
        assert delivered[campaign_id].encode() == expected.encode()
        status = api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()["status"]
        assert status == "completed"


def test_a_message_rendered_past_the_limit_is_not_sent_to_that_recipient(
    api: Api, admin: dict[str, Any], user: dict[str, Any], pipeline: Pipeline, conn: psycopg.Connection[Any]
) -> None:
    give_credits(api, admin, user, 1000)
    token = user["token"]
    long_fields = {key: "x" * 500 for key in ("a", "b", "c", "d")}
    people = [
        {"phone_number": "+447400123201", "custom_fields": long_fields},
        {"phone_number": "+447400123202", "custom_fields": {"a": "short"}},
    ]
    template = "{{custom_fields.a}}{{custom_fields.b}}{{custom_fields.c}}{{custom_fields.d}}!"
    campaign_id = make_campaign(api, token, [make_group(api, token, "both", people)], template)

    estimate = api.request("POST", f"/v1/campaigns/{campaign_id}/preview", token=token, json_body={}).json()
    assert api.request("POST", f"/v1/campaigns/{campaign_id}/send", token=token).status == 202
    pipeline.drain()

    sent = conn.execute("SELECT to_number, body FROM simulator_messages").fetchall()
    assert [(row["to_number"], row["body"]) for row in sent] == [("+447400123202", "short!")]
    campaign = api.request("GET", f"/v1/campaigns/{campaign_id}", token=token).json()
    assert (campaign["status"], campaign["total_recipients"]) == ("completed", 1)
    assert (estimate["recipients"], estimate["estimated_credits"]) == (1, 1)  # the preview counts as the send does
