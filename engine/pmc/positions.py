"""346 position files (seed 002, Appendix B): CSV and fixed-width ASCII into typed columns.

``parse_position_file(data)`` detects the format from the first record line (a comma right after
``346`` means CSV), reads the optional header and trailer, checks the trailer totals, and returns a
``PositionFile``: the detail records that passed every field check as a columnar
``PositionBatch`` plus a list of ``PositionProblem`` (rejected lines with reason, line and field;
warnings). Whether a record names an instrument of the P&L set (invalid series) is decided later,
against a theo set, by ``engine.pmc.margin.resolve_positions``.

A file that cannot be read at all (empty, binary, not UTF-8/ASCII text, no 346 record in it)
raises ``UnreadableInput``; any other defect is a problem of one line and never stops the rest.

Decisions where the seed is silent (documented in docs/readme/margin.md):
* dates are accepted as CCYYMMDD, CYYMMDD (C=0 for 19xx, 1 for 20xx) or YYMMDD (20xx), and in CSV
  also as YYYY-MM-DD or MM/DD/YYYY;
* ASCII numbers carry implied decimals (strike 5.4, market value 6.6) unless they contain a '.';
* a blank CSV firm takes the submitting firm when one is known;
* a trailer whose totals differ from the detail records is a warning (``TRAILER_TOTALS``);
* a zero quantity is accepted with a warning; negative quantities are rejected (use S).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from numpy.typing import NDArray

from engine.errors import Location, UnreadableInput

TRANS_ID = "346"
ACCOUNT_TYPES = frozenset("CFM")
SECURITY_TYPES = frozenset("OIFSWX")
OPTION_TYPES = frozenset("OIW")

# problem kinds
REJECTED = "rejected"
INVALID_SERIES = "invalid_series"
WARNING = "warning"

# reason codes (stable: they appear in error logs and JSON)
LAYOUT = "LAYOUT"
MISSING_FIELD = "MISSING_FIELD"
BAD_VALUE = "BAD_VALUE"
UNKNOWN_BASKET = "UNKNOWN_BASKET"
NOT_IN_SET = "INVALID_SERIES"
MARKET_VALUE_IGNORED = "MARKET_VALUE_IGNORED"
STRIKE_IGNORED = "STRIKE_IGNORED"
BASKET_IGNORED = "BASKET_IGNORED"
ZERO_QUANTITY = "ZERO_QUANTITY"
TRAILER_TOTALS = "TRAILER_TOTALS"
MISPLACED_RECORD = "MISPLACED_RECORD"

MAX_QUANTITY = 999_999_999
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./#^-]{0,20}$")
_ACCOUNT_RE = re.compile(r"^[\x20-\x7e]{0,20}$")
_DECIMAL_RE = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)$")
_INT_RE = re.compile(r"^[+]?\d+$")

StrArray = NDArray[np.str_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PositionProblem:
    """One problem of one line: kind (rejected|invalid_series|warning) and a stable reason."""

    line: int
    kind: str
    reason: str
    field: str | None
    value: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "kind": self.kind,
            "reason": self.reason,
            "field": self.field,
            "value": self.value,
            "message": self.message,
        }

    def location(self, file: str | None = None) -> Location:
        return Location(file=file, line=self.line, field=self.field)


@dataclass(frozen=True, eq=False)
class PositionBatch:
    """Detail records that passed the field checks, columnar, all shape [n].

    ``quantity`` is signed (long +, short -). ``series_date``/``expiration_date`` are ISO dates or
    ''. ``market_value`` is the per-unit closing price given in the record (0 when none).
    """

    line: IntArray
    firm: StrArray
    account: StrArray
    account_type: StrArray
    put_call: StrArray
    symbol: StrArray
    exercise_style: StrArray
    settlement_style: StrArray
    series_date: StrArray
    expiration_date: StrArray
    strike: FloatArray
    security_type: StrArray
    market_value: FloatArray
    quantity: FloatArray
    basket_id: StrArray

    def __len__(self) -> int:
        return int(self.line.shape[0])

    def take(self, index: IntArray | NDArray[np.bool_]) -> PositionBatch:
        """The rows selected by an index or mask, as a new batch."""
        return PositionBatch(
            **{name: getattr(self, name)[index] for name in _BATCH_FIELDS},
        )

    @staticmethod
    def concat(batches: Sequence[PositionBatch]) -> PositionBatch:
        """Rows of several batches, in order."""
        return PositionBatch(
            **{name: np.concatenate([getattr(b, name) for b in batches]) for name in _BATCH_FIELDS}
        )


_BATCH_FIELDS = (
    "line",
    "firm",
    "account",
    "account_type",
    "put_call",
    "symbol",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "strike",
    "security_type",
    "market_value",
    "quantity",
    "basket_id",
)
_STR_FIELDS = tuple(
    f for f in _BATCH_FIELDS if f not in ("line", "strike", "market_value", "quantity")
)


@dataclass(frozen=True)
class FileHeader:
    line: int
    firm: str
    date: str


@dataclass(frozen=True)
class FileTrailer:
    line: int
    firm: str
    total_longs: int
    total_shorts: int


@dataclass(frozen=True, eq=False)
class PositionFile:
    """A parsed 346 file: format, header/trailer, good detail records, per-line problems.

    ``records`` counts every record line that is neither a valid header nor a valid trailer
    (accepted, rejected or, later, invalid series).
    """

    format: str
    header: FileHeader | None
    trailer: FileTrailer | None
    positions: PositionBatch
    problems: list[PositionProblem]
    records: int


class _Rejected(Exception):
    def __init__(self, reason: str, field_name: str | None, value: str | None, message: str):
        super().__init__(message)
        self.reason = reason
        self.field = field_name
        self.value = value
        self.message = message


@dataclass
class _Columns:
    values: dict[str, list[object]] = field(default_factory=lambda: {f: [] for f in _BATCH_FIELDS})

    def add(self, row: dict[str, object]) -> None:
        for name in _BATCH_FIELDS:
            self.values[name].append(row[name])

    def batch(self) -> PositionBatch:
        v = self.values
        out: dict[str, object] = {}
        for name in _STR_FIELDS:
            out[name] = np.asarray(v[name], dtype=np.str_) if v[name] else np.zeros(0, dtype="<U1")
        out["line"] = np.asarray(v["line"], dtype=np.int64)
        for name in ("strike", "market_value", "quantity"):
            out[name] = np.asarray(v[name], dtype=np.float64)
        return PositionBatch(**out)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# field checks shared by both formats and by JSON what-if positions


def parse_date(text: str, field_name: str, *, iso_allowed: bool = True) -> str:
    """A 346 date in any accepted form -> 'YYYY-MM-DD'; '' for blank or all zeros."""
    t = text.strip()
    if not t or set(t) == {"0"}:
        return ""
    y: int
    m: int
    d: int
    try:
        if t.isdigit() and len(t) == 8:
            y, m, d = int(t[:4]), int(t[4:6]), int(t[6:])
        elif t.isdigit() and len(t) == 7:
            if t[0] not in "01":
                raise ValueError
            y, m, d = 1900 + 100 * int(t[0]) + int(t[1:3]), int(t[3:5]), int(t[5:])
        elif t.isdigit() and len(t) == 6:
            y, m, d = 2000 + int(t[:2]), int(t[2:4]), int(t[4:])
        elif iso_allowed and len(t) == 10 and t[4] == "-" and t[7] == "-":
            y, m, d = int(t[:4]), int(t[5:7]), int(t[8:])
        elif iso_allowed and len(t) == 10 and t[2] == "/" and t[5] == "/":
            m, d, y = int(t[:2]), int(t[3:5]), int(t[6:])
        else:
            raise ValueError
        return date(y, m, d).isoformat()
    except ValueError:
        raise _Rejected(
            BAD_VALUE, field_name, text, f"{field_name}={text!r} is not a date (CCYYMMDD)"
        ) from None


def _decimal(text: str, field_name: str, implied_decimals: int = 0) -> float:
    t = text.strip()
    if not t:
        return 0.0
    if "." not in t and implied_decimals and t.isdigit():
        return float(int(t)) / float(10**implied_decimals)
    if not _DECIMAL_RE.match(t):
        raise _Rejected(
            BAD_VALUE, field_name, text, f"{field_name}={text!r} is not a non-negative number"
        )
    return float(t)


def _quantity(text: str) -> int:
    t = text.strip()
    if not t:
        raise _Rejected(MISSING_FIELD, "NET POSITION", text, "NET POSITION is empty")
    if t.endswith(".0") or t.endswith(".00"):
        t = t.split(".", 1)[0]
    if not _INT_RE.match(t):
        raise _Rejected(
            BAD_VALUE,
            "NET POSITION",
            text,
            f"NET POSITION={text!r} is not a non-negative whole number (use FUNCTION S for shorts)",
        )
    q = int(t)
    if q > MAX_QUANTITY:
        raise _Rejected(BAD_VALUE, "NET POSITION", text, f"NET POSITION={text!r} is too large")
    return q


def check_detail(
    *,
    line: int,
    firm: str,
    account: str,
    put_call: str,
    symbol: str,
    exercise_style: str,
    settlement_style: str,
    series_date: str,
    expiration_date: str,
    strike: str,
    function: str,
    security_type: str,
    market_value: str,
    net_position: str,
    account_type: str,
    basket_id: str,
    implied: tuple[int, int] = (0, 0),
    default_firm: str | None = None,
    warnings: list[PositionProblem] | None = None,
) -> dict[str, object]:
    """Validate the text fields of one detail record; returns the typed row or raises _Rejected.

    ``implied`` is the number of implied decimals of strike and market value (ASCII: 4 and 6).
    Warnings are appended to ``warnings``.
    """
    warn = warnings if warnings is not None else []
    firm_t = firm.strip()
    if not firm_t and default_firm:
        firm_t = default_firm
    if not firm_t:
        raise _Rejected(
            MISSING_FIELD, "CLEARING FIRM NUMBER", firm, "CLEARING FIRM NUMBER is empty"
        )
    if not firm_t.isdigit() or len(firm_t) > 5:
        raise _Rejected(
            BAD_VALUE,
            "CLEARING FIRM NUMBER",
            firm,
            f"CLEARING FIRM NUMBER={firm!r} is not a number of up to 5 digits",
        )
    firm_n = firm_t.lstrip("0") or "0"
    account_t = account.strip()
    if not _ACCOUNT_RE.match(account_t):
        raise _Rejected(BAD_VALUE, "ACCOUNT ID", account, f"ACCOUNT ID={account!r} is not valid")
    sectype = security_type.strip().upper()
    if not sectype:
        raise _Rejected(
            MISSING_FIELD, "SECURITY TYPE CODE", security_type, "SECURITY TYPE CODE is empty"
        )
    if sectype not in SECURITY_TYPES:
        raise _Rejected(
            BAD_VALUE,
            "SECURITY TYPE CODE",
            security_type,
            f"SECURITY TYPE CODE={security_type!r} is not one of O, I, F, S, W, X",
        )
    sym = symbol.strip().upper()
    if not sym:
        raise _Rejected(MISSING_FIELD, "SYMBOL", symbol, "SYMBOL is empty")
    if not _SYMBOL_RE.match(sym):
        raise _Rejected(BAD_VALUE, "SYMBOL", symbol, f"SYMBOL={symbol!r} is not a trading symbol")
    pc = put_call.strip().upper()
    if sectype in OPTION_TYPES:
        if not pc:
            raise _Rejected(
                MISSING_FIELD,
                "PUT/CALL INDICATOR",
                put_call,
                f"PUT/CALL INDICATOR is required for security type {sectype}",
            )
        if pc not in ("C", "P") or (sectype == "W" and pc != "C"):
            allowed = "C" if sectype == "W" else "C or P"
            raise _Rejected(
                BAD_VALUE,
                "PUT/CALL INDICATOR",
                put_call,
                f"PUT/CALL INDICATOR={put_call!r} must be {allowed} for security type {sectype}",
            )
    elif pc:
        raise _Rejected(
            BAD_VALUE,
            "PUT/CALL INDICATOR",
            put_call,
            f"PUT/CALL INDICATOR={put_call!r} must be blank for security type {sectype}",
        )
    ex = exercise_style.strip().upper()
    if ex not in ("", "A", "E"):
        raise _Rejected(
            BAD_VALUE, "EXERCISE STYLE", exercise_style, f"EXERCISE STYLE={exercise_style!r}"
        )
    st = settlement_style.strip().upper()
    if st not in ("", "O", "C"):
        raise _Rejected(
            BAD_VALUE,
            "SETTLEMENT STYLE",
            settlement_style,
            f"SETTLEMENT STYLE={settlement_style!r} is not O or C",
        )
    series = parse_date(series_date, "SERIES/CONTRACT DATE")
    if not series and sectype in ("O", "I", "F", "W"):
        raise _Rejected(
            MISSING_FIELD,
            "SERIES/CONTRACT DATE",
            series_date,
            f"SERIES/CONTRACT DATE is required for security type {sectype}",
        )
    expiry = parse_date(expiration_date, "EXPIRATION DATE")
    strike_v = _decimal(strike, "STRIKE PRICE", implied[0])
    if sectype in OPTION_TYPES:
        if strike_v <= 0:
            raise _Rejected(
                BAD_VALUE,
                "STRIKE PRICE",
                strike,
                f"STRIKE PRICE={strike!r} must be positive for an option",
            )
    elif strike_v != 0.0:
        warn.append(
            PositionProblem(
                line,
                WARNING,
                STRIKE_IGNORED,
                "STRIKE PRICE",
                strike,
                f"STRIKE PRICE={strike!r} ignored for security type {sectype}",
            )
        )
        strike_v = 0.0
    if sectype in ("S", "X"):
        series = ""
    func = function.strip().upper()
    if not func:
        raise _Rejected(MISSING_FIELD, "FUNCTION", function, "FUNCTION is empty")
    if func not in ("L", "S"):
        raise _Rejected(BAD_VALUE, "FUNCTION", function, f"FUNCTION={function!r} is not L or S")
    mv = _decimal(market_value, "MARKET VALUE", implied[1])
    qty = _quantity(net_position)
    acct = account_type.strip().upper()
    if not acct:
        raise _Rejected(
            MISSING_FIELD,
            "INTERVAL DISTINCTION ID",
            account_type,
            "INTERVAL DISTINCTION ID is empty",
        )
    if acct not in ACCOUNT_TYPES:
        raise _Rejected(
            BAD_VALUE,
            "INTERVAL DISTINCTION ID",
            account_type,
            f"INTERVAL DISTINCTION ID={account_type!r} is not C, F or M",
        )
    basket = basket_id.strip().upper()
    if set(basket) <= {"0"}:
        basket = ""
    if basket and not basket.isalnum():
        raise _Rejected(BAD_VALUE, "BASKET ID", basket_id, f"BASKET ID={basket_id!r} is not valid")
    if basket and sectype != "S":
        warn.append(
            PositionProblem(
                line,
                WARNING,
                BASKET_IGNORED,
                "BASKET ID",
                basket_id,
                f"BASKET ID={basket_id!r} ignored: only stocks go into baskets",
            )
        )
        basket = ""
    if qty == 0:
        warn.append(
            PositionProblem(
                line,
                WARNING,
                ZERO_QUANTITY,
                "NET POSITION",
                net_position,
                "NET POSITION is zero: the record adds nothing",
            )
        )
    return {
        "line": line,
        "firm": firm_n,
        "account": account_t,
        "account_type": acct,
        "put_call": pc,
        "symbol": sym,
        "exercise_style": ex,
        "settlement_style": st,
        "series_date": series,
        "expiration_date": expiry,
        "strike": strike_v,
        "security_type": sectype,
        "market_value": mv,
        "quantity": float(qty if func == "L" else -qty),
        "_function": func,
        "_qty": qty,
        "basket_id": basket,
    }


# --------------------------------------------------------------------------------------------
# formats


def _decode(data: bytes) -> str:
    if not data or not data.strip():
        raise UnreadableInput("EMPTY", "the position file is empty")
    if b"\x00" in data:
        raise UnreadableInput("NOT_TEXT", "the position file is binary (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableInput(
            "NOT_TEXT", f"the position file is not UTF-8/ASCII text (byte {exc.start})"
        ) from None
    return text


def detect_format(lines: Sequence[str]) -> str | None:
    """'csv' or 'ascii' from the first line that starts with 346; None when there is none."""
    for raw in lines:
        s = raw.lstrip().lstrip('"')
        if s.startswith(TRANS_ID):
            rest = s[3:].lstrip('"')
            return "csv" if rest.startswith(",") else "ascii"
    return None


_CSV_DETAIL_FIELDS = 18


def _csv_fields(line_text: str) -> list[str]:
    try:
        rows = list(csv.reader(io.StringIO(line_text)))
    except csv.Error:
        raise _Rejected(LAYOUT, None, line_text[:80], "not a CSV line") from None
    if len(rows) != 1:
        raise _Rejected(LAYOUT, None, line_text[:80], "not a single CSV line")
    return rows[0]


def _ascii_slice(text: str, start: int, end: int) -> str:
    return text[start - 1 : end]


def _ascii_int(text: str, field_name: str) -> int:
    t = text.strip()
    if not t.isdigit():
        raise _Rejected(BAD_VALUE, field_name, text, f"{field_name}={text!r} is not a number")
    return int(t)


def _function_and_quantity(raw: str, fmt: str) -> tuple[str, int] | None:
    """FUNCTION and NET POSITION of a detail line when both are readable (for trailer totals)."""
    if fmt == "csv":
        try:
            fields = next(csv.reader(io.StringIO(raw)))
        except (csv.Error, StopIteration):
            return None
        if len(fields) < 16:
            return None
        func, qty = fields[12].strip().upper(), fields[15].strip()
    else:
        func, qty = raw[42:43].upper(), raw[56:65].strip()
    if func not in ("L", "S") or not qty.isdigit():
        return None
    return func, int(qty)


def parse_position_file(
    data: bytes,
    *,
    default_firm: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PositionFile:
    """Parse a whole 346 file (CSV or ASCII, detected). See the module docstring."""
    text = _decode(data)
    lines = text.splitlines()
    fmt = detect_format(lines)
    if fmt is None:
        raise UnreadableInput("NOT_346", "no 346 record in the file (every record starts with 346)")
    problems: list[PositionProblem] = []
    columns = _Columns()
    header: FileHeader | None = None
    trailer: FileTrailer | None = None
    total_longs = 0
    total_shorts = 0
    records = 0
    seen_detail = False
    n_lines = len(lines)
    step = 20_000
    for idx, raw in enumerate(lines):
        if progress is not None and idx % step == 0:
            progress(idx, n_lines)
        line_no = idx + 1
        if not raw.strip():
            continue
        warnings: list[PositionProblem] = []
        kind = "detail"
        try:
            if fmt == "csv":
                fields = [f.strip() for f in _csv_fields(raw)]
                if fields and fields[0] != TRANS_ID:
                    raise _Rejected(
                        LAYOUT, "TRANS-ID", fields[0], f"TRANS-ID={fields[0]!r} is not '346'"
                    )
                rtype = fields[1].upper() if len(fields) > 1 else ""
                if rtype == "H":
                    kind = "header"
                    if len(fields) != 4:
                        raise _Rejected(
                            LAYOUT, None, None, f"header has {len(fields)} fields, 4 expected"
                        )
                    firm, hdate = fields[2], fields[3]
                elif rtype == "T":
                    kind = "trailer"
                    if len(fields) != 5:
                        raise _Rejected(
                            LAYOUT, None, None, f"trailer has {len(fields)} fields, 5 expected"
                        )
                    firm = fields[2]
                    longs_t, shorts_t = fields[3], fields[4]
                else:
                    if rtype:
                        raise _Rejected(
                            LAYOUT,
                            "RECORD-TYPE",
                            fields[1],
                            f"second field={fields[1]!r}: blank (detail), H or T expected",
                        )
                    if len(fields) == _CSV_DETAIL_FIELDS - 1:
                        fields.append("")
                    if len(fields) != _CSV_DETAIL_FIELDS:
                        raise _Rejected(
                            LAYOUT,
                            None,
                            None,
                            f"detail record has {len(fields)} fields, 17 or 18 expected",
                        )
                    row = check_detail(
                        line=line_no,
                        firm=fields[2],
                        account=fields[3],
                        put_call=fields[4],
                        symbol=fields[5],
                        exercise_style=fields[7],
                        settlement_style=fields[8],
                        series_date=fields[9],
                        expiration_date=fields[10],
                        strike=fields[11],
                        function=fields[12],
                        security_type=fields[13],
                        market_value=fields[14],
                        net_position=fields[15],
                        account_type=fields[16],
                        basket_id=fields[17],
                        default_firm=default_firm,
                        warnings=warnings,
                    )
            else:
                s = raw.rstrip("\r\n")
                if s[:3] != TRANS_ID:
                    raise _Rejected(LAYOUT, "TRANS-ID", s[:3], f"TRANS-ID={s[:3]!r} is not '346'")
                rtype = s[3:4].upper()
                if rtype == "H":
                    kind = "header"
                    if len(s.rstrip()) > 16:
                        raise _Rejected(LAYOUT, None, None, "header is longer than 16 characters")
                    firm, hdate = _ascii_slice(s, 5, 8), _ascii_slice(s, 9, 16)
                elif rtype == "T":
                    kind = "trailer"
                    if len(s.rstrip()) > 30:
                        raise _Rejected(LAYOUT, None, None, "trailer is longer than 30 characters")
                    firm = _ascii_slice(s, 5, 8)
                    longs_t, shorts_t = _ascii_slice(s, 9, 19), _ascii_slice(s, 20, 30)
                else:
                    if rtype.strip():
                        raise _Rejected(
                            LAYOUT,
                            "RECORD-TYPE",
                            rtype,
                            f"column 4={rtype!r}: blank (detail), H or T expected",
                        )
                    body = s.rstrip()
                    if len(body) < 66:
                        raise _Rejected(
                            LAYOUT,
                            None,
                            None,
                            f"detail record is {len(body)} characters, at least 66 expected",
                        )
                    if len(body) > 71:
                        raise _Rejected(
                            LAYOUT,
                            None,
                            None,
                            f"detail record is {len(body)} characters, at most 71 expected",
                        )
                    s = s.ljust(71)
                    row = check_detail(
                        line=line_no,
                        firm=_ascii_slice(s, 5, 8),
                        account=_ascii_slice(s, 9, 18),
                        put_call=_ascii_slice(s, 19, 19),
                        symbol=_ascii_slice(s, 20, 25),
                        exercise_style="",
                        settlement_style="",
                        series_date=_ascii_slice(s, 26, 33),
                        expiration_date="",
                        strike=_ascii_slice(s, 34, 42),
                        function=_ascii_slice(s, 43, 43),
                        security_type=_ascii_slice(s, 44, 44),
                        market_value=_ascii_slice(s, 45, 56),
                        net_position=_ascii_slice(s, 57, 65),
                        account_type=_ascii_slice(s, 66, 66),
                        basket_id=_ascii_slice(s, 67, 71),
                        implied=(4, 6),
                        default_firm=default_firm,
                        warnings=warnings,
                    )
            if kind == "header":
                if header is not None or seen_detail or records:
                    raise _Rejected(
                        MISPLACED_RECORD, None, None, "a header is allowed only as the first record"
                    )
                firm_t = firm.strip()
                if not firm_t.isdigit():
                    raise _Rejected(
                        BAD_VALUE,
                        "CLEARING MEMBER NUMBER",
                        firm,
                        f"CLEARING MEMBER NUMBER={firm!r} is not a number",
                    )
                header = FileHeader(
                    line_no,
                    firm_t.lstrip("0") or "0",
                    parse_date(hdate, "DATE", iso_allowed=False),
                )
                continue
            if kind == "trailer":
                if trailer is not None:
                    raise _Rejected(MISPLACED_RECORD, None, None, "a second trailer")
                firm_t = firm.strip()
                trailer = FileTrailer(
                    line_no,
                    firm_t.lstrip("0") or "0",
                    _ascii_int(longs_t, "TOTAL LONGS"),
                    _ascii_int(shorts_t, "TOTAL SHORTS"),
                )
                continue
            # detail
            if trailer is not None:
                raise _Rejected(MISPLACED_RECORD, None, None, "a detail record after the trailer")
            columns.add(row)
            problems.extend(warnings)
        except _Rejected as exc:
            problems.append(
                PositionProblem(line_no, REJECTED, exc.reason, exc.field, exc.value, exc.message)
            )
        if kind == "detail":
            records += 1
            seen_detail = True
            func_qty = _function_and_quantity(raw, fmt)
            if func_qty is not None:
                if func_qty[0] == "L":
                    total_longs += func_qty[1]
                else:
                    total_shorts += func_qty[1]
        elif kind in ("header", "trailer") and problems and problems[-1].line == line_no:
            records += 1
    if progress is not None:
        progress(n_lines, n_lines)
    if trailer is not None and (
        trailer.total_longs != total_longs or trailer.total_shorts != total_shorts
    ):
        problems.append(
            PositionProblem(
                trailer.line,
                WARNING,
                TRAILER_TOTALS,
                "TOTAL LONGS" if trailer.total_longs != total_longs else "TOTAL SHORTS",
                f"{trailer.total_longs}/{trailer.total_shorts}",
                f"trailer totals longs={trailer.total_longs} shorts={trailer.total_shorts} but the "
                f"detail records add up to longs={total_longs} shorts={total_shorts}",
            )
        )
    problems.sort(key=lambda p: p.line)
    return PositionFile(fmt, header, trailer, columns.batch(), problems, records)


def positions_from_rows(
    rows: Sequence[dict[str, object]],
) -> tuple[PositionBatch, list[PositionProblem]]:
    """What-if positions given as plain records (e.g. a JSON body) -> batch + problems.

    Each row: ``firm``, ``account`` (optional), ``account_type``, ``symbol``, ``security_type``,
    ``put_call``, ``series_date``, ``strike``, ``quantity`` (signed: long +, short -), and
    optionally ``market_value``, ``basket_id``, ``exercise_style``, ``settlement_style``,
    ``expiration_date``. Row i is reported as line i + 1.
    """
    cols = _Columns()
    problems: list[PositionProblem] = []
    for i, row in enumerate(rows):
        line = i + 1
        warnings: list[PositionProblem] = []

        def text(name: str, row: dict[str, object] = row) -> str:
            v = row.get(name)
            return "" if v is None else str(v)

        try:
            qty_raw = row.get("quantity")
            if isinstance(qty_raw, bool) or not isinstance(qty_raw, (int, float, str)):
                raise _Rejected("BAD_VALUE", "quantity", repr(qty_raw), "quantity must be a number")
            qty = float(qty_raw)
            if not np.isfinite(qty) or qty != int(qty):
                raise _Rejected("BAD_VALUE", "quantity", str(qty_raw), "quantity must be whole")
            checked = check_detail(
                line=line,
                firm=text("firm"),
                account=text("account"),
                put_call=text("put_call"),
                symbol=text("symbol"),
                exercise_style=text("exercise_style"),
                settlement_style=text("settlement_style"),
                series_date=text("series_date"),
                expiration_date=text("expiration_date"),
                strike=text("strike") or "0",
                function="S" if qty < 0 else "L",
                security_type=text("security_type"),
                market_value=text("market_value"),
                net_position=str(abs(int(qty))),
                account_type=text("account_type"),
                basket_id=text("basket_id"),
                warnings=warnings,
            )
        except (_Rejected, ValueError, OverflowError) as exc:
            if isinstance(exc, _Rejected):
                problems.append(
                    PositionProblem(line, REJECTED, exc.reason, exc.field, exc.value, exc.message)
                )
            else:
                problems.append(
                    PositionProblem(line, REJECTED, "BAD_VALUE", "quantity", None, str(exc))
                )
            continue
        cols.add(checked)
        problems.extend(warnings)
    return cols.batch(), problems
