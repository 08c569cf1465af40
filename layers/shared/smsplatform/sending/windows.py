"""Sending windows: a campaign's messages go out only while it is, say, 09:00-20:00 where the recipient is.

A campaign's `settings.send_window` is `{start, end, days?, timezone}`, where
`timezone` is an IANA name or "recipient": then each recipient's zone is the
contact's own `timezone`, else the zones its number may be in (libphonenumber's),
and where a number spans several zones the window must be open in all of them.

Nothing sleeps. Openings are computed per distinct zone key (a zone, or zones
'|'-joined), a handful per campaign, never per recipient:

- the dispatcher writes each message's `window_zone`, `send_until` (when its
  window closes) and, if it is closed now, `not_before` and `held`; only batches
  with a message that may go now are announced;
- the sender claims only messages not held and whose window has not closed; a
  batch that arrives after its window closed (a throughput cap, a retry) holds
  those messages again until their next opening;
- the scheduler's tick wakes held messages whose time has come and announces
  their batches (`wake`), which also starts scheduled single messages; their
  campaign's throughput cap spreads them.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from psycopg import Connection
from psycopg.rows import DictRow

from smsplatform.core.errors import FieldError, InvalidInputError
from smsplatform.core.queue_messages import SendBatch

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RECIPIENT = "recipient"
NO_WINDOW = "no_send_window"
NO_WINDOW_TEXT = "The sending window is never open in every time zone this number may be in."
_HORIZON_DAYS = 8  # a window open on at least one weekday opens within a week
_WAKE_BATCH = 10_000


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time  # before start: the window runs past midnight
    days: frozenset[int]  # 0 = Monday; a window past midnight belongs to the day it starts on
    timezone: str  # IANA name, or RECIPIENT

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> "SendWindow | None":
        spec = (settings or {}).get("send_window")
        if not spec:
            return None
        return cls(
            time.fromisoformat(spec["start"]),
            time.fromisoformat(spec["end"]),
            frozenset(DAYS.index(day) for day in spec.get("days") or DAYS),
            spec.get("timezone") or RECIPIENT,
        )

    def _intervals(self, zone: ZoneInfo, around: datetime) -> list[tuple[datetime, datetime]]:
        """The window's openings in `zone`, in UTC, from the day before `around` to the horizon."""
        today = around.astimezone(zone).date()
        found = []
        for offset in range(-1, _HORIZON_DAYS + 1):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            end_day = day + timedelta(days=1) if self.end <= self.start else day
            opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
            closes = datetime.combine(end_day, self.end, tzinfo=zone).astimezone(UTC)
            found.append((opens, closes))
        return found

    def opening(self, zones: Iterable[str], now: datetime) -> tuple[datetime, datetime] | None:
        """(when the window is next open in every zone (`now` if it is), when it closes again); None if
        it never is within a week (zones too far apart for the window)."""
        per_zone = [self._intervals(zone, now) for zone in _zone_infos(zones)]
        candidates = sorted({now} | {opens for intervals in per_zone for opens, _ in intervals if opens > now})
        for instant in candidates:
            ends = []
            for intervals in per_zone:
                end = next((closes for opens, closes in intervals if opens <= instant < closes), None)
                if end is None:
                    break
                ends.append(end)
            else:
                return instant, min(ends)
        return None


def _zone_infos(zones: Iterable[str]) -> list[ZoneInfo]:
    found = []
    for name in zones:
        try:
            found.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # libphonenumber's "Etc/Unknown", or a zone this tzdata lacks
    return found or [ZoneInfo("UTC")]


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def is_zone(name: str) -> bool:
    return name in _zone_names()


def check_zone(name: str, field: str) -> str:
    if not is_zone(name):
        raise InvalidInputError(
            f"{name!r} is not an IANA time zone.", errors=[FieldError(field, "is not an IANA time zone name")]
        )
    return name


@dataclass(frozen=True)
class Openings:
    """Per zone key: when its messages may go (None: now), until when, and the keys never open."""

    keys: list[str]
    not_before: list[datetime | None]
    send_until: list[datetime]
    never: list[str]

    def params(self) -> dict[str, object]:
        """The keys that open, as arrays a statement unnests; a key not among them never opens."""
        return {"zone_keys": self.keys, "zone_not_before": self.not_before, "zone_send_until": self.send_until}


def openings(window: SendWindow, zone_keys: Iterable[str], now: datetime) -> Openings:
    keys, not_before, send_until, never = [], [], [], []
    for key in sorted(set(zone_keys)):
        found = window.opening(key.split("|"), now)
        if found is None:
            never.append(key)
            continue
        keys.append(key)
        not_before.append(None if found[0] <= now else found[0])
        send_until.append(found[1])
    return Openings(keys, not_before, send_until, never)


def rehold(conn: Connection[DictRow], campaign_id: UUID, batch: int, window: SendWindow, now: datetime) -> int:
    """Before a batch is claimed: its messages whose window closed wait for their next opening."""
    keys = [
        row["window_zone"]
        for row in conn.execute(
            """SELECT DISTINCT window_zone FROM sms_delivery_logs
                WHERE campaign_id = %s AND batch_number = %s AND status = 'queued' AND NOT held
                  AND send_until <= %s""",
            (campaign_id, batch, now),
        )
    ]
    if not keys:
        return 0
    found = openings(window, keys, now)
    return conn.execute(
        """UPDATE sms_delivery_logs l
              SET held = z.key IS NOT NULL AND z.not_before IS NOT NULL,
                  not_before = coalesce(z.not_before, l.not_before),
                  send_until = coalesce(z.send_until, l.send_until),
                  status = CASE WHEN z.key IS NULL THEN 'failed' ELSE l.status END,
                  error_code = CASE WHEN z.key IS NULL THEN %(never_code)s ELSE l.error_code END,
                  error_message = CASE WHEN z.key IS NULL THEN %(never_text)s ELSE l.error_message END,
                  idle_since = now(), updated_at = now()
             FROM unnest(%(closed)s::text[]) AS k(key)
             LEFT JOIN unnest(%(zone_keys)s::text[], %(zone_not_before)s::timestamptz[],
                              %(zone_send_until)s::timestamptz[]) AS z(key, not_before, send_until)
                    ON z.key = k.key
            WHERE l.campaign_id = %(campaign)s AND l.batch_number = %(batch)s AND l.window_zone = k.key
              AND l.status = 'queued' AND NOT l.held AND l.send_until <= %(now)s""",
        {
            "campaign": campaign_id,
            "batch": batch,
            "now": now,
            "closed": keys,
            "never_code": NO_WINDOW,
            "never_text": NO_WINDOW_TEXT,
            **found.params(),
        },
    ).rowcount


@dataclass(frozen=True)
class Woken:
    messages: int
    batches: list[SendBatch]


def wake(conn: Connection[DictRow], now: datetime) -> Woken:
    """The scheduler's tick: held messages whose time has come are queued again; their batches to announce.

    Flat as history grows: it reads the partial index of held messages only. A campaign's messages wait
    until it is sending: while it is still being dispatched, its dispatcher announces only what it found
    open, and a batch woken then would find nothing to claim and be left to the stall sweep.
    """
    rows = conn.execute(
        """WITH due AS (
               SELECT l.id, l.created_at FROM sms_delivery_logs l
                WHERE l.held AND (l.phase IS NULL OR l.phase = 'scheduled') AND l.status IN ('scheduled', 'queued')
                  AND l.not_before <= %s
                  AND NOT EXISTS (SELECT 1 FROM sms_campaigns c WHERE c.id = l.campaign_id AND c.status <> 'sending')
                ORDER BY l.not_before LIMIT %s FOR UPDATE OF l SKIP LOCKED)
           UPDATE sms_delivery_logs l SET held = false, status = 'queued', idle_since = now(), updated_at = now()
             FROM due WHERE l.id = due.id AND l.created_at = due.created_at
         RETURNING CASE WHEN l.campaign_id IS NOT NULL THEN 'campaign' ELSE 'request' END AS kind,
                   coalesce(l.campaign_id, l.request_id) AS id, l.batch_number AS batch""",
        (now, _WAKE_BATCH),
    ).fetchall()
    batches = sorted({(row["kind"], row["id"], row["batch"]) for row in rows})
    return Woken(len(rows), [SendBatch(kind=kind, id=ref, batch=batch) for kind, ref, batch in batches])
