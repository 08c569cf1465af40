from datetime import UTC, datetime, timedelta
from uuid import uuid4

import jwt
import pytest

from smsplatform.accounts import sessions
from smsplatform.core.errors import AuthenticationError

KEY = "unit-test-signing-key-0123456789abcdef"


def test_a_session_round_trips_with_its_expiry() -> None:
    user_id = uuid4()
    issued_at = datetime.now(UTC).replace(microsecond=0)

    token = sessions.issue_session(user_id, KEY, 900, now=issued_at)
    claims = sessions.verify_session(token.access_token, KEY)

    assert token.expires_in == 900
    assert claims.user_id == user_id
    assert claims.expires_at - claims.issued_at == timedelta(seconds=900)


def test_an_expired_session_is_refused_as_expired() -> None:
    token = sessions.issue_session(uuid4(), KEY, 60, now=datetime.now(UTC) - timedelta(minutes=5))

    with pytest.raises(AuthenticationError, match="expired"):
        sessions.verify_session(token.access_token, KEY)


def test_a_session_signed_with_another_key_is_refused() -> None:
    token = sessions.issue_session(uuid4(), "some-other-key-0123456789abcdefgh", 60)

    with pytest.raises(AuthenticationError, match="not a valid"):
        sessions.verify_session(token.access_token, KEY)


def test_a_token_that_is_not_a_session_is_refused() -> None:
    now = datetime.now(UTC)
    other = jwt.encode(
        {
            "iss": sessions.ISSUER,
            "aud": sessions.AUDIENCE,
            "sub": str(uuid4()),
            "iat": now,
            "exp": now + timedelta(minutes=1),
        },
        KEY,
        algorithm="HS256",
    )
    unsigned = jwt.encode({"sub": str(uuid4())}, key=None, algorithm="none")

    for token in (other, unsigned, "garbage", ""):
        with pytest.raises(AuthenticationError):
            sessions.verify_session(token, KEY)
