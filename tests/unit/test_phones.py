import pytest

from smsplatform.contacts.phones import normalise_e164
from smsplatform.core.errors import InvalidInputError


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 7911 123456", None, "+447911123456"),
        ("07911 123456", "GB", "+447911123456"),
        ("(202) 555-0143", "us", "+12025550143"),
        ("+1-202-555-0143", "GB", "+12025550143"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_e164(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("07911 123456", None, "country code"),
        ("hello", "GB", "not a phone number"),
        ("+44 12", None, "not a valid number"),
        ("+44 7700 900123", None, "not a valid number"),
    ],
)
def test_invalid_numbers_are_refused_with_the_reason(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        normalise_e164(raw, region, field="to")

    assert reason in raised.value.detail
    assert raised.value.errors[0].field == "to"
