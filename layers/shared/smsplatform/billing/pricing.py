"""Prices per destination: credits per segment by country, and the countries nothing is sent to.

A country's price for an account is, first found: the account's own row, the
platform's row, the platform default (`default_credits_per_segment`; 0 means
"unpriced"). Either row may block the country instead. A destination that is
blocked or has no price is refused on single sends and left out of campaigns.

The price is written into each message's `cost` when it is materialised, in the
same statement, and settlement charges `cost`: a price change after a campaign's
release does not change what it is charged.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import Connection, sql
from psycopg.rows import DictRow

from smsplatform.contacts import phones
from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import FieldError, InvalidInputError, NotFoundError

# The account's effective rows, one per country it or the platform lists (the account's row wins).
_EFFECTIVE = """SELECT DISTINCT ON (country) country, credits_per_segment AS credits, blocked,
                       CASE WHEN user_id IS NULL THEN 'platform' ELSE 'account' END AS source, updated_at
                  FROM destination_prices WHERE user_id = %(price_user)s OR user_id IS NULL
                 ORDER BY country, user_id NULLS LAST"""


def join(country: sql.Composable, user: sql.Composable | None = None) -> tuple[sql.Composable, sql.Composable]:
    """A LEFT JOIN of prices on `country` (a column), and the per-row price it gives: credits per segment,
    NULL if blocked or unpriced. The statement's parameters include `params(...)`.

    Without `user`, the prices are those of the account `params` names, hash-joined: one lookup table
    for any audience. With `user` (a column), each row's own account's, looked up row by row: for the
    few rows of several accounts (keyword replies).
    """
    if user is None:
        clause = sql.SQL("LEFT JOIN ({effective}) price ON price.country = {country}").format(
            effective=sql.SQL(_EFFECTIVE), country=country
        )
    else:
        clause = sql.SQL(
            """LEFT JOIN LATERAL (
                   SELECT credits_per_segment AS credits, blocked FROM destination_prices
                    WHERE country = {country} AND (user_id = {user} OR user_id IS NULL)
                    ORDER BY user_id NULLS LAST LIMIT 1) price ON true"""
        ).format(country=country, user=user)
    value = sql.SQL(
        """CASE WHEN {country} IS NULL OR price.blocked THEN NULL
                ELSE coalesce(price.credits, nullif(%(default_price)s, 0)) END"""
    ).format(country=country)
    return clause, value


def params(user_id: UUID, default_price: int) -> dict[str, object]:
    return {"price_user": user_id, "default_price": default_price}


@dataclass(frozen=True)
class CountryPrice:
    country: str
    credits_per_segment: int | None
    blocked: bool
    source: str  # "platform" or "account"
    updated_at: datetime


@dataclass(frozen=True)
class PriceList:
    default_credits_per_segment: int | None
    data: list[CountryPrice]


def effective(conn: Connection[DictRow], user_id: UUID, default_price: int) -> PriceList:
    rows = conn.execute(_EFFECTIVE, params(user_id, default_price)).fetchall()
    return PriceList(
        default_price or None,
        [
            CountryPrice(row["country"], row["credits"], row["blocked"], row["source"], row["updated_at"])
            for row in rows
        ],
    )


def quote(
    conn: Connection[DictRow], user_id: UUID, countries: Iterable[str | None], default_price: int
) -> dict[str | None, int | None]:
    """Credits per segment for each of `countries` (None where blocked or unpriced)."""
    countries = list(countries)
    wanted = sorted({country for country in countries if country})
    clause, value = join(sql.SQL("w.country"))
    rows = conn.execute(
        sql.SQL("SELECT w.country, {} AS price FROM unnest(%(countries)s::text[]) AS w(country) {}").format(
            value, clause
        ),
        {"countries": wanted, **params(user_id, default_price)},
    ).fetchall()
    found: dict[str | None, int | None] = {row["country"]: row["price"] for row in rows}
    return {country: found.get(country) for country in countries}


def check_country(country: str) -> str:
    code = country.upper()
    if len(code) != 2 or not phones.is_region(code):
        raise InvalidInputError(
            f"{country!r} is not an ISO 3166-1 alpha-2 country code.",
            errors=[FieldError("country", "is not an ISO 3166-1 alpha-2 code")],
        )
    return code


def set_price(
    conn: Connection[DictRow],
    actor: UUID,
    owner: UUID | None,
    country: str,
    credits_per_segment: int | None,
    blocked: bool,
    meta: RequestMeta,
) -> CountryPrice:
    """The platform's price of a country (owner None) or one account's; `blocked` instead of a price."""
    code = check_country(country)
    if not blocked and credits_per_segment is None:
        raise InvalidInputError(
            "Give credits_per_segment, or blocked: true.",
            errors=[FieldError("credits_per_segment", "is required unless blocked")],
        )
    with conn.transaction():
        if owner is not None and conn.execute("SELECT 1 FROM users WHERE id = %s", (owner,)).fetchone() is None:
            raise NotFoundError("No such user.")
        row = conn.execute(
            """INSERT INTO destination_prices (user_id, country, credits_per_segment, blocked)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT ON CONSTRAINT destination_prices_one_per_country DO UPDATE
                  SET credits_per_segment = EXCLUDED.credits_per_segment, blocked = EXCLUDED.blocked,
                      updated_at = now()
               RETURNING country, credits_per_segment, blocked,
                         CASE WHEN user_id IS NULL THEN 'platform' ELSE 'account' END AS source, updated_at""",
            (owner, code, None if blocked else credits_per_segment, blocked),
        ).fetchone()
        assert row is not None
        details: dict[str, object] = {"country": code, "credits_per_segment": row["credits_per_segment"]}
        details |= {"blocked": blocked, "scope": "account" if owner else "platform"}
        if owner is not None:
            details["owner_id"] = str(owner)
        audit.record(conn, actor, "pricing.set", details, meta)
    return CountryPrice(**row)


def delete_price(conn: Connection[DictRow], actor: UUID, owner: UUID | None, country: str, meta: RequestMeta) -> None:
    """Removes the platform's row (the default applies) or an account's override (the platform's applies)."""
    code = check_country(country)
    with conn.transaction():
        deleted = conn.execute(
            "DELETE FROM destination_prices WHERE user_id IS NOT DISTINCT FROM %s AND country = %s",
            (owner, code),
        ).rowcount
        if not deleted:
            raise NotFoundError("No price is set for this country here.")
        details: dict[str, object] = {"country": code, "scope": "account" if owner else "platform"}
        if owner is not None:
            details["owner_id"] = str(owner)
        audit.record(conn, actor, "pricing.delete", details, meta)
