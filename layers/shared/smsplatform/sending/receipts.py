"""Delivery receipts: a provider's word on what became of a message it accepted.

Receipts are applied in batches, set-wise, by (provider, external id). Only a
`sent` message moves, to `delivered` or `undelivered`, so a repeated or late
receipt never moves a message backwards. A receipt for an id not recorded yet
(the provider answered before the sender committed) is returned to be retried.
"""

from dataclasses import dataclass, field
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core import db
from smsplatform.core.config import get_settings
from smsplatform.core.queue_messages import ProviderEvents, Receipt
from smsplatform.sending import inbound, messages, status_callbacks


@dataclass(frozen=True)
class Applied:
    applied: int
    ignored: int  # repeated or late: the message had already moved on
    unknown: list[str]  # no such message yet
    accounts: list[UUID] = field(default_factory=list)  # whose messages moved


def apply(conn: Connection[DictRow], provider: str, receipts: list[Receipt]) -> Applied:
    latest = {receipt.external_id: receipt for receipt in receipts}  # one per message, the last one given
    batch = list(latest.values())
    with conn.transaction():
        # One index probe of the provider's ids (sql/0027) per receipt (LATERAL ... LIMIT 1): mid-campaign their
        # statistics may not know the new ids yet, and the planner would otherwise hash-join a whole month of
        # them for every batch. The arrays go in binary (%b), cheaper to dump than text. What moved comes back
        # as two arrays in one row, not as a row per message, which cost more Python to build than the
        # statement took.
        updated = conn.execute(
            """WITH moved AS (
               UPDATE sms_delivery_logs l
                  SET status = m.status,
                      delivered_at = CASE WHEN m.status = 'delivered' THEN m.at END,
                      error_code = m.code, error_message = m.message, updated_at = now()
                 FROM (SELECT r.*, x.id, x.created_at
                         FROM unnest(%(ids)b::text[], %(statuses)b::text[], %(ats)b::timestamptz[],
                                     %(codes)b::text[], %(messages)b::text[])
                              AS r(external_id, status, at, code, message)
                         CROSS JOIN LATERAL (
                             SELECT p.message_id AS id, p.created_at FROM provider_message_ids p
                              WHERE p.provider = %(provider)s AND p.external_id = r.external_id LIMIT 1) x
                      ) m
                WHERE l.id = m.id AND l.created_at = m.created_at AND l.status = 'sent'
            RETURNING l.external_message_id, l.user_id)
               SELECT coalesce(array_agg(external_message_id), '{}') AS done,
                      coalesce(array_agg(DISTINCT user_id), '{}') AS accounts
                 FROM moved""",
            {
                "provider": provider,
                "ids": [r.external_id for r in batch],
                "statuses": [r.status for r in batch],
                "ats": [r.timestamp for r in batch],
                "codes": [r.error_code for r in batch],
                "messages": [r.error_message for r in batch],
            },
        ).fetchone()
        assert updated is not None
        done = set(updated["done"])
        rest = [r.external_id for r in batch if r.external_id not in done]
        known = (
            {
                row["external_id"]
                for row in conn.execute(
                    "SELECT external_id FROM provider_message_ids WHERE provider = %s AND external_id = ANY(%s)",
                    (provider, rest),
                )
            }
            if rest
            else set()
        )
    unknown = [external_id for external_id in rest if external_id not in known]
    return Applied(len(done), len(known), unknown, updated["accounts"])


class ReceiptsNotYetApplicableError(Exception):
    """Some receipts name messages whose send is not recorded yet: retry them later."""


def apply_events(events: ProviderEvents) -> None:
    """A provider's receipts and inbound messages in one transaction, then the callbacks and replies they make due.

    Raises ReceiptsNotYetApplicableError, after applying the rest, when some receipts name messages not
    recorded yet: the queue delivers the record again, and what was applied is not applied twice.
    """
    with db.transaction() as conn:
        applied = apply(conn, events.provider, events.receipts) if events.receipts else None
        received = inbound.apply(conn, events.provider, events.inbound, get_settings()) if events.inbound else None
        due = status_callbacks.accounts_due(conn, applied.accounts) if applied else []
    status_callbacks.announce(dict.fromkeys(due + (received.callback_accounts if received else [])))
    for replies in received.replies if received else []:
        messages.announce(replies)
    if applied and applied.unknown:
        raise ReceiptsNotYetApplicableError(f"{len(applied.unknown)} receipts name unknown messages")
