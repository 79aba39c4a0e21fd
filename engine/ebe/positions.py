"""The expiring-position set of one expiration date: three CSV files -> arrays.

``parse_expiring_set(files)`` takes the bytes of ``meta.csv``, ``expiring_positions.csv`` and
``closing_prices.csv`` and returns an ``ExpiringSet``, or raises ``ExpiringSetInvalid`` listing
*every* problem (file, line, column, value): one bad row refuses the whole set, because an
exercise decision taken on part of a firm's positions is worse than none.

Columns may come in any order and extra columns are ignored. Beyond the row checks the set must be
coherent: every position's ``expiration_date`` is the set's date, no (firm, account, series)
appears twice, every underlying of a position has a closing price, no underlying is priced twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.ebe.money import in_range, parse_ticks

META = "meta.csv"
POSITIONS = "expiring_positions.csv"
CLOSES = "closing_prices.csv"
FILES = (META, POSITIONS, CLOSES)

ACCOUNT_TYPES = ("C", "F", "M")
PUT_CALL = ("C", "P")
MAX_QTY = 10**12

META_COLUMNS = ("expiration_date", "source")
POSITION_COLUMNS = (
    "firm",
    "account",
    "account_type",
    "symbol",
    "underlying",
    "put_call",
    "strike",
    "expiration_date",
    "multiplier",
    "long_qty",
    "short_qty",
)
CLOSE_COLUMNS = ("underlying", "close", "removed", "removed_reason")
_OPTIONAL = {"removed_reason"}

SeriesKey = tuple[str, str, str, str, int]
"""(firm, account, symbol, put_call, strike ticks): one expiring position of a set."""


class ExpiringSetInvalid(Exception):
    """The set cannot be used; ``problems`` names every one (file, line, column, value)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__((self.problems[0] if self.problems else "invalid set") + more)


@dataclass(frozen=True)
class Close:
    close: int
    """ticks"""
    removed: bool
    reason: str


@dataclass(frozen=True)
class ExpiringSet:
    """Every expiring position of one date, column-wise; each array has shape ``(n,)``.

    Text columns are numpy object arrays of ``str``; prices are int64 ticks (1/10,000 USD).
    ``close`` and ``removed`` are the underlying's, repeated per row.
    """

    expiration_date: dt.date
    source: str
    firm: npt.NDArray[np.object_]
    account: npt.NDArray[np.object_]
    account_type: npt.NDArray[np.object_]
    symbol: npt.NDArray[np.object_]
    underlying: npt.NDArray[np.object_]
    put_call: npt.NDArray[np.object_]
    strike: npt.NDArray[np.int64]
    multiplier: npt.NDArray[np.int64]
    long_qty: npt.NDArray[np.int64]
    short_qty: npt.NDArray[np.int64]
    close: npt.NDArray[np.int64]
    removed: npt.NDArray[np.bool_]
    closes: Mapping[str, Close]
    index: Mapping[SeriesKey, int] = field(repr=False)
    """(firm, account, symbol, put_call, strike ticks) -> row."""
    is_call: npt.NDArray[np.bool_] = field(init=False, repr=False)
    type_code: npt.NDArray[np.int8] = field(init=False, repr=False)
    """index into ``ACCOUNT_TYPES``; both derived once at load, for the vectorised outcomes"""

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_call", self.put_call == "C")
        code = np.zeros(self.firm.shape[0], dtype=np.int8)
        for i, account_type in enumerate(ACCOUNT_TYPES):
            code[self.account_type == account_type] = i
        object.__setattr__(self, "type_code", code)

    def __len__(self) -> int:
        return int(self.firm.shape[0])

    def firms(self) -> list[str]:
        return sorted({str(f) for f in self.firm})

    def rows_of_firm(self, firm: str) -> npt.NDArray[np.intp]:
        return np.flatnonzero(self.firm == firm)


def _rows(
    data: bytes, name: str, columns: Sequence[str], problems: list[str]
) -> list[tuple[int, dict[str, str]]]:
    """(line number, {column: stripped value}) for each data row of one CSV file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(f"{name}: not UTF-8 text (byte {exc.start})")
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        problems.append(f"{name}: empty file (expected a header: {', '.join(columns)})")
        return []
    except csv.Error as exc:
        problems.append(f"{name}, line 1: {exc}")
        return []
    missing = [c for c in columns if c not in header and c not in _OPTIONAL]
    if missing:
        problems.append(f"{name}, line 1: missing column(s) {', '.join(missing)}")
        return []
    where = {c: header.index(c) for c in columns if c in header}
    out = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) < len(header):
                values = values + [""] * (len(header) - len(values))
            out.append((line, {c: values[i].strip() for c, i in where.items()}))
    except csv.Error as exc:
        problems.append(f"{name}, line {reader.line_num}: {exc}")
    return out


def _date(value: str) -> dt.date | None:
    if len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _qty(value: str) -> int | None:
    if not value.isascii() or not value.isdigit():
        return None
    q = int(value)
    return q if q < MAX_QTY else None


def parse_expiring_set(files: Mapping[str, bytes]) -> ExpiringSet:
    """The set of ``files`` (name -> bytes, the three names of ``FILES``); see the module doc."""
    problems: list[str] = []
    for name in FILES:
        if name not in files:
            problems.append(f"{name}: missing")
    if problems:
        raise ExpiringSetInvalid(problems)

    meta = _rows(files[META], META, META_COLUMNS, problems)
    day: dt.date | None = None
    source = ""
    if len(meta) != 1 and not problems:
        problems.append(f"{META}: expected exactly one row, found {len(meta)}")
    if meta:
        line, row = meta[0]
        day = _date(row["expiration_date"])
        source = row["source"]
        if day is None:
            problems.append(
                f"{META}, line {line}, column expiration_date: {row['expiration_date']!r} is not "
                "a date YYYY-MM-DD"
            )

    closes = _parse_closes(files[CLOSES], problems)
    parsed = _parse_positions(files[POSITIONS], day, closes, problems)
    if problems or day is None:
        raise ExpiringSetInvalid(problems or [f"{META}: no expiration date"])
    keys, cols = parsed
    n = len(keys)
    underlyings = [str(u) for u in cols["underlying"]]
    removed = np.fromiter((closes[u].removed for u in underlyings), dtype=np.bool_, count=n)
    close = np.fromiter((closes[u].close for u in underlyings), dtype=np.int64, count=n)
    return ExpiringSet(
        expiration_date=day,
        source=source,
        firm=_objects(cols["firm"]),
        account=_objects(cols["account"]),
        account_type=_objects(cols["account_type"]),
        symbol=_objects(cols["symbol"]),
        underlying=_objects(cols["underlying"]),
        put_call=_objects(cols["put_call"]),
        strike=np.asarray(cols["strike"], dtype=np.int64),
        multiplier=np.asarray(cols["multiplier"], dtype=np.int64),
        long_qty=np.asarray(cols["long_qty"], dtype=np.int64),
        short_qty=np.asarray(cols["short_qty"], dtype=np.int64),
        close=close,
        removed=removed,
        closes=closes,
        index={k: i for i, k in enumerate(keys)},
    )


def _objects(values: list[object]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _parse_closes(data: bytes, problems: list[str]) -> dict[str, Close]:
    closes: dict[str, Close] = {}
    seen_at: dict[str, int] = {}
    for line, row in _rows(data, CLOSES, CLOSE_COLUMNS, problems):
        where = f"{CLOSES}, line {line}"
        underlying = row["underlying"]
        bad = False
        for column in ("underlying", "close", "removed"):
            if not row[column]:
                problems.append(f"{where}, column {column}: empty")
                bad = True
        if bad:
            continue
        try:
            close = parse_ticks(row["close"])
            if close < 0 or not in_range(close):
                raise ValueError
        except ValueError:
            problems.append(f"{where}, column close: {row['close']!r} is not a price >= 0")
            continue
        removed = row["removed"].upper()
        if removed not in ("Y", "N"):
            problems.append(f"{where}, column removed: {row['removed']!r} is not Y or N")
            continue
        if underlying in seen_at:
            problems.append(
                f"{where}, column underlying: {underlying!r} already priced on line "
                f"{seen_at[underlying]}"
            )
            continue
        seen_at[underlying] = line
        closes[underlying] = Close(close, removed == "Y", row.get("removed_reason", ""))
    return closes


class _Complaints:
    """Collects 'column: value is not what it should be' problems of one row."""

    def __init__(self, where: str, row: Mapping[str, str], problems: list[str]) -> None:
        self.where = where
        self.row = row
        self.problems = problems

    def __call__(self, column: str, expected: str) -> None:
        self.problems.append(
            f"{self.where}, column {column}: {self.row[column]!r} is not {expected}"
        )


def _parse_positions(
    data: bytes, day: dt.date | None, closes: Mapping[str, Close], problems: list[str]
) -> tuple[list[SeriesKey], dict[str, list[object]]]:
    cols: dict[str, list[object]] = {c: [] for c in POSITION_COLUMNS}
    keys: list[SeriesKey] = []
    seen: dict[SeriesKey, int] = {}
    for line, row in _rows(data, POSITIONS, POSITION_COLUMNS, problems):
        where = f"{POSITIONS}, line {line}"
        row_problems: list[str] = []
        for column in POSITION_COLUMNS:
            if not row[column]:
                row_problems.append(f"{where}, column {column}: empty")
        if row_problems:
            problems.extend(row_problems)
            continue

        bad = _Complaints(where, row, row_problems)
        account_type = row["account_type"].upper()
        if account_type not in ACCOUNT_TYPES:
            bad("account_type", "C, F or M")
        put_call = row["put_call"].upper()
        if put_call not in PUT_CALL:
            bad("put_call", "C or P")
        strike = 0
        try:
            strike = parse_ticks(row["strike"])
            if strike <= 0 or not in_range(strike):
                raise ValueError
        except ValueError:
            bad("strike", "a price > 0 with at most 4 decimals")
        expiry = _date(row["expiration_date"])
        if expiry is None:
            bad("expiration_date", "a date YYYY-MM-DD")
        elif day is not None and expiry != day:
            bad("expiration_date", f"the set's date {day.isoformat()}")
        quantities = {}
        for column in ("multiplier", "long_qty", "short_qty"):
            q = _qty(row[column])
            if q is None:
                bad(column, "a non-negative integer")
            quantities[column] = q or 0
        if row["multiplier"] and quantities["multiplier"] == 0 and _qty(row["multiplier"]) == 0:
            bad("multiplier", "a positive integer")
        if row["underlying"] not in closes:
            row_problems.append(
                f"{where}, column underlying: {row['underlying']!r} has no row in {CLOSES}"
            )
        key: SeriesKey = (row["firm"], row["account"], row["symbol"], put_call, strike)
        if not row_problems and key in seen:
            row_problems.append(
                f"{where}: position {'/'.join(map(str, key[:4]))} {row['strike']} repeats "
                f"line {seen[key]}"
            )
        if row_problems:
            problems.extend(row_problems)
            continue
        seen[key] = line
        keys.append(key)
        for column, value in (
            ("firm", row["firm"]),
            ("account", row["account"]),
            ("account_type", account_type),
            ("symbol", row["symbol"]),
            ("underlying", row["underlying"]),
            ("put_call", put_call),
            ("strike", strike),
            ("multiplier", quantities["multiplier"]),
            ("long_qty", quantities["long_qty"]),
            ("short_qty", quantities["short_qty"]),
        ):
            cols[column].append(value)
    return keys, cols
