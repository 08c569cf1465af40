"""Phone numbers in E.164, parsed and validated by libphonenumber's rules."""

import phonenumbers

from smsplatform.errors import FieldError, InvalidInputError


def normalise_e164(raw: str, default_region: str | None = None, *, field: str = "phone_number") -> str:
    """Returns the number in E.164, or raises with the reason it is not a valid number."""
    try:
        parsed = phonenumbers.parse(raw, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException as exc:
        reason = {
            phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
                "has no valid country code (use +<country code> or give a default region)"
            ),
            phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
            phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
            phonenumbers.NumberParseException.TOO_LONG: "is too long",
        }.get(exc.error_type, "is not a phone number")
        raise InvalidInputError(f"{raw!r} {reason}.", errors=[FieldError(field, reason)]) from exc
    if not phonenumbers.is_valid_number(parsed):
        reason = "is not a valid number for its country"
        raise InvalidInputError(f"{raw!r} {reason}.", errors=[FieldError(field, reason)])
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
