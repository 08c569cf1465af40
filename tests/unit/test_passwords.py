import pytest

from smsplatform.accounts import passwords
from smsplatform.core.errors import InvalidInputError


def test_a_hash_is_argon2id_and_verifies_only_the_right_password() -> None:
    hashed = passwords.hash_password("correct horse battery")

    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "correct horse battery")
    assert not passwords.verify_password(hashed, "correct horse batterY")
    assert not passwords.needs_rehash(hashed)


def test_verifying_against_no_account_is_false_even_for_the_dummy_password() -> None:
    assert not passwords.verify_password(None, "not a real password, only spends the same time")
    assert not passwords.verify_password("not-a-hash", "anything at all")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 10"),
        ("x" * 257, "at most 256"),
        ("abababababab", "repeated characters"),
        ("Password123", "most common"),
        ("my-alice-password", "username"),
        ("jsmith-rocks-hard", "e-mail"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        passwords.check_strength(password, username="alice", email="jsmith@example.com")

    assert reason in raised.value.detail
    assert raised.value.errors[0].field == "password"


def test_a_long_passphrase_passes() -> None:
    passwords.check_strength("correct horse battery staple", username="alice", email="alice@example.com")


def test_deployments_hash_at_rfc_9106s_low_memory_profile_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The suite runs at a lower cost (tests/conftest.py); what a deployment gets is argon2id t=3, 64 MiB, p=4,
    and the template sets none of the knobs."""
    from smsplatform.core.config import Settings
    from tests.support.paths import ROOT

    for knob in ("TIME_COST", "MEMORY_KIB", "PARALLELISM"):
        monkeypatch.delenv(f"SMS_PASSWORD_HASH_{knob}", raising=False)
        assert f"SMS_PASSWORD_HASH_{knob}" not in (ROOT / "template.yaml").read_text()
    settings = Settings()
    assert (
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    ) == (
        3,
        65_536,
        4,
    )
