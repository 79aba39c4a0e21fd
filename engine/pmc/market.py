"""Market snapshots: the CSV input of ``posgate theo generate``, parsed.

The market snapshot is one UTF-8 CSV file with a header line; the column ``record`` says what a
line is, and each kind uses its own columns (others stay empty; column order is free):

=================  ==========================================================================
record             columns used (* = required)
=================  ==========================================================================
portfolio_group    portfolio_group_id*, account_type*, offset_pct*
product_group      product_group_id*, account_type*, portfolio_group_id, offset_pct (empty:
                   its class groups stand alone), move_down_pct*, move_up_pct*
class_group        class_group_id*, product_group_id*, basket_id
underlying         symbol*, class_group_id*, price*, volatility*, rate*, dividend_yield,
                   security_type (S: the stock itself is an instrument of the set; empty: an
                   index), multiplier (stock, default 1), min_charge (stock, default 0)
series             symbol*, underlying*, security_type* (O, I, F, W), series_date*, put_call
                   (options), strike (options), multiplier*, exercise_style (A default, E),
                   settlement_style, expiration_date (default series_date), min_charge,
                   volatility (overrides the underlying's)
=================  ==========================================================================

Percentages are fractions (0.15 = 15 %), rates and yields continuous per year, volatility
annual. For options on futures (I) the underlying's price is the futures price and the model
uses q = r (Black-76). A future's price is S e^((r - q) T); it moves with the underlying.

``parse_market_snapshot`` turns the file's bytes into a ``MarketSnapshot`` or raises
``MarketSnapshotInvalid`` naming every problem; ``engine.pmc.theo.generate`` prices it.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.errors import Location
from engine.pmc.theo.columns import Problems, parse_iso_date
from engine.pmc.theo.model import ACCOUNT_TYPES
from engine.pmc.theo.read import TheoSetInvalid
from engine.pmc.theo.write import TheoGroups

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
StrArray = NDArray[np.str_]

MARKET_COLUMNS = (
    "record",
    "portfolio_group_id",
    "product_group_id",
    "class_group_id",
    "basket_id",
    "account_type",
    "offset_pct",
    "move_down_pct",
    "move_up_pct",
    "symbol",
    "underlying",
    "security_type",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "put_call",
    "strike",
    "multiplier",
    "price",
    "volatility",
    "dividend_yield",
    "rate",
    "min_charge",
)
RECORD_KINDS = ("portfolio_group", "product_group", "class_group", "underlying", "series")
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/#^")


class MarketSnapshotInvalid(TheoSetInvalid):
    """A market snapshot that cannot be used; ``problems`` lists every located problem."""

    def __init__(self, problems: Sequence[str], location: Location | None = None) -> None:
        super().__init__(problems, location)
        self.reason = "MARKET_INVALID"


@dataclass(frozen=True, eq=False)
class MarketSnapshot:
    """A parsed snapshot. Underlyings [U] and series [S] are columnar; groups are plain rows."""

    groups: TheoGroups
    und_symbol: StrArray
    und_class_group: StrArray
    und_is_stock: NDArray[np.bool_]
    und_price: FloatArray
    und_volatility: FloatArray
    und_dividend_yield: FloatArray
    und_rate: FloatArray
    und_multiplier: FloatArray
    und_min_charge: FloatArray
    ser_underlying: IntArray
    ser_symbol: StrArray
    ser_security_type: StrArray
    ser_exercise_style: StrArray
    ser_settlement_style: StrArray
    ser_series_date: StrArray
    ser_expiration_date: StrArray
    ser_put_call: StrArray
    ser_strike: FloatArray
    ser_multiplier: FloatArray
    ser_min_charge: FloatArray
    ser_volatility: FloatArray


def parse_market_snapshot(data: bytes, *, file: str = "market.csv") -> MarketSnapshot:
    """Parse a snapshot (see the module docstring); raises ``MarketSnapshotInvalid``."""
    problems = Problems(MarketSnapshotInvalid)
    add = problems.for_file(file)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MarketSnapshotInvalid([f"{file}: not UTF-8 text (byte {exc.start})"]) from None
    if "\x00" in text:
        raise MarketSnapshotInvalid([f"{file}: binary content (NUL byte)"])
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise MarketSnapshotInvalid([f"{file}: not CSV: {exc}"]) from None
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    numbered = [(i, r) for i, r in numbered if not r[0].lstrip().startswith("#")]
    if not numbered:
        raise MarketSnapshotInvalid([f"{file}: empty (a header line is required)"])
    header_line, header_row = numbered[0]
    header = [c.strip().lower() for c in header_row]
    if "record" not in header:
        raise MarketSnapshotInvalid(
            [f"{file} line {header_line}: the header has no 'record' column"],
            Location(file=file, line=header_line),
        )
    unknown = [c for c in header if c and c not in MARKET_COLUMNS]
    if unknown:
        add(header_line, None, f"unknown column(s) {', '.join(unknown)}")
        problems.raise_if_any()
    col = {name: header.index(name) for name in MARKET_COLUMNS if name in header}

    ports: list[tuple[str, str, float]] = []
    prods: list[tuple[str, str, str, float, float, float]] = []
    classes: list[tuple[str, str, str]] = []
    und: dict[str, list[object]] = {k: [] for k in ("sym", "cg", "stock", "px", "vol", "q", "r")}
    und_mult: list[float] = []
    und_min: list[float] = []
    ser: dict[str, list[object]] = {
        k: []
        for k in ("und", "sym", "type", "ex", "st", "series", "expiry", "pc", "k", "m", "min", "v")
    }
    ser_lines: list[int] = []
    port_keys: set[tuple[str, str]] = set()
    pg_keys: dict[tuple[str, str], float] = {}
    pg_ids: set[str] = set()
    cg_ids: dict[str, int] = {}
    und_index: dict[str, int] = {}
    baskets: set[str] = set()

    for line, row in numbered[1:]:
        if len(row) != len(header):
            add(line, None, f"{len(row)} fields, the header has {len(header)}")
            continue

        def get(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None else ""

        def ident(name: str, line: int = line) -> str:
            v = get(name)
            if not v:
                add(line, name, f"{name} is empty")
            elif not set(v) <= _ID_CHARS:
                add(line, name, f"{name}={v!r} has characters outside A-Z 0-9 . _ - / # ^")
            return v

        def num(
            name: str,
            *,
            default: float | None = None,
            low: float | None = None,
            high: float | None = None,
            positive: bool = False,
            line: int = line,
        ) -> float:
            v = get(name)
            if not v:
                if default is None:
                    add(line, name, f"{name} is empty")
                    return math.nan
                return default
            try:
                x = float(v)
            except ValueError:
                x = math.nan
            if not math.isfinite(x):
                add(line, name, f"{name}={v!r} is not a number")
                return math.nan
            if (low is not None and x < low) or (high is not None and x > high):
                add(line, name, f"{name}={v!r} is out of range")
            if positive and x <= 0:
                add(line, name, f"{name}={v!r} must be positive")
            return x

        def acct_type(line: int = line) -> str:
            v = get("account_type").upper()
            if v not in ACCOUNT_TYPES:
                add(line, "account_type", f"account_type={v!r} is not C, F or M")
            return v

        kind = get("record").lower()
        if kind == "portfolio_group":
            pid, acct = ident("portfolio_group_id"), acct_type()
            off = num("offset_pct", low=0.0, high=1.0)
            if (acct, pid) in port_keys:
                add(line, "portfolio_group_id", f"portfolio group {pid!r} twice")
            port_keys.add((acct, pid))
            ports.append((pid, acct, off))
        elif kind == "product_group":
            pg, acct = ident("product_group_id"), acct_type()
            port = get("portfolio_group_id")
            off = num("offset_pct", default=math.nan, low=0.0, high=1.0)
            down = num("move_down_pct", low=0.0, high=1.0)
            up = num("move_up_pct", low=0.0)
            if port and (acct, port) not in port_keys:
                add(
                    line,
                    "portfolio_group_id",
                    f"portfolio group {port!r} ({acct}) is not defined above this line",
                )
            if port and math.isnan(off):
                add(line, "offset_pct", "a product group in a portfolio group needs offset_pct")
            if (acct, pg) in pg_keys:
                add(line, "product_group_id", f"product group {pg!r} ({acct}) twice")
            pg_keys[(acct, pg)] = off
            pg_ids.add(pg)
            prods.append((pg, port, acct, off, down, up))
        elif kind == "class_group":
            cg, pg = ident("class_group_id"), ident("product_group_id")
            basket = get("basket_id")
            if pg and pg not in pg_ids:
                add(line, "product_group_id", f"product group {pg!r} is not defined above")
            if cg in cg_ids:
                add(line, "class_group_id", f"class group {cg!r} twice")
            if basket:
                if basket in baskets:
                    add(line, "basket_id", f"basket {basket!r} twice")
                baskets.add(basket)
            cg_ids[cg] = len(classes)
            classes.append((cg, pg, basket))
        elif kind == "underlying":
            sym, cg = ident("symbol").upper(), ident("class_group_id")
            stype = get("security_type").upper()
            if stype not in ("", "S"):
                add(line, "security_type", "an underlying is S (stock) or empty (index)")
            if cg and cg not in cg_ids:
                add(line, "class_group_id", f"class group {cg!r} is not defined above")
            if sym in und_index:
                add(line, "symbol", f"underlying {sym!r} twice")
            und_index[sym] = len(und["sym"])
            und["sym"].append(sym)
            und["cg"].append(cg)
            und["stock"].append(stype == "S")
            und["px"].append(num("price", positive=True))
            und["vol"].append(num("volatility", low=0.0))
            und["q"].append(num("dividend_yield", default=0.0))
            und["r"].append(num("rate"))
            und_mult.append(num("multiplier", default=1.0, positive=True))
            und_min.append(num("min_charge", default=0.0, low=0.0))
        elif kind == "series":
            sym, base = ident("symbol").upper(), ident("underlying").upper()
            stype = get("security_type").upper()
            if stype not in ("O", "I", "F", "W"):
                add(line, "security_type", f"security_type={stype!r} is not O, I, F, W")
            if base and base not in und_index:
                add(line, "underlying", f"underlying {base!r} is not defined above")
            pc = get("put_call").upper()
            if stype in ("O", "I", "W"):
                if pc not in ("C", "P") or (stype == "W" and pc != "C"):
                    add(line, "put_call", f"put_call={pc!r} is not valid for {stype}")
                strike = num("strike", positive=True)
            else:
                pc = ""
                strike = 0.0
            series = get("series_date")
            if parse_iso_date(series) is None:
                add(line, "series_date", f"series_date={series!r} is not YYYY-MM-DD")
            expiry = get("expiration_date") or series
            if parse_iso_date(expiry) is None:
                add(line, "expiration_date", f"expiration_date={expiry!r} is not YYYY-MM-DD")
            ex = get("exercise_style").upper() or ("A" if stype != "F" else "")
            if ex not in ("A", "E", ""):
                add(line, "exercise_style", f"exercise_style={ex!r} is not A or E")
            ser["und"].append(und_index.get(base, -1))
            ser["sym"].append(sym)
            ser["type"].append(stype)
            ser["ex"].append(ex)
            ser["st"].append(get("settlement_style").upper())
            ser["series"].append(series)
            ser["expiry"].append(expiry)
            ser["pc"].append(pc)
            ser["k"].append(strike)
            ser["m"].append(num("multiplier", positive=True))
            ser["min"].append(num("min_charge", default=0.0, low=0.0))
            ser["v"].append(num("volatility", default=math.nan, low=0.0))
            ser_lines.append(line)
        else:
            add(line, "record", f"record={get('record')!r} is not one of {', '.join(RECORD_KINDS)}")
    problems.raise_if_any()

    def floats(values: list[object]) -> FloatArray:
        return np.asarray(values, dtype=np.float64)

    def strs(values: list[object]) -> StrArray:
        return np.asarray([str(v) for v in values] or [""], dtype=np.str_)[: len(values)]

    return MarketSnapshot(
        groups=TheoGroups(ports, prods, classes),
        und_symbol=strs(und["sym"]),
        und_class_group=strs(und["cg"]),
        und_is_stock=np.asarray(und["stock"], dtype=bool),
        und_price=floats(und["px"]),
        und_volatility=floats(und["vol"]),
        und_dividend_yield=floats(und["q"]),
        und_rate=floats(und["r"]),
        und_multiplier=floats(list(und_mult)),
        und_min_charge=floats(list(und_min)),
        ser_underlying=np.asarray(ser["und"], dtype=np.int64),
        ser_symbol=strs(ser["sym"]),
        ser_security_type=strs(ser["type"]),
        ser_exercise_style=strs(ser["ex"]),
        ser_settlement_style=strs(ser["st"]),
        ser_series_date=strs(ser["series"]),
        ser_expiration_date=strs(ser["expiry"]),
        ser_put_call=strs(ser["pc"]),
        ser_strike=floats(ser["k"]),
        ser_multiplier=floats(ser["m"]),
        ser_min_charge=floats(ser["min"]),
        ser_volatility=floats(ser["v"]),
    )
