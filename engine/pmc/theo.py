"""Theoretical P&L sets: the open CSV layout of SPEC §7.1 as numpy arrays and lookup indexes.

A set is five UTF-8 CSV files (``meta.csv``, ``portfolio_groups.csv``, ``product_groups.csv``,
``class_groups.csv``, ``pnl.csv``); columns are found by header name, order is free and extra
columns are ignored. ``parse_theo_set`` takes their bytes (this module never opens a file) and
returns a ``TheoSet`` or raises ``TheoSetInvalid`` naming every problem with file, line, column and
value. ``render_theo_set`` is the inverse, used by ``posgate theo generate``.

Theory of operation. Instruments live in columnar arrays of length N (one row per instrument and
account type) with the P&L at the 10 points in ``pnl`` of shape [N, 10] (-5..-1, +1..+5). The
group tables are small arrays too, and every instrument row carries integer codes into them
(``cg_code`` into class groups, ``pg_code`` into the (account type, product group) table), so the
margin calculation never touches strings on its hot path. A 346 record finds its instrument by a
match key (account type, symbol, security type, put/call, series date, strike in 1/10000). The key
is an int64: each part becomes a code (symbols, series dates and strikes through small sorted
vocabularies, searched with ``np.searchsorted``), the codes are combined in mixed radix, and the
sorted ``key_codes`` are searched for a whole file at once; no Python object is touched per
record. The product group of a class group comes from the dense table ``cg_pg_code``
[account type, class group].
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
from numpy.typing import NDArray

from engine.errors import Location, UnreadableInput
from engine.pmc.grouping import lookup_strings, search_sorted

ACCOUNT_TYPES = ("C", "F", "M")
SECURITY_TYPES = ("O", "I", "F", "S", "W")
OPTION_TYPES = ("O", "I", "W")
POINTS = 10
POINT_LABELS = ("-5", "-4", "-3", "-2", "-1", "+1", "+2", "+3", "+4", "+5")
PNL_COLUMNS = (
    "pnl_m5",
    "pnl_m4",
    "pnl_m3",
    "pnl_m2",
    "pnl_m1",
    "pnl_p1",
    "pnl_p2",
    "pnl_p3",
    "pnl_p4",
    "pnl_p5",
)
#: the 10 points as signed fractions of the move range: [-1, -0.8, ..., -0.2, 0.2, ..., 1]
STEPS = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], dtype=np.float64) / 5.0

FILES = ("meta.csv", "portfolio_groups.csv", "product_groups.csv", "class_groups.csv", "pnl.csv")
META_COLUMNS = ("activity_date", "source", "equity_product_group")
PORTFOLIO_COLUMNS = ("portfolio_group_id", "account_type", "offset_pct")
PRODUCT_COLUMNS = (
    "product_group_id",
    "portfolio_group_id",
    "account_type",
    "offset_pct",
    "move_down_pct",
    "move_up_pct",
)
CLASS_COLUMNS = ("class_group_id", "product_group_id", "basket_id")
PNL_FILE_COLUMNS = (
    "account_type",
    "product_group_id",
    "class_group_id",
    "underlying",
    "symbol",
    "security_type",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "put_call",
    "strike",
    "multiplier",
    "theo_price",
    "implied_vol",
    "min_charge",
    *PNL_COLUMNS,
)
_OPTIONAL_COLUMNS = {"class_groups.csv": {"basket_id"}, "pnl.csv": {"implied_vol"}}
MAX_REPORTED_PROBLEMS = 50
STRIKE_SCALE = 10_000
REASON = "THEO_INVALID"

StrArray = NDArray[np.str_]
StrColumn = Sequence[str] | NDArray[np.str_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class TheoSetInvalid(UnreadableInput):
    """A theo set that cannot be used; ``problems`` lists every located problem found."""

    def __init__(self, problems: Sequence[str], location: Location | None = None) -> None:
        self.problems = list(problems)
        more = len(self.problems) - 1
        message = self.problems[0] if self.problems else "invalid theo set"
        if more > 0:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(REASON, message, location)


def _vocab_codes(vocab: NDArray[np.generic], values: NDArray[np.generic]) -> IntArray:
    """Index of each value [n] in the sorted ``vocab``, -1 when absent."""
    values = np.asarray(values)
    if vocab.size == 0 or values.size == 0:
        return np.full(values.shape[0], -1, dtype=np.int64)
    pos = np.minimum(search_sorted(vocab, values), vocab.size - 1)
    pos[vocab[pos] != values] = -1
    return pos


def _series_codes(vocab: StrArray, values: StrArray) -> IntArray:
    """Index of each ISO date or '' [n] in the sorted ``vocab``, -1 when absent.

    Dates are turned into YYYYMMDD integers by digit arithmetic on the code points (no string
    sort); any value that is not exactly '' or 'YYYY-MM-DD' falls back to ``lookup_strings``.
    """
    vals = np.asarray(values)
    if vals.dtype.kind != "U" or vals.dtype.itemsize != 40 or vocab.dtype.itemsize not in (4, 40):
        return lookup_strings(vocab, vals)
    raw = vals.view(np.uint32).reshape(-1, 10)
    wanted = np.zeros(raw.shape[0], dtype=np.int64)
    ok = (raw[:, 4] == 45) & (raw[:, 7] == 45)  # '-'
    for j in (0, 1, 2, 3, 5, 6, 8, 9):
        digit = raw[:, j] - np.uint32(48)  # wraps above 9 for anything below '0'
        ok &= digit <= 9
        wanted *= 10
        wanted += digit
    blank = raw[:, 0] == 0
    if not bool((ok | blank).all()):
        return lookup_strings(vocab, vals)
    wanted[blank] = 0
    vocab_ints = np.asarray(
        [int(v.replace("-", "")) if v else 0 for v in vocab.tolist()], dtype=np.int64
    )  # the set's few dates: sorted like the strings
    if vocab_ints.size == 0:
        return np.full(vals.shape[0], -1, dtype=np.int64)
    pos = np.minimum(search_sorted(vocab_ints, wanted), vocab_ints.size - 1)
    pos[vocab_ints[pos] != wanted] = -1
    return pos


def _choice_codes(values: StrArray, choices: Sequence[str]) -> IntArray:
    """Index of each value [n] in ``choices`` (a handful of strings), -1 when absent."""
    vals = np.asarray(values)
    if vals.dtype == np.dtype("<U1") and all(len(c) <= 1 for c in choices):
        # one character: a table over code points (a string compare per choice costs more)
        table = np.full(129, -1, dtype=np.int64)
        for i, c in enumerate(choices):
            table[ord(c) if c else 0] = i
        points = np.minimum(vals.view(np.uint32), 128)
        return table[points]
    out = np.full(vals.shape[0], -1, dtype=np.int64)
    for i, c in enumerate(choices):
        out[vals == c] = i
    return out


def move_fractions(down: FloatArray, up: FloatArray) -> FloatArray:
    """The 10 signed moves for each row: shape [k] down, [k] up -> [k, 10]."""
    down2 = np.asarray(down, dtype=np.float64)[:, None]
    up2 = np.asarray(up, dtype=np.float64)[:, None]
    return np.where(STEPS < 0, STEPS * down2, STEPS * up2)


def strike_code(strike: float) -> int:
    """Strike in 1/10000 of a dollar, the unit two strikes are compared in."""
    return int(round(strike * STRIKE_SCALE))


InstrumentKey = tuple[str, str, str, str, str, int]
FullKey = tuple[InstrumentKey, str, str]
ACCOUNT_TYPE_INDEX = {a: i for i, a in enumerate(ACCOUNT_TYPES)}


def match_key(
    account_type: str,
    symbol: str,
    security_type: str,
    put_call: str,
    series_date: str,
    strike: float,
) -> InstrumentKey:
    """The key that joins a 346 record to an instrument row (see module docstring)."""
    return (account_type, symbol, security_type, put_call, series_date, strike_code(strike))


def full_key(base: InstrumentKey, exercise_style: str, settlement_style: str) -> FullKey:
    """The base key refined by styles, used only when the base key is ambiguous in the set."""
    return (base, exercise_style, settlement_style)


def instrument_keys(
    account_type: Sequence[str],
    symbol: Sequence[str],
    security_type: Sequence[str],
    put_call: Sequence[str],
    series_date: Sequence[str],
    strike: FloatArray,
) -> list[InstrumentKey]:
    """Match keys of whole columns at once (each [n]); ``zip`` builds the tuples in C."""
    codes = np.rint(np.asarray(strike, dtype=np.float64) * STRIKE_SCALE).astype(np.int64)
    return list(
        zip(
            list(account_type),
            list(symbol),
            list(security_type),
            list(put_call),
            list(series_date),
            codes.tolist(),
            strict=True,
        )
    )


@dataclass(frozen=True, eq=False)
class TheoSet:
    """One theoretical P&L set, columnar.

    Portfolio groups, shape [P]: ``port_ids``, ``port_account_types``, ``port_offsets``.
    Product groups, shape [Q] (one row per product group and account type): ``pg_ids``,
    ``pg_account_types``, ``pg_port`` (code into portfolio groups, -1 for none), ``pg_offsets``
    (NaN when empty: its class groups stand alone), ``pg_move_down``, ``pg_move_up``.
    Class groups, shape [C]: ``cg_ids``, ``cg_product_groups``, ``cg_baskets`` ('' for none).
    Instruments, shape [N] (``pnl`` [N, 10]): the columns of ``pnl.csv`` plus ``cg_code`` and
    ``pg_code``. ``key_codes`` [K] (sorted, see ``encode_keys``) with ``key_rows`` [K] give the
    instrument row of each match key, or -1 when several rows share it (then ``full_index``
    decides by exercise and settlement style). ``cg_pg_code`` [3, C]
    gives the product group code of each class group per account type (index of
    ``ACCOUNT_TYPES``), -1 when the product group has no row for that type; ``equity_pg_code`` [3]
    the same for the equity product group.
    """

    name: str
    activity_date: str
    source: str
    equity_product_group: str
    port_ids: StrArray
    port_account_types: StrArray
    port_offsets: FloatArray
    pg_ids: StrArray
    pg_account_types: StrArray
    pg_port: IntArray
    pg_offsets: FloatArray
    pg_move_down: FloatArray
    pg_move_up: FloatArray
    cg_ids: StrArray
    cg_product_groups: StrArray
    cg_baskets: StrArray
    account_type: StrArray
    product_group: StrArray
    class_group: StrArray
    underlying: StrArray
    symbol: StrArray
    security_type: StrArray
    exercise_style: StrArray
    settlement_style: StrArray
    series_date: StrArray
    expiration_date: StrArray
    put_call: StrArray
    strike: FloatArray
    multiplier: FloatArray
    theo_price: FloatArray
    implied_vol: FloatArray
    min_charge: FloatArray
    pnl: FloatArray
    cg_code: IntArray
    pg_code: IntArray
    vocab_symbol: StrArray
    vocab_series: StrArray
    vocab_strike: IntArray
    key_codes: IntArray
    key_rows: IntArray
    full_index: Mapping[FullKey, int]
    cg_pg_code: IntArray
    equity_pg_code: IntArray
    port_index: Mapping[tuple[str, str], int]
    pg_index: Mapping[tuple[str, str], int]
    cg_index: Mapping[str, int]
    basket_index: Mapping[str, int]
    #: (account type, symbol) -> row of the future with the earliest series date (for 'X' spot)
    spot_future: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of instrument rows N."""
        return int(self.pnl.shape[0])

    def encode_keys(
        self,
        account_type: StrArray,
        symbol: StrArray,
        security_type: StrArray,
        put_call: StrArray,
        series_date: StrArray,
        strike: FloatArray,
    ) -> IntArray:
        """Match keys of whole columns [n] as int64 codes; -1 where a part is unknown to the set."""
        parts = [
            _choice_codes(account_type, ACCOUNT_TYPES),
            lookup_strings(self.vocab_symbol, symbol),
            _choice_codes(security_type, SECURITY_TYPES),
            _choice_codes(put_call, ("", "C", "P")),
            _series_codes(self.vocab_series, series_date),
            _vocab_codes(
                self.vocab_strike,
                np.rint(np.asarray(strike, dtype=np.float64) * STRIKE_SCALE).astype(np.int64),
            ),
        ]
        sizes = (
            len(ACCOUNT_TYPES),
            self.vocab_symbol.shape[0],
            len(SECURITY_TYPES),
            3,
            self.vocab_series.shape[0],
            self.vocab_strike.shape[0],
        )
        code = np.zeros(parts[0].shape[0], dtype=np.int64)
        unknown = np.zeros(parts[0].shape[0], dtype=bool)
        for part, size in zip(parts, sizes, strict=True):
            code = code * max(size, 1) + np.maximum(part, 0)
            unknown |= part < 0
        code[unknown] = -1
        return code

    def lookup_columns(
        self,
        account_type: StrArray,
        symbol: StrArray,
        security_type: StrArray,
        put_call: StrArray,
        series_date: StrArray,
        strike: FloatArray,
    ) -> IntArray:
        """Instrument rows for whole columns [n]: row, -1 ambiguous, -2 not in the set."""
        codes = self.encode_keys(account_type, symbol, security_type, put_call, series_date, strike)
        out = np.full(codes.shape[0], -2, dtype=np.int64)
        if self.key_codes.size == 0 or codes.size == 0:
            return out
        pos = np.minimum(search_sorted(self.key_codes, codes), self.key_codes.size - 1)
        hit = (self.key_codes[pos] == codes) & (codes >= 0)
        out[hit] = self.key_rows[pos[hit]]
        return out

    def equity_moves(self, account_type: str) -> FloatArray | None:
        """The 10 moves of the equity product group for an account type, or None if absent."""
        code = self.pg_index.get((account_type, self.equity_product_group))
        if code is None:
            return None
        moves: FloatArray = move_fractions(
            self.pg_move_down[code : code + 1], self.pg_move_up[code : code + 1]
        )[0]
        return moves


# --------------------------------------------------------------------------------------------
# parsing


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.first: Location | None = None

    def add(self, file: str, line: int | None, column: str | None, message: str) -> None:
        if self.first is None:
            self.first = Location(file=file, line=line, field=column)
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            where = file
            if line is not None:
                where += f" line {line}"
            if column:
                where += f" column {column}"
            self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise TheoSetInvalid(self.items, self.first)


@dataclass
class _Table:
    """A CSV file as columns of stripped strings; ``lines[i]`` is the file line of data row i."""

    file: str
    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.lines)


def _read_table(
    file: str, data: bytes, required: Sequence[str], problems: _Problems
) -> _Table | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(file, None, None, f"not UTF-8 text (byte {exc.start})")
        return None
    if "\x00" in text:
        problems.add(file, None, None, "binary content (NUL byte)")
        return None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        problems.add(file, None, None, f"not CSV: {exc}")
        return None
    lines = [i + 1 for i, row in enumerate(rows) if any(cell.strip() for cell in row)]
    if not lines:
        problems.add(file, None, None, "empty file (a header line is required)")
        return None
    header = [cell.strip().lower() for cell in rows[lines[0] - 1]]
    optional = _OPTIONAL_COLUMNS.get(file, set())
    missing = [c for c in required if c not in header and c not in optional]
    if missing:
        problems.add(file, lines[0], None, f"missing column(s) {', '.join(missing)}")
        return None
    dupes = sorted({c for c in header if c and header.count(c) > 1})
    if dupes:
        problems.add(file, lines[0], None, f"duplicated column(s) {', '.join(dupes)}")
        return None
    data_lines = lines[1:]
    width = len(header)
    columns: dict[str, list[str]] = {}
    good_lines: list[int] = []
    good_rows: list[list[str]] = []
    for line in data_lines:
        row = rows[line - 1]
        if len(row) != width:
            problems.add(file, line, None, f"{len(row)} fields, the header has {width}")
            continue
        good_lines.append(line)
        good_rows.append(row)
    for name in required:
        if name in header:
            idx = header.index(name)
            columns[name] = [r[idx].strip() for r in good_rows]
        else:
            columns[name] = [""] * len(good_rows)
    return _Table(file, columns, good_lines)


def _floats(
    table: _Table,
    column: str,
    problems: _Problems,
    *,
    allow_empty: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> FloatArray:
    """Column as float64 [n]; empty cells become NaN when allowed. Bad cells are reported."""
    values = table.columns[column]
    out = np.full(len(values), np.nan, dtype=np.float64)
    try:
        # fast path: numpy parses the whole column in C
        arr = np.array([v if v else "nan" for v in values], dtype=np.float64)
        ok = bool(np.all(np.isfinite(arr) | np.array([not v for v in values], dtype=bool)))
    except ValueError:
        arr = out
        ok = False
    if ok:
        out = arr
    else:
        for i, v in enumerate(values):
            if not v:
                continue
            try:
                x = float(v)
            except ValueError:
                x = math.nan
            if not math.isfinite(x):
                problems.add(table.file, table.lines[i], column, f"{column}={v!r} is not a number")
                continue
            out[i] = x
    empty = np.array([not v for v in values], dtype=bool)
    if not allow_empty and empty.any():
        for i in np.flatnonzero(empty)[:MAX_REPORTED_PROBLEMS].tolist():
            problems.add(table.file, table.lines[i], column, f"{column} is empty")
    finite = np.isfinite(out)
    if low is not None:
        bad = finite & (out < low)
        for i in np.flatnonzero(bad)[:MAX_REPORTED_PROBLEMS].tolist():
            problems.add(
                table.file, table.lines[i], column, f"{column}={values[i]!r} is below {low:g}"
            )
    if high is not None:
        bad = finite & (out > high)
        for i in np.flatnonzero(bad)[:MAX_REPORTED_PROBLEMS].tolist():
            problems.add(
                table.file, table.lines[i], column, f"{column}={values[i]!r} is above {high:g}"
            )
    return out


def _choices(
    table: _Table,
    column: str,
    allowed: Sequence[str],
    problems: _Problems,
    *,
    upper: bool = True,
) -> list[str]:
    values = [v.upper() for v in table.columns[column]] if upper else table.columns[column]
    allowed_set = set(allowed)
    for i, v in enumerate(values):
        if v not in allowed_set:
            shown = "|".join(a if a else "empty" for a in allowed)
            problems.add(
                table.file,
                table.lines[i],
                column,
                f"{column}={table.columns[column][i]!r} is not one of {shown}",
            )
    return values


def _required(table: _Table, column: str, problems: _Problems) -> list[str]:
    values = table.columns[column]
    for i, v in enumerate(values):
        if not v:
            problems.add(table.file, table.lines[i], column, f"{column} is empty")
    return values


def parse_iso_date(text: str) -> str | None:
    """'YYYY-MM-DD' -> the same string when it is a real date, else None."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        return None
    return text


def _dates(table: _Table, column: str, problems: _Problems) -> list[str]:
    values = table.columns[column]
    for i, v in enumerate(values):
        if v and parse_iso_date(v) is None:
            problems.add(
                table.file, table.lines[i], column, f"{column}={v!r} is not a YYYY-MM-DD date"
            )
    return values


def parse_theo_set(files: Mapping[str, bytes], *, name: str = "") -> TheoSet:
    """Build a ``TheoSet`` from the bytes of its five CSV files (keys: file names).

    Raises ``TheoSetInvalid`` (an ``UnreadableInput``) listing every problem with its location.
    """
    problems = _Problems()
    for file in FILES:
        if file not in files:
            problems.add(file, None, None, "file is missing")
    problems.raise_if_any()
    meta = _read_table("meta.csv", files["meta.csv"], META_COLUMNS, problems)
    ports = _read_table(
        "portfolio_groups.csv", files["portfolio_groups.csv"], PORTFOLIO_COLUMNS, problems
    )
    prods = _read_table(
        "product_groups.csv", files["product_groups.csv"], PRODUCT_COLUMNS, problems
    )
    classes = _read_table("class_groups.csv", files["class_groups.csv"], CLASS_COLUMNS, problems)
    pnl = _read_table("pnl.csv", files["pnl.csv"], PNL_FILE_COLUMNS, problems)
    problems.raise_if_any()
    assert meta is not None and ports is not None and prods is not None
    assert classes is not None and pnl is not None

    # meta
    if len(meta) != 1:
        problems.add("meta.csv", None, None, f"{len(meta)} data rows, exactly 1 expected")
        problems.raise_if_any()
    activity_date = meta.columns["activity_date"][0]
    if parse_iso_date(activity_date) is None:
        problems.add(
            "meta.csv",
            meta.lines[0],
            "activity_date",
            f"activity_date={activity_date!r} is not a YYYY-MM-DD date",
        )
    source = meta.columns["source"][0]
    equity_pg = meta.columns["equity_product_group"][0] or "999"

    # portfolio groups
    port_ids = _required(ports, "portfolio_group_id", problems)
    port_types = _choices(ports, "account_type", ACCOUNT_TYPES, problems)
    port_offsets = _floats(ports, "offset_pct", problems, low=0.0, high=1.0)
    port_index: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(port_types, port_ids, strict=True)):
        if key in port_index:
            problems.add(
                ports.file,
                ports.lines[i],
                "portfolio_group_id",
                f"portfolio group {key[1]!r} for account type {key[0]!r} is defined twice",
            )
        port_index.setdefault(key, i)

    # product groups
    pg_ids = _required(prods, "product_group_id", problems)
    pg_ports_raw = prods.columns["portfolio_group_id"]
    pg_types = _choices(prods, "account_type", ACCOUNT_TYPES, problems)
    pg_offsets = _floats(prods, "offset_pct", problems, allow_empty=True, low=0.0, high=1.0)
    pg_down = _floats(prods, "move_down_pct", problems, low=0.0, high=1.0)
    pg_up = _floats(prods, "move_up_pct", problems, low=0.0)
    pg_index: dict[tuple[str, str], int] = {}
    pg_port = np.full(len(prods), -1, dtype=np.int64)
    for i, (pg_acct, pg, port) in enumerate(zip(pg_types, pg_ids, pg_ports_raw, strict=True)):
        if (pg_acct, pg) in pg_index:
            problems.add(
                prods.file,
                prods.lines[i],
                "product_group_id",
                f"product group {pg!r} for account type {pg_acct!r} is defined twice",
            )
        pg_index.setdefault((pg_acct, pg), i)
        if port:
            code = port_index.get((pg_acct, port))
            if code is None:
                problems.add(
                    prods.file,
                    prods.lines[i],
                    "portfolio_group_id",
                    f"portfolio_group_id={port!r} is not in portfolio_groups.csv "
                    f"for account type {pg_acct!r}",
                )
            elif math.isnan(pg_offsets[i]):
                problems.add(
                    prods.file,
                    prods.lines[i],
                    "portfolio_group_id",
                    f"product group {pg!r} has an empty offset_pct (its class groups stand "
                    f"alone) so it cannot belong to portfolio group {port!r}",
                )
            else:
                pg_port[i] = code
    known_pgs = {pg for _, pg in pg_index}

    # class groups
    cg_ids = _required(classes, "class_group_id", problems)
    cg_pgs = _required(classes, "product_group_id", problems)
    cg_baskets = classes.columns["basket_id"]
    cg_index: dict[str, int] = {}
    basket_index: dict[str, int] = {}
    for i, (cg, pg, basket) in enumerate(zip(cg_ids, cg_pgs, cg_baskets, strict=True)):
        if cg in cg_index:
            problems.add(
                classes.file, classes.lines[i], "class_group_id", f"class group {cg!r} twice"
            )
        cg_index.setdefault(cg, i)
        if pg and pg not in known_pgs:
            problems.add(
                classes.file,
                classes.lines[i],
                "product_group_id",
                f"product_group_id={pg!r} is not in product_groups.csv",
            )
        if basket:
            if basket in basket_index:
                problems.add(
                    classes.file, classes.lines[i], "basket_id", f"basket {basket!r} twice"
                )
            basket_index.setdefault(basket, i)

    # instruments
    n = len(pnl)
    acct = _choices(pnl, "account_type", ACCOUNT_TYPES, problems)
    prod = _required(pnl, "product_group_id", problems)
    classes_of_rows = _required(pnl, "class_group_id", problems)
    sym = [s.upper() for s in _required(pnl, "symbol", problems)]
    sectype = _choices(pnl, "security_type", SECURITY_TYPES, problems)
    exstyle = _choices(pnl, "exercise_style", ("A", "E", ""), problems)
    setstyle = [s.upper() for s in pnl.columns["settlement_style"]]
    series = _dates(pnl, "series_date", problems)
    expiry = _dates(pnl, "expiration_date", problems)
    pc = _choices(pnl, "put_call", ("C", "P", ""), problems)
    strike = _floats(pnl, "strike", problems, low=0.0)
    multiplier = _floats(pnl, "multiplier", problems, low=0.0)
    theo_price = _floats(pnl, "theo_price", problems)
    implied_vol = _floats(pnl, "implied_vol", problems, allow_empty=True, low=0.0)
    min_charge = _floats(pnl, "min_charge", problems, low=0.0)
    pnl_vec = np.empty((n, POINTS), dtype=np.float64)
    for j, col in enumerate(PNL_COLUMNS):
        pnl_vec[:, j] = _floats(pnl, col, problems)
    underlying = [u.upper() for u in pnl.columns["underlying"]]

    cg_code = np.full(n, -1, dtype=np.int64)
    pg_code = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        line = pnl.lines[i]
        t = sectype[i]
        if t in OPTION_TYPES:
            if pc[i] not in ("C", "P"):
                problems.add(pnl.file, line, "put_call", f"put_call is required for {t!r}")
            elif t == "W" and pc[i] != "C":
                problems.add(pnl.file, line, "put_call", "a warrant is always a call ('C')")
        elif pc[i]:
            problems.add(pnl.file, line, "put_call", f"put_call must be empty for {t!r}")
        if t in ("O", "I", "F", "W") and not series[i]:
            problems.add(pnl.file, line, "series_date", f"series_date is required for {t!r}")
        if t == "S" and (series[i] or (math.isfinite(strike[i]) and strike[i] != 0.0)):
            problems.add(pnl.file, line, "series_date", "a stock has no series_date or strike")
        c = cg_index.get(classes_of_rows[i])
        if c is None:
            if classes_of_rows[i]:
                problems.add(
                    pnl.file,
                    line,
                    "class_group_id",
                    f"class_group_id={classes_of_rows[i]!r} is not in class_groups.csv",
                )
        else:
            cg_code[i] = c
            if cg_pgs[c] != prod[i]:
                problems.add(
                    pnl.file,
                    line,
                    "product_group_id",
                    f"product_group_id={prod[i]!r} but class group {classes_of_rows[i]!r} "
                    "belongs to "
                    f"product group {cg_pgs[c]!r}",
                )
        p = pg_index.get((acct[i], prod[i]))
        if p is None:
            if prod[i] and acct[i] in ACCOUNT_TYPES:
                problems.add(
                    pnl.file,
                    line,
                    "product_group_id",
                    f"product group {prod[i]!r} has no row for account type {acct[i]!r} "
                    "in product_groups.csv",
                )
        else:
            pg_code[i] = p
    problems.raise_if_any()

    keys = instrument_keys(acct, sym, sectype, pc, series, strike)
    seen: dict[InstrumentKey, int] = {}
    for r, ikey in enumerate(keys):
        seen[ikey] = -1 if ikey in seen else r
    full: dict[FullKey, int] = {}
    for r, ikey in enumerate(keys):
        if seen[ikey] != -1:
            continue
        fk = full_key(ikey, exstyle[r], setstyle[r])
        if fk in full:
            problems.add(
                pnl.file,
                pnl.lines[r],
                "symbol",
                f"instrument {'|'.join(map(str, ikey))!r} appears twice with the same styles",
            )
        full[fk] = r
    problems.raise_if_any()

    cg_pg_code = np.full((len(ACCOUNT_TYPES), len(cg_ids)), -1, dtype=np.int64)
    for type_row, type_name in enumerate(ACCOUNT_TYPES):
        for cg_col, cg_pg_id in enumerate(cg_pgs):
            cg_pg_code[type_row, cg_col] = pg_index.get((type_name, cg_pg_id), -1)
    equity_pg_code = np.array(
        [pg_index.get((a, equity_pg), -1) for a in ACCOUNT_TYPES], dtype=np.int64
    )

    spot: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(np.asarray(sectype, dtype=np.str_) == "F").tolist():
        k = (acct[i], sym[i])
        if k not in spot or series[i] < series[spot[k]]:
            spot[k] = i

    def sarr(values: Sequence[str]) -> StrArray:
        return np.asarray(values, dtype=np.str_) if values else np.zeros(0, dtype="<U1")

    sym_arr = sarr(sym)
    series_arr = sarr(series)
    strike_clean = np.where(np.isfinite(strike), strike, 0.0)
    vocab_symbol = np.unique(sym_arr)
    vocab_series = np.unique(series_arr)
    vocab_strike = np.unique(np.rint(strike_clean * STRIKE_SCALE).astype(np.int64))
    theo = TheoSet(
        name=name or activity_date,
        activity_date=activity_date,
        source=source,
        equity_product_group=equity_pg,
        port_ids=sarr(port_ids),
        port_account_types=sarr(port_types),
        port_offsets=port_offsets,
        pg_ids=sarr(pg_ids),
        pg_account_types=sarr(pg_types),
        pg_port=pg_port,
        pg_offsets=pg_offsets,
        pg_move_down=pg_down,
        pg_move_up=pg_up,
        cg_ids=sarr(cg_ids),
        cg_product_groups=sarr(cg_pgs),
        cg_baskets=sarr(cg_baskets),
        account_type=sarr(acct),
        product_group=sarr(prod),
        class_group=sarr(classes_of_rows),
        underlying=sarr(underlying),
        symbol=sym_arr,
        security_type=sarr(sectype),
        exercise_style=sarr(exstyle),
        settlement_style=sarr(setstyle),
        series_date=series_arr,
        expiration_date=sarr(expiry),
        put_call=sarr(pc),
        strike=strike_clean,
        multiplier=multiplier,
        theo_price=theo_price,
        implied_vol=implied_vol,
        min_charge=min_charge,
        pnl=pnl_vec,
        cg_code=cg_code,
        pg_code=pg_code,
        vocab_symbol=vocab_symbol,
        vocab_series=vocab_series,
        vocab_strike=vocab_strike,
        key_codes=np.zeros(0, dtype=np.int64),
        key_rows=np.zeros(0, dtype=np.int64),
        full_index=full,
        cg_pg_code=cg_pg_code,
        equity_pg_code=equity_pg_code,
        port_index=port_index,
        pg_index=pg_index,
        cg_index=cg_index,
        basket_index=basket_index,
        spot_future=spot,
    )
    codes = theo.encode_keys(
        theo.account_type,
        theo.symbol,
        theo.security_type,
        theo.put_call,
        theo.series_date,
        theo.strike,
    )
    order = np.argsort(codes, kind="stable")
    uniq, first, counts = np.unique(codes[order], return_index=True, return_counts=True)
    rows = order[first].astype(np.int64)
    rows[counts > 1] = -1
    return replace(theo, key_codes=uniq.astype(np.int64), key_rows=rows)


# --------------------------------------------------------------------------------------------
# rendering (the inverse of parsing; used by generation)


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
    parts = [",".join(PNL_FILE_COLUMNS) + "\n"]
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
        parts.append("".join(",".join(row) + "\n" for row in zip(*cols, strict=True)))
        if progress is not None:
            progress(stop, n)
    out["pnl.csv"] = "".join(parts).encode("utf-8")
    out["meta.csv"] = _csv_bytes(META_COLUMNS, [(activity_date, source, equity_product_group)])
    return out
