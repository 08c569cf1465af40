"""What recipients text back that means something: each account's opt-out, opt-in and help keywords and replies.

A keyword is the whole message, compared after `normalise` (Unicode NFC, surrounding whitespace and
punctuation dropped, upper case), so " Stop! " is STOP. An account that never set its own uses the
platform defaults, which include the common forms in other languages. Opt-out must keep STOP: carriers
require it to work on every number. A reply of null is not sent (an integrator answering from its
`inbound_url` may want that); every reply is a message like any other, charged and sent through the
pipeline (sending/inbound.py).
"""

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Literal
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from smsplatform.core import audit
from smsplatform.core.audit import RequestMeta
from smsplatform.core.errors import FieldError, InvalidInputError

Keyword = Literal["opt_out", "opt_in", "help"]
KEYWORDS: tuple[Keyword, ...] = ("opt_out", "opt_in", "help")
MAX_WORDS = 50
MAX_WORD_CHARACTERS = 20

# STOP and its carrier-standard synonyms, then French (ARRET), Spanish (BAJA, CANCELAR, PARAR,
# DETENER), Portuguese (PARAR, SAIR, CANCELAR), German and Scandinavian (STOPP), and ALT.
DEFAULT_OPT_OUT = (
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
    "ARRET", "ARRÊT", "BAJA", "CANCELAR", "PARAR", "DETENER", "SAIR", "STOPP", "ALT",
)  # fmt: skip
# Not YES: an account asking "reply YES to confirm" would otherwise send resubscription notices.
DEFAULT_OPT_IN = ("START", "UNSTOP", "SUBSCRIBE")
DEFAULT_HELP = ("HELP", "INFO", "AIDE", "AYUDA", "AJUDA", "HILFE", "AIUTO")
DEFAULT_REPLIES: dict[Keyword, str | None] = {
    "opt_out": "You have been unsubscribed and will get no more messages from this number. Reply START to resubscribe.",
    "opt_in": "You have been resubscribed. Reply STOP to unsubscribe.",
    "help": "Reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply.",
}

_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$")


def normalise(text: str) -> str:
    """The form keywords are stored and compared in."""
    return _EDGES.sub("", unicodedata.normalize("NFC", text)).upper()


@dataclass(frozen=True)
class Keywords:
    opt_out: list[str]
    opt_in: list[str]
    help: list[str]
    replies: dict[Keyword, str | None]

    def match(self, text: str) -> Keyword | None:
        """Which keyword the whole of `text` is, if any."""
        word = normalise(text)
        return next((keyword for keyword in KEYWORDS if word in getattr(self, keyword)), None)

    def reply_for(self, keyword: Keyword) -> str | None:
        return self.replies.get(keyword)


DEFAULTS = Keywords(list(DEFAULT_OPT_OUT), list(DEFAULT_OPT_IN), list(DEFAULT_HELP), dict(DEFAULT_REPLIES))


def _from_settings(settings: dict[str, object] | None) -> Keywords:
    if not settings:
        return DEFAULTS
    replies = settings.get("replies")
    return Keywords(
        opt_out=list(settings.get("opt_out") or DEFAULTS.opt_out),  # type: ignore[call-overload]
        opt_in=list(settings.get("opt_in") or []),  # type: ignore[call-overload]
        help=list(settings.get("help") or []),  # type: ignore[call-overload]
        replies={k: (replies or {}).get(k) for k in KEYWORDS} if isinstance(replies, dict) else DEFAULTS.replies,
    )


def get(conn: Connection[DictRow], user_id: UUID) -> Keywords:
    row = conn.execute("SELECT settings FROM account_keywords WHERE user_id = %s", (user_id,)).fetchone()
    return _from_settings(row["settings"] if row else None)


def for_accounts(conn: Connection[DictRow], user_ids: list[UUID]) -> dict[UUID, Keywords]:
    """Every listed account's keywords (defaults where it set none), in one query."""
    rows = conn.execute(
        "SELECT user_id, settings FROM account_keywords WHERE user_id = ANY(%s)", (user_ids,)
    ).fetchall()
    own = {row["user_id"]: _from_settings(row["settings"]) for row in rows}
    return {user_id: own.get(user_id, DEFAULTS) for user_id in user_ids}


def _words(field: str, words: list[str]) -> list[str]:
    if len(words) > MAX_WORDS:
        raise InvalidInputError(f"At most {MAX_WORDS} keywords.", errors=[FieldError(field, "too many")])
    found = list(dict.fromkeys(normalise(word) for word in words))
    for index, (raw, word) in enumerate(zip(words, map(normalise, words), strict=True)):
        if not word or len(word) > MAX_WORD_CHARACTERS or any(c.isspace() for c in word):
            raise InvalidInputError(
                f"{raw!r} is not a keyword: one word of 1 to {MAX_WORD_CHARACTERS} characters.",
                errors=[FieldError(f"{field}[{index}]", "one word")],
            )
    return found


def put(
    conn: Connection[DictRow],
    user_id: UUID,
    lists: dict[Keyword, list[str] | None],
    replies: dict[Keyword, str | None],
    meta: RequestMeta,
) -> Keywords:
    """Replaces the account's keywords; a list left out (None) or a reply not given keeps the platform
    default, and a reply given as None is not sent.

    Raises InvalidInputError when a word is in two lists, or opt-out lacks STOP.
    """
    replies = {keyword: replies.get(keyword, DEFAULTS.reply_for(keyword)) for keyword in KEYWORDS}
    chosen = {
        keyword: _words(keyword, words) if words is not None else list(getattr(DEFAULTS, keyword))
        for keyword, words in lists.items()
    }
    if "STOP" not in chosen["opt_out"]:
        raise InvalidInputError(
            "Opt-out must include STOP: carriers require it to work on every number.",
            errors=[FieldError("opt_out", "must include STOP")],
        )
    seen: dict[str, Keyword] = {}
    for keyword in KEYWORDS:
        for word in chosen[keyword]:
            if word in seen:
                raise InvalidInputError(
                    f"{word} cannot be both {seen[word]} and {keyword}.",
                    errors=[FieldError(keyword, f"{word} is already in {seen[word]}")],
                )
            seen[word] = keyword
    found = Keywords(chosen["opt_out"], chosen["opt_in"], chosen["help"], replies)
    conn.execute(
        """INSERT INTO account_keywords (user_id, settings) VALUES (%s, %s)
           ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, updated_at = now()""",
        (user_id, Jsonb(asdict(found))),
    )
    audit.record(
        conn,
        user_id,
        "keywords.set",
        {keyword: len(chosen[keyword]) for keyword in KEYWORDS}
        | {f"{keyword}_reply": replies.get(keyword) is not None for keyword in KEYWORDS},
        meta,
    )
    return found
