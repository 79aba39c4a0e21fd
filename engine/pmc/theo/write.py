"""Writing a theo set: group rows and instrument columns -> the bytes of its five CSV files.

``render_theo_set`` is the inverse of ``engine.pmc.theo.read.parse_theo_set``, used by
``posgate theo generate``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.pmc.theo.model import (
    CLASS_COLUMNS,
    META_COLUMNS,
    PNL_FILE_COLUMNS,
    POINTS,
    PORTFOLIO_COLUMNS,
    PRODUCT_COLUMNS,
    FloatArray,
    StrColumn,
)


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float64 ('' for NaN)."""
    if math.isnan(value):
        return ""
    return repr(float(value))


def _column_text(values: FloatArray) -> list[str]:
    text: list[str] = np.char.mod("%.12g", values).tolist()
    return ["" if t == "nan" else t for t in text]


@dataclass(frozen=True)
class TheoGroups:
    """Group definitions of a set as plain rows (what the first four files hold)."""

    portfolio_groups: Sequence[tuple[str, str, float]]
    product_groups: Sequence[tuple[str, str, str, float, float, float]]
    class_groups: Sequence[tuple[str, str, str]]


@dataclass(frozen=True, eq=False)
class InstrumentRows:
    """Instrument columns for ``pnl.csv``: string columns [N] and float columns [N], pnl [N, 10]."""

    account_type: StrColumn
    product_group: StrColumn
    class_group: StrColumn
    underlying: StrColumn
    symbol: StrColumn
    security_type: StrColumn
    exercise_style: StrColumn
    settlement_style: StrColumn
    series_date: StrColumn
    expiration_date: StrColumn
    put_call: StrColumn
    strike: FloatArray
    multiplier: FloatArray
    theo_price: FloatArray
    implied_vol: FloatArray
    min_charge: FloatArray
    pnl: FloatArray
    #: optional ``exchange`` column [N]; written only when given
    exchange: StrColumn | None = None


def render_theo_set(
    *,
    activity_date: str,
    source: str,
    equity_product_group: str,
    groups: TheoGroups,
    instruments: InstrumentRows,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, bytes]:
    """The five files of a set as bytes, keyed by file name (``meta.csv`` last in order).

    Numbers are written with 12 significant digits (sub-cent for any realistic P&L).
    """
    out: dict[str, bytes] = {}
    out["portfolio_groups.csv"] = _csv_bytes(
        PORTFOLIO_COLUMNS,
        [(pid, acct, format_number(off)) for pid, acct, off in groups.portfolio_groups],
    )
    out["product_groups.csv"] = _csv_bytes(
        PRODUCT_COLUMNS,
        [
            (pg, port, acct, format_number(off), format_number(down), format_number(up))
            for pg, port, acct, off, down, up in groups.product_groups
        ],
    )
    out["class_groups.csv"] = _csv_bytes(CLASS_COLUMNS, list(groups.class_groups))
    n = len(instruments.symbol)
    chunk = 100_000
    header = list(PNL_FILE_COLUMNS)
    if instruments.exchange is not None:
        header.append("exchange")
    parts = [",".join(header) + "\n"]
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        cols: list[StrColumn] = [
            instruments.account_type[start:stop],
            instruments.product_group[start:stop],
            instruments.class_group[start:stop],
            instruments.underlying[start:stop],
            instruments.symbol[start:stop],
            instruments.security_type[start:stop],
            instruments.exercise_style[start:stop],
            instruments.settlement_style[start:stop],
            instruments.series_date[start:stop],
            instruments.expiration_date[start:stop],
            instruments.put_call[start:stop],
            _column_text(instruments.strike[start:stop]),
            _column_text(instruments.multiplier[start:stop]),
            _column_text(instruments.theo_price[start:stop]),
            _column_text(instruments.implied_vol[start:stop]),
            _column_text(instruments.min_charge[start:stop]),
        ]
        cols.extend(_column_text(instruments.pnl[start:stop, j]) for j in range(POINTS))
        if instruments.exchange is not None:
            cols.append(instruments.exchange[start:stop])
        parts.append("".join(",".join(row) + "\n" for row in zip(*cols, strict=True)))
        if progress is not None:
            progress(stop, n)
    out["pnl.csv"] = "".join(parts).encode("utf-8")
    out["meta.csv"] = _csv_bytes(META_COLUMNS, [(activity_date, source, equity_product_group)])
    return out
