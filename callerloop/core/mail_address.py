"""Checking an e-mail address from a setting or an agency file, with the standard
library's own RFC 5322 parser (`email.headerregistry.Address`)."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address

EXAMPLE = "supervisor@police.example.gov"


def checked_address(value: str) -> str:
    """`value` as a bare address (`local@domain.tld`, no display name, no list), or a
    ValueError that says what is wrong with it."""
    text = value.strip()
    try:
        address = Address(addr_spec=text)
    # The parser answers some malformed addresses ("", "a@") with an IndexError.
    except (ValueError, IndexError, HeaderParseError):
        raise ValueError(f"{value!r} is not an e-mail address like {EXAMPLE}") from None
    if "." not in address.domain or address.domain.startswith("["):
        raise ValueError(f"{value!r}: the domain needs a name with a dot, like {EXAMPLE}")
    return address.addr_spec
