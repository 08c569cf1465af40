"""The credits ledger: balances and ledger rows move together, never below zero, also concurrently."""

import threading
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from smsplatform.billing import ledger
from smsplatform.core.errors import ConflictError, InsufficientCreditsError
from tests.support.harness import Api


def _balance(conn: psycopg.Connection[Any], user_id: str) -> int:
    return int(conn.execute("SELECT sms_credits FROM users WHERE id = %s", (user_id,)).fetchone()["sms_credits"])


def _ledger_total(conn: psycopg.Connection[Any], user_id: str) -> int:
    return int(
        conn.execute(
            "SELECT coalesce(sum(credits), 0) AS total FROM billing_transactions WHERE user_id = %s", (user_id,)
        ).fetchone()["total"]
    )


def test_fifty_concurrent_debits_against_a_balance_for_twenty(
    user: dict[str, Any], conn: psycopg.Connection[Any], database_url: str
) -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as setup:
        ledger.top_up(setup, user["id"], 20, amount=Decimal("2.00"))
    start = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def debit() -> None:
        with psycopg.connect(database_url, row_factory=dict_row) as own:
            start.wait()
            try:
                with own.transaction():
                    ledger.reserve(own, user["id"], 1, uuid.uuid4(), "request")
                result = "ok"
            except InsufficientCreditsError:
                result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=debit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("ok") == 20
    assert outcomes.count("refused") == 30
    assert _balance(conn, user["id"]) == 0
    assert _ledger_total(conn, user["id"]) == 0  # +20 top-up, 20 x -1
    rows = conn.execute(
        "SELECT credits_before, credits_after FROM billing_transactions WHERE user_id = %s ORDER BY credits_before",
        (user["id"],),
    ).fetchall()
    assert [(r["credits_before"], r["credits_after"]) for r in rows][:3] == [(0, 20), (1, 0), (2, 1)]


def test_a_reservation_ends_spent_and_refunded_and_never_more(
    user: dict[str, Any], conn: psycopg.Connection[Any], database_url: str
) -> None:
    campaign = uuid.uuid4()
    with psycopg.connect(database_url, row_factory=dict_row) as own:
        ledger.top_up(own, user["id"], 100, amount=Decimal("10.00"))
        ledger.reserve(own, user["id"], 60, campaign, "campaign")
        ledger.spend(own, user["id"], 45, campaign, "campaign")
        ledger.refund(own, user["id"], 15, campaign, "campaign")
        with pytest.raises(ConflictError, match="outstanding"):
            ledger.refund(own, user["id"], 1, campaign, "campaign")
        with pytest.raises(ConflictError):
            ledger.spend(own, user["id"], 1, campaign, "campaign")
        summary = ledger.reservation(own, user["id"], campaign)
        own.commit()

    assert (summary.reserved, summary.spent, summary.refunded, summary.outstanding) == (60, 45, 15, 0)
    assert _balance(conn, user["id"]) == 55 == _ledger_total(conn, user["id"])


def test_concurrent_spends_and_refunds_never_take_more_than_was_reserved(
    user: dict[str, Any], conn: psycopg.Connection[Any], database_url: str
) -> None:
    campaign = uuid.uuid4()
    with psycopg.connect(database_url, row_factory=dict_row) as setup:
        ledger.top_up(setup, user["id"], 100, amount=Decimal("10.00"))
        ledger.reserve(setup, user["id"], 30, campaign, "campaign")
        setup.commit()
    start = threading.Barrier(40)
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def settle_one(move: Any) -> None:
        with psycopg.connect(database_url, row_factory=dict_row) as own:
            start.wait()
            try:
                with own.transaction():
                    move(own, user["id"], 1, campaign, "campaign")
                result = "ok"
            except ConflictError:
                result = "refused"
        with lock:
            outcomes.append((move.__name__, result))

    threads = [threading.Thread(target=settle_one, args=(move,)) for move in [ledger.spend, ledger.refund] * 20]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(database_url, row_factory=dict_row) as own:
        summary = ledger.reservation(own, user["id"], campaign)

    ok = [name for name, result in outcomes if result == "ok"]
    assert (len(ok), len(outcomes)) == (30, 40)
    assert (summary.spent, summary.refunded) == (ok.count("spend"), ok.count("refund"))
    assert (summary.reserved, summary.outstanding) == (30, 0)
    assert _balance(conn, user["id"]) == 70 + summary.refunded == _ledger_total(conn, user["id"])


def test_operators_top_up_and_the_owner_sees_the_ledger(api: Api, admin: dict[str, Any], user: dict[str, Any]) -> None:
    bought = api.request(
        "POST",
        f"/v1/users/{user['id']}/credits",
        token=admin["token"],
        json_body={"credits": 500, "amount": "25.00", "payment_method": "card", "description": "starter pack"},
    )
    corrected = api.request(
        "POST",
        f"/v1/users/{user['id']}/credits",
        token=admin["token"],
        json_body={"credits": -20, "description": "double-counted test send"},
    )

    assert bought.status == corrected.status == 201
    assert bought.json()["transaction_type"] == "credit_purchase"
    assert (bought.json()["credits_before"], bought.json()["credits_after"]) == (0, 500)
    assert corrected.json()["transaction_type"] == "adjustment"
    assert corrected.json()["credits_after"] == 480
    history = api.request("GET", "/v1/billing/transactions", token=user["token"]).json()["data"]
    assert [entry["credits"] for entry in history] == [-20, 500]  # newest first
    assert api.request("GET", "/v1/users/me", token=user["token"]).json()["sms_credits"] == 480


def test_an_adjustment_below_zero_is_refused_and_changes_nothing(
    api: Api, admin: dict[str, Any], user: dict[str, Any], conn: psycopg.Connection[Any]
) -> None:
    response = api.request("POST", f"/v1/users/{user['id']}/credits", token=admin["token"], json_body={"credits": -1})

    assert response.status == 402
    assert response.json()["type"].endswith("/insufficient-credits")
    assert conn.execute("SELECT count(*) AS n FROM billing_transactions").fetchone()["n"] == 0


def test_credits_for_an_unknown_account_are_a_404(api: Api, admin: dict[str, Any]) -> None:
    response = api.request("POST", f"/v1/users/{uuid.uuid4()}/credits", token=admin["token"], json_body={"credits": 5})

    assert response.status == 404


def test_clients_cannot_give_themselves_credits(api: Api, user: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    response = api.request("POST", f"/v1/users/{user['id']}/credits", token=user["token"], json_body={"credits": 5})

    assert response.status == 403
    assert _balance(conn, user["id"]) == 0
