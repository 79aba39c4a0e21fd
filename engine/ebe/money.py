"""Exact money for exercise by exception: prices and amounts as integer ticks of 1/10,000 USD.

Binary floating point cannot hold 45.66 or 45.67 exactly, so ``45.67 - 45.66`` compared with a
threshold of 0.01 may come out below it and an in-the-money option would not be exercised. Every
price, strike, threshold and amount here is an ``int`` (or an int64 array) of ticks; text is
converted at the edges with ``parse_ticks`` and ``format_ticks``. Four decimals cover the strikes of
adjusted series (e.g. 33.3333); a value with more decimals is refused rather than rounded.
"""

from __future__ import annotations

import re

TICKS_PER_UNIT = 10_000
DECIMALS = 4
_DECIMAL = re.compile(r"^(-?)(\d{1,12})(?:\.(\d{1,4}))?$")
_MAX_TICKS = 10**16


def parse_ticks(text: str) -> int:
    """``"45.66"`` -> 456600. Raises ``ValueError`` for anything but a plain decimal with at
    most four decimals (no exponent, no thousands separator, no sign other than a leading -)."""
    m = _DECIMAL.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a decimal with at most {DECIMALS} decimals")
    sign, whole, frac = m.groups()
    ticks = int(whole) * TICKS_PER_UNIT + int((frac or "").ljust(DECIMALS, "0"))
    return -ticks if sign else ticks


def format_ticks(ticks: int, min_decimals: int = 2) -> str:
    """456600 -> ``"45.66"``; trailing zeros dropped down to ``min_decimals``."""
    sign = "-" if ticks < 0 else ""
    whole, frac = divmod(abs(int(ticks)), TICKS_PER_UNIT)
    digits = f"{frac:04d}".rstrip("0").ljust(min_decimals, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def in_range(ticks: int) -> bool:
    """Prices beyond 10^12 USD are a typo, and would overflow the int64 products."""
    return abs(ticks) < _MAX_TICKS
