"""Phone numbers in E.164, parsed and validated by libphonenumber's rules."""

import phonenumbers
from phonenumbers import NumberParseException

from smsplatform.core.errors import FieldError, InvalidInputError

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        "has no valid country code (use +<country code> or give a default region)"
    ),
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_NSN: "is too short",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    NumberParseException.TOO_LONG: "is too long",
}


class UnusableNumberError(ValueError):
    """A number that cannot be sent to; the message says why, for a person to read."""


def parse(raw: str, default_region: str | None = None) -> tuple[str, str | None]:
    """Returns (E.164, ISO region of the number) or raises UnusableNumberError with the reason."""
    try:
        parsed = phonenumbers.parse(raw, default_region.upper() if default_region else None)
    except NumberParseException as exc:
        raise UnusableNumberError(_PARSE_REASONS.get(exc.error_type, "is not a phone number")) from exc
    # The region lookup already matches the number against each candidate region's
    # patterns; validating for that one region then costs one more match, not another search.
    region = phonenumbers.region_code_for_number(parsed)
    if region is None or not phonenumbers.is_valid_number_for_region(parsed, region):
        raise UnusableNumberError("is not a valid number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), region


def region_of(number: str) -> str | None:
    """The ISO region of a number, or None where libphonenumber cannot place it (so nothing is priced for it)."""
    try:
        return parse(number)[1]
    except UnusableNumberError:
        return None


def time_zones(e164: str) -> str:
    """The IANA zones a number may be in, '|'-joined ('' if libphonenumber does not know).

    libphonenumber's prefix table, read by the longest prefix of the number's digits: a US number by its
    area code, a mobile number of a country without geographic mobile prefixes by its country code.
    """
    from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

    digits = e164.lstrip("+")
    for length in range(min(len(digits), TIMEZONE_LONGEST_PREFIX), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return "|".join(sorted(zone for zone in zones if zone != "Etc/Unknown"))
    return ""


def is_region(code: str) -> bool:
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def normalise_e164(raw: str, default_region: str | None = None, *, field: str = "phone_number") -> str:
    """Returns the number in E.164, or raises a 422 with the reason it is not a valid number."""
    return parse_for_field(raw, default_region, field=field)[0]


def parse_for_field(raw: str, default_region: str | None = None, *, field: str) -> tuple[str, str | None]:
    try:
        return parse(raw, default_region)
    except UnusableNumberError as exc:
        raise InvalidInputError(f"{raw!r} {exc}.", errors=[FieldError(field, str(exc))]) from exc
