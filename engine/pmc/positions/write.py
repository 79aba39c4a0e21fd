"""Writing 346 position files: a ``PositionBatch`` -> CSV or fixed-width ASCII bytes.

``render_position_file(positions, fmt=...)`` is the inverse of
``engine.pmc.positions.read.parse_position_file``: reading the bytes back gives the same
positions, field for field (line numbers aside). A header (``346,H,<firm>,<CCYYMMDD>``) is
written when a ``date`` is given, a trailer with the total longs and shorts always (it lets the
reader check that nothing was lost).

Decisions where the layout is silent or narrow:

* dates are written as CCYYMMDD (the reader accepts every shorter form too); no date is blank in
  CSV and zeros in ASCII;
* CSV strike and market value are written with at least 4 and 2 decimals, more when the value has
  them; ASCII carries implied decimals (strike 9 (5.4), market value 12 (6.6));
* a short position is FUNCTION ``S`` with a positive NET POSITION; zero is written as ``L 0``;
* the ASCII layout has no exercise style, settlement style or expiration date: they are left out.
  A value that does not fit its ASCII column (a firm over 4 digits, an account over 10
  characters, a symbol over 6, a strike of 100000 or more, ...) raises ``PositionNotWritable``
  naming the position and field, rather than writing a file that reads back differently.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import numpy as np

from engine.errors import InputRejected, Location
from engine.pmc.positions.model import TRANS_ID, PositionBatch, firm_number_346

FORMATS = ("csv", "ascii")
NOT_WRITABLE = "NOT_WRITABLE"


class PositionNotWritable(InputRejected):
    """A position whose value does not fit the chosen layout."""


def _yyyymmdd(iso: str) -> str:
    return iso.replace("-", "") if iso else ""


def _decimal_text(value: float, min_decimals: int) -> str:
    fixed = f"{value:.{min_decimals}f}"
    if float(fixed) == value:
        return fixed
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0")
    return text


def _totals(quantity: np.ndarray) -> tuple[int, int]:
    q = np.asarray(quantity, dtype=np.float64)
    return int(q[q > 0].sum()), int(-q[q < 0].sum())


def _fit(text: str, width: int, what: str, p: PositionBatch, row: int | None = None) -> str:
    """``text`` when it fits ``width`` ASCII columns; otherwise ``PositionNotWritable``."""
    if len(text) <= width:
        return text
    where = f"position {row + 1}, {p.symbol[row]}" if row is not None else "header/trailer"
    raise PositionNotWritable(
        NOT_WRITABLE,
        f"{what}={text!r} is longer than the {width} characters of the ASCII layout ({where}); "
        "write CSV instead",
        Location(line=int(p.line[row]) if row is not None else None, field=what),
    )


def _implied(value: float, decimals: int, width: int, what: str, p: PositionBatch, row: int) -> str:
    return _fit(str(int(round(value * 10**decimals))).zfill(width), width, what, p, row)


def render_position_file(
    positions: PositionBatch,
    *,
    fmt: str = "csv",
    firm: str = "",
    date: str = "",
    trailer: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """The positions as a 346 file in ``fmt`` ('csv' or 'ascii'), one detail record each.

    ``firm`` is the clearing member number of the header and trailer (default: the firm of the
    first position, '0' when there is none); ``date`` (ISO) adds a header with that date;
    ``trailer`` adds the trailer with the total longs and shorts. Lines end with '\\n'.
    Raises ``PositionNotWritable`` (ASCII only) and ``ValueError`` for an unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not csv or ascii")
    n = len(positions)
    member = firm_number_346(firm or (str(positions.firm[0]) if n else "0"))
    longs, shorts = _totals(positions.quantity)
    out: list[str] = []
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if date:
            writer.writerow([TRANS_ID, "H", member, _yyyymmdd(date)])
        for i in range(n):
            q = float(positions.quantity[i])
            writer.writerow(
                [
                    TRANS_ID,
                    "",
                    firm_number_346(str(positions.firm[i])),
                    str(positions.account[i]),
                    str(positions.put_call[i]),
                    str(positions.symbol[i]),
                    "",
                    str(positions.exercise_style[i]),
                    str(positions.settlement_style[i]),
                    _yyyymmdd(str(positions.series_date[i])),
                    _yyyymmdd(str(positions.expiration_date[i])),
                    _decimal_text(float(positions.strike[i]), 4),
                    "S" if q < 0 else "L",
                    str(positions.security_type[i]),
                    _decimal_text(float(positions.market_value[i]), 2),
                    str(int(abs(q))),
                    str(positions.account_type[i]),
                    str(positions.basket_id[i]),
                ]
            )
            if progress is not None and i % 20_000 == 0:
                progress(i, n)
        if trailer:
            writer.writerow([TRANS_ID, "T", member, str(longs), str(shorts)])
        if progress is not None:
            progress(n, n)
        return buf.getvalue().encode("utf-8")

    p = positions
    if date:
        member_4 = _fit(member, 4, "CLEARING MEMBER NUMBER", p).zfill(4)
        out.append(f"{TRANS_ID}H{member_4}{_yyyymmdd(date)}")
    for i in range(n):
        q = float(p.quantity[i])
        out.append(
            TRANS_ID
            + " "
            + _fit(firm_number_346(str(p.firm[i])), 4, "CLEARING FIRM NUMBER", p, i).zfill(4)
            + _fit(str(p.account[i]), 10, "ACCOUNT ID", p, i).ljust(10)
            + (str(p.put_call[i]) or " ")
            + _fit(str(p.symbol[i]), 6, "SYMBOL", p, i).ljust(6)
            + (_yyyymmdd(str(p.series_date[i])) or "0" * 8)
            + _implied(float(p.strike[i]), 4, 9, "STRIKE PRICE", p, i)
            + ("S" if q < 0 else "L")
            + str(p.security_type[i])
            + _implied(float(p.market_value[i]), 6, 12, "MARKET VALUE", p, i)
            + _fit(str(int(abs(q))), 9, "NET POSITION", p, i).zfill(9)
            + str(p.account_type[i])
            + _fit(str(p.basket_id[i]), 5, "BASKET ID", p, i).ljust(5)
        )
        if progress is not None and i % 20_000 == 0:
            progress(i, n)
    if trailer:
        member_4 = _fit(member, 4, "CLEARING MEMBER NUMBER", p).zfill(4)
        longs_t = _fit(str(longs), 11, "TOTAL LONGS", p).zfill(11)
        shorts_t = _fit(str(shorts), 11, "TOTAL SHORTS", p).zfill(11)
        out.append(f"{TRANS_ID}T{member_4}{longs_t}{shorts_t}")
    if progress is not None:
        progress(n, n)
    return "".join(line + "\n" for line in out).encode("ascii")
