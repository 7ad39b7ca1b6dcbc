"""Belgian business identifiers: KBO/BCE enterprise numbers and IBANs, checked and normalised.

Both are read from people (typed, imported from a CSV, set in the environment), so every
written form is accepted (``BE 0207.451.227``, ``0207 451 227``, ``207451227``) and stored in
one normal form; the check digits are verified, so a typo is refused where it is made instead
of on an invoice.

This module must not know about tenants, billing or the database.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s.\-/]")


def normalise_enterprise_number(text: str) -> str:
    """The ten digits of a KBO/BCE number (``0207451227``), or ValueError saying why not.

    The check: the last two digits are 97 minus the first eight modulo 97. An old nine-digit
    number is the same number with a leading 0.
    """
    compact = _SEPARATORS.sub("", text.strip()).upper()
    compact = compact.removeprefix("BE")
    if not (compact.isascii() and compact.isdigit()) or len(compact) not in (9, 10):
        raise ValueError(f"{text!r} is not an enterprise number: ten digits, e.g. 0207.451.227")
    if len(compact) == 9:
        compact = "0" + compact
    if compact[0] not in "01":
        raise ValueError(f"{text!r} is not an enterprise number: it starts with 0 or 1")
    if 97 - int(compact[:8]) % 97 != int(compact[8:]):
        raise ValueError(
            f"{text!r} is not an enterprise number: its check digits {compact[8:]} should be "
            f"{97 - int(compact[:8]) % 97:02d} (97 minus the first eight digits modulo 97)"
        )
    return compact


def format_enterprise_number(digits: str) -> str:
    """``0207451227`` as it is shown: ``0207.451.227``."""
    return f"{digits[:4]}.{digits[4:7]}.{digits[7:]}"


def normalise_iban(text: str) -> str:
    """An IBAN without spaces, upper case (``BE68539007547034``), or ValueError saying why not.

    The ISO 13616 check: the country code and check digits moved to the end, letters as
    numbers (A=10 … Z=35), the whole is 1 modulo 97. A Belgian IBAN has 16 characters.
    """
    compact = re.sub(r"\s", "", text).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", compact):
        raise ValueError(f"{text!r} is not an IBAN, e.g. BE68 5390 0754 7034")
    if compact.startswith("BE") and len(compact) != 16:
        raise ValueError(f"{text!r} is not a Belgian IBAN: it has 16 characters")
    rearranged = compact[4:] + compact[:4]
    if int("".join(str(int(c, 36)) for c in rearranged)) % 97 != 1:
        raise ValueError(f"{text!r} is not an IBAN: its check digits are wrong")
    return compact


def format_iban(compact: str) -> str:
    """An IBAN in groups of four, as printed: ``BE68 5390 0754 7034``."""
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
