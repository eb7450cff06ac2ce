"""Phone numbers at the edge: parsed and classified with `phonenumbers`."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

from workflows.model import LineType

_LINE_TYPES = {
    PhoneNumberType.MOBILE: LineType.MOBILE,
    PhoneNumberType.FIXED_LINE: LineType.LANDLINE,
    PhoneNumberType.VOIP: LineType.VOIP,
}


class InvalidPhoneNumber(ValueError):
    pass


def to_e164(raw: str, region: str) -> str:
    """E.164 form of a number as a CAD writes it ('(703) 555-0123', '+1 703…')."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"{raw!r} is not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"{raw!r} is not a valid number for region {region}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def line_type(e164: str, cad_says: LineType | None) -> LineType:
    """The numbering plan decides where it can (mobile-only or fixed-only ranges); in
    North America most ranges are either, so CAD's word (e.g. ALI class WRLS) decides."""
    number_type = phonenumbers.number_type(phonenumbers.parse(e164))
    return _LINE_TYPES.get(number_type, cad_says or LineType.UNKNOWN)
