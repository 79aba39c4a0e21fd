"""Reading 346 position files: CSV and fixed-width ASCII into columns.

``parse_position_file(data)`` detects the format from the first record line (a comma right after
``346`` means CSV), reads the optional header and trailer, checks the trailer totals, and returns a
``PositionFile``: the detail records that passed every field check
(``engine.pmc.positions.checks``) as a columnar ``PositionBatch`` plus a list of
``PositionProblem`` (rejected lines with reason, line and field; warnings). Whether a record names
an instrument of the P&L set (invalid series) is decided later, against a theo set, by
``engine.pmc.resolve.resolve_positions``.

A file that cannot be read at all (empty, binary, not UTF-8/ASCII text, no 346 record in it)
raises ``UnreadableInput``; any other defect is a problem of one line and never stops the rest.

Decisions (documented in the README's 346 section), besides the field
checks': a blank CSV firm takes the submitting firm when one is known; a trailer whose totals
differ from the detail records is a warning (``TRAILER_TOTALS``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from engine.errors import UnreadableInput
from engine.pmc.positions.checks import RecordRejected, check_detail, parse_date
from engine.pmc.positions.fastread import PlainRecords, merge_by_line, plain_detail_lines
from engine.pmc.positions.model import (
    BAD_VALUE,
    LAYOUT,
    MISPLACED_RECORD,
    REJECTED,
    TRAILER_TOTALS,
    TRANS_ID,
    WARNING,
    BatchColumns,
    FileHeader,
    FileTrailer,
    PositionFile,
    PositionProblem,
    firm_id,
)


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


def detect_format(lines: Iterable[str]) -> str | None:
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
        raise RecordRejected(LAYOUT, None, line_text[:80], "not a CSV line") from None
    if len(rows) != 1:
        raise RecordRejected(LAYOUT, None, line_text[:80], "not a single CSV line")
    return rows[0]


def _ascii_slice(text: str, start: int, end: int) -> str:
    return text[start - 1 : end]


def _ascii_int(text: str, field_name: str) -> int:
    t = text.strip()
    if not t.isdigit():
        raise RecordRejected(BAD_VALUE, field_name, text, f"{field_name}={text!r} is not a number")
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


def _first_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one by one (as ``splitlines`` gives them), without splitting all."""
    start = 0
    while start < len(text):
        cut = text.find("\n", start, start + 100_000)
        chunk = text[start : cut + 1 if cut >= 0 else start + 100_000]
        yield from chunk.splitlines()
        start += len(chunk)


_OTHER_LINE_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")


def _plain_csv(
    data: bytes, allow_zero: bool
) -> tuple[int, list[tuple[int, str]], PlainRecords] | None:
    """The line count, the lines to check one by one and the records checked in bulk
    (``fastread``) of a CSV file whose lines are what ``splitlines`` gives by splitting at
    ``\\n`` (ASCII, ``\\r`` only before ``\\n``); None for any other file."""
    raw = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if not raw.isascii() or any(b in raw for b in _OTHER_LINE_BREAKS):
        return None
    if b"\r" in raw:
        if raw.count(b"\r") != raw.count(b"\r\n"):
            return None
        raw = raw.replace(b"\r\n", b"\n")
    buf = np.frombuffer(raw, dtype=np.uint8)
    breaks = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], breaks + 1]).astype(np.int64)
    ends = np.concatenate([breaks, [buf.shape[0]]]).astype(np.int64)
    if starts[-1] == buf.shape[0]:  # a final line break ends the last line, as in splitlines
        starts, ends = starts[:-1], ends[:-1]
    n_lines = int(starts.shape[0])
    lead = np.frombuffer(b"346,,", dtype=np.uint8)
    candidate = ends - starts >= 5
    for k in range(5):
        candidate &= buf[np.minimum(starts + k, buf.shape[0] - 1)] == lead[k]
    picked = np.flatnonzero(candidate)
    plain = plain_detail_lines(buf, starts[picked], ends[picked], allow_zero=allow_zero)
    fast_idx = picked[plain.line]
    is_fast = np.zeros(n_lines, dtype=bool)
    is_fast[fast_idx] = True
    slow_idx = np.flatnonzero(~is_fast)
    slow = [(int(i), raw[int(starts[i]) : int(ends[i])].decode("ascii")) for i in slow_idx]
    # nothing may follow a trailer: records after the first trailer are checked one by one
    first_trailer = next((i for i, line in slow if _csv_kind(line) == "trailer"), None)
    if first_trailer is not None and fast_idx.size and fast_idx[-1] > first_trailer:
        late = fast_idx > first_trailer
        slow += [
            (int(i), raw[int(starts[i]) : int(ends[i])].decode("ascii")) for i in fast_idx[late]
        ]
        slow.sort()
        plain = plain.take(~late)
        fast_idx = fast_idx[~late]
    return n_lines, slow, plain.with_lines(fast_idx + 1)


def _csv_kind(line_text: str) -> str:
    """What the reader takes a CSV line for: 'header', 'trailer' or 'detail'."""
    if not line_text.strip():
        return "blank"
    try:
        fields = [f.strip() for f in _csv_fields(line_text)]
    except RecordRejected:
        return "detail"
    if fields and fields[0] != TRANS_ID:
        return "detail"
    rtype = fields[1].upper() if len(fields) > 1 else ""
    return {"H": "header", "T": "trailer"}.get(rtype, "detail")


def parse_position_file(
    data: bytes,
    *,
    default_firm: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    allow_zero: bool = False,
) -> PositionFile:
    """Parse a whole 346 file (CSV or ASCII, detected). See the module docstring.

    ``allow_zero`` accepts zero net positions (a file being converted or edited, not computed).
    """
    text = _decode(data)
    fmt = detect_format(_first_lines(text))
    if fmt is None:
        raise UnreadableInput("NOT_346", "no 346 record in the file (every record starts with 346)")
    plain = _plain_csv(data, allow_zero) if fmt == "csv" else None
    if plain is None:
        lines = text.splitlines()
        n_lines = len(lines)
        slow_items: list[tuple[int, str]] | enumerate[str] = enumerate(lines)
        fast: PlainRecords | None = None
        fast_lines = np.zeros(0, dtype=np.int64)
    else:
        n_lines, slow_items, fast = plain
        fast_lines = fast.line
    problems: list[PositionProblem] = []
    columns = BatchColumns()
    header: FileHeader | None = None
    trailer: FileTrailer | None = None
    total_longs = 0
    total_shorts = 0
    records = 0
    seen_detail = False
    step = 20_000
    next_progress = 0
    if progress is not None:
        progress(0, n_lines)
    for idx, raw in slow_items:
        if progress is not None and idx >= next_progress:
            progress(idx, n_lines)
            next_progress = idx + step
        line_no = idx + 1
        if not raw.strip():
            continue
        warnings: list[PositionProblem] = []
        kind = "detail"
        try:
            if fmt == "csv":
                fields = [f.strip() for f in _csv_fields(raw)]
                if fields and fields[0] != TRANS_ID:
                    raise RecordRejected(
                        LAYOUT, "TRANS-ID", fields[0], f"TRANS-ID={fields[0]!r} is not '346'"
                    )
                rtype = fields[1].upper() if len(fields) > 1 else ""
                if rtype == "H":
                    kind = "header"
                    if len(fields) != 4:
                        raise RecordRejected(
                            LAYOUT, None, None, f"header has {len(fields)} fields, 4 expected"
                        )
                    firm, hdate = fields[2], fields[3]
                elif rtype == "T":
                    kind = "trailer"
                    if len(fields) != 5:
                        raise RecordRejected(
                            LAYOUT, None, None, f"trailer has {len(fields)} fields, 5 expected"
                        )
                    firm = fields[2]
                    longs_t, shorts_t = fields[3], fields[4]
                else:
                    if rtype:
                        raise RecordRejected(
                            LAYOUT,
                            "RECORD-TYPE",
                            fields[1],
                            f"second field={fields[1]!r}: blank (detail), H or T expected",
                        )
                    if len(fields) == _CSV_DETAIL_FIELDS - 1:
                        fields.append("")
                    if len(fields) != _CSV_DETAIL_FIELDS:
                        raise RecordRejected(
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
                        allow_zero=allow_zero,
                    )
            else:
                s = raw.rstrip("\r\n")
                if s[:3] != TRANS_ID:
                    raise RecordRejected(
                        LAYOUT, "TRANS-ID", s[:3], f"TRANS-ID={s[:3]!r} is not '346'"
                    )
                rtype = s[3:4].upper()
                if rtype == "H":
                    kind = "header"
                    if len(s.rstrip()) > 16:
                        raise RecordRejected(
                            LAYOUT, None, None, "header is longer than 16 characters"
                        )
                    firm, hdate = _ascii_slice(s, 5, 8), _ascii_slice(s, 9, 16)
                elif rtype == "T":
                    kind = "trailer"
                    if len(s.rstrip()) > 30:
                        raise RecordRejected(
                            LAYOUT, None, None, "trailer is longer than 30 characters"
                        )
                    firm = _ascii_slice(s, 5, 8)
                    longs_t, shorts_t = _ascii_slice(s, 9, 19), _ascii_slice(s, 20, 30)
                else:
                    if rtype.strip():
                        raise RecordRejected(
                            LAYOUT,
                            "RECORD-TYPE",
                            rtype,
                            f"column 4={rtype!r}: blank (detail), H or T expected",
                        )
                    body = s.rstrip()
                    if len(body) < 66:
                        raise RecordRejected(
                            LAYOUT,
                            None,
                            None,
                            f"detail record is {len(body)} characters, at least 66 expected",
                        )
                    if len(body) > 71:
                        raise RecordRejected(
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
                        allow_zero=allow_zero,
                    )
            if kind == "header":
                fast_before = bool(fast_lines.size) and bool(fast_lines[0] <= idx)
                if header is not None or seen_detail or records or fast_before:
                    raise RecordRejected(
                        MISPLACED_RECORD, None, None, "a header is allowed only as the first record"
                    )
                firm_t = firm.strip()
                if not firm_t.isdigit():
                    raise RecordRejected(
                        BAD_VALUE,
                        "CLEARING MEMBER NUMBER",
                        firm,
                        f"CLEARING MEMBER NUMBER={firm!r} is not a number",
                    )
                header = FileHeader(
                    line_no,
                    firm_id(firm_t),
                    parse_date(hdate, "DATE", iso_allowed=False),
                )
                continue
            if kind == "trailer":
                if trailer is not None:
                    raise RecordRejected(MISPLACED_RECORD, None, None, "a second trailer")
                firm_t = firm.strip()
                trailer = FileTrailer(
                    line_no,
                    firm_id(firm_t),
                    _ascii_int(longs_t, "TOTAL LONGS"),
                    _ascii_int(shorts_t, "TOTAL SHORTS"),
                )
                continue
            # detail
            if trailer is not None:
                raise RecordRejected(
                    MISPLACED_RECORD, None, None, "a detail record after the trailer"
                )
            columns.add(row)
            problems.extend(warnings)
        except RecordRejected as exc:
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
    positions = columns.batch()
    if fast is not None and fast.line.size:
        records += int(fast.line.size)
        total_longs += int(fast.net[fast.function_long].sum())
        total_shorts += int(fast.net[~fast.function_long].sum())
        positions = merge_by_line(positions, fast)
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
    return PositionFile(fmt, header, trailer, positions, problems, records)
