"""Phone numbers in E.164 (``+15551234567``), through the phonenumbers library."""

from __future__ import annotations

import phonenumbers


def to_e164(value: str, region: str | None = None) -> str:
    """``value`` as a valid E.164 number; a number without ``+`` is read in ``region`` (an ISO
    3166-1 alpha-2 code) when given. Raises ``ValueError`` for anything else."""
    if not isinstance(value, str) or not value.strip() or len(value) > 40:
        raise ValueError("not a phone number")
    try:
        number = phonenumbers.parse(value, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
