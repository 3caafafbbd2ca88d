"""Phone numbers: parse and normalise to E.164 with ``phonenumbers``; hash for discovery.

A number is accepted only when libphonenumber calls it *valid* (a real
numbering range of its country), not merely *possible* (the right length):
an SMS to a number that cannot exist costs money and proves nothing.

``phone_hash`` is what contact discovery compares: SHA-256 of the E.164
text, lowercase hex. Clients hash their address book the same way (after
normalising each number to E.164 with the user's region as default), so the
numbers themselves never leave the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bridge.errors import BadRequest, RestCode

# Longer input is not a phone number, whatever it contains.
MAX_INPUT_CHARS = 40


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str  # "+33612345678"
    country_code: int  # 33: the per-country velocity limits key on it
    region: str | None  # "FR"; None for non-geographic numbers


def normalise(text: str, region: str | None = None) -> Phone:
    """``text`` as E.164, or ``BadRequest(invalid_phone)`` saying what is wrong.

    ``region`` (ISO 3166 alpha-2) is the default for national-format input
    ("06 12 34 56 78" with region "FR"); input starting with "+" needs none.
    """
    if len(text) > MAX_INPUT_CHARS:
        raise _invalid("The phone number is too long.")
    if region is not None and (len(region) != 2 or not region.isascii() or not region.isalpha()):
        raise BadRequest(
            "region must be a two-letter country code such as FR.",
            code=RestCode.INVALID_PHONE,
            field="region",
        )
    import phonenumbers  # its metadata tables load in ~20 ms: on first use, not at start-up

    try:
        parsed = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise _invalid(
                "Give the number in international format (+33 6 12 34 56 78) or send a region."
            ) from exc
        raise _invalid("This is not a phone number.") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise _invalid("This phone number does not exist in its country's numbering plan.")
    return Phone(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        country_code=int(parsed.country_code or 0),
        region=phonenumbers.region_code_for_number(parsed),
    )


def phone_hash(e164: str) -> str:
    return hashlib.sha256(e164.encode()).hexdigest()


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, code=RestCode.INVALID_PHONE, field="phone")
