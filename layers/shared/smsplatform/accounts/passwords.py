"""Password hashing (argon2id) and the strength rule applied at signup and change."""

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from smsplatform.core.config import get_settings
from smsplatform.core.errors import FieldError, InvalidInputError

MIN_LENGTH = 10
# Long enough for any passphrase, short enough that hashing cannot be used to burn CPU.
MAX_LENGTH = 256
# The most common passwords that pass the length rule; a breached-password
# check can replace this list without changing callers.
_COMMON = frozenset(
    {
        "1234567890",
        "12345678910",
        "123456789a",
        "qwertyuiop",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou123",
        "abcdefghij",
        "1q2w3e4r5t",
        "qwerty12345",
        "0123456789",
        "letmein1234",
        "welcome123",
        "administrator",
    }
)


@cache
def _hasher() -> PasswordHasher:
    """argon2id at the configured cost: by default RFC 9106's "low memory" profile (t=3, m=64 MiB, p=4)."""
    settings = get_settings()
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )


@cache
def _dummy_hash() -> str:
    """Verified against when a login names no account, so that case costs the same time.

    Made on first use, not at import: hashing costs ~100 ms of cold start."""
    return _hasher().hash("not a real password, only spends the same time")


def check_strength(password: str, *, field: str = "password", username: str = "", email: str = "") -> None:
    problem = None
    lowered = password.lower()
    if len(password) < MIN_LENGTH:
        problem = f"must be at least {MIN_LENGTH} characters long"
    elif len(password) > MAX_LENGTH:
        problem = f"must be at most {MAX_LENGTH} characters long"
    elif len(set(password)) < 4:
        problem = "must not be made of one or two repeated characters"
    elif lowered in _COMMON:
        problem = "is one of the most common passwords"
    elif username and username.lower() in lowered:
        problem = "must not contain the username"
    elif email and email.split("@", 1)[0].lower() in lowered and len(email.split("@", 1)[0]) >= 3:
        problem = "must not contain the e-mail address"
    if problem:
        raise InvalidInputError(f"The password is too weak: it {problem}.", errors=[FieldError(field, problem)])


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
