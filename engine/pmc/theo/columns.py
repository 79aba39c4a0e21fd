"""A theo set's CSV files read cell by cell, with every problem located.

``read_table`` turns one file's bytes into columns of stripped strings found by header name (order
free, extra columns ignored); the ``parse_*`` functions turn a column into typed values. Nothing
raises on a bad cell: each problem goes to a ``Problems`` with its file, line, column and value,
and the caller raises once, naming them all (``engine.pmc.market`` collects its problems so too).
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from engine.errors import Location, UnreadableInput
from engine.pmc.theo.model import FloatArray

MAX_REPORTED_PROBLEMS = 50


Invalid = Callable[[Sequence[str], Location | None], UnreadableInput]


class Problems:
    """Located problems, up to ``MAX_REPORTED_PROBLEMS``; ``raise_if_any`` raises them as one
    ``invalid(problems, location of the first)``."""

    def __init__(self, invalid: Invalid) -> None:
        self.invalid = invalid
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

    def for_file(self, file: str) -> Callable[[int | None, str | None, str], None]:
        """``add`` for the problems of one file: ``(line, column, message)``."""
        return functools.partial(self.add, file)

    def raise_if_any(self) -> None:
        if self.items:
            raise self.invalid(self.items, self.first)


@dataclass
class Table:
    """A CSV file as columns of stripped strings; ``lines[i]`` is the file line of data row i."""

    file: str
    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.lines)


def read_table(
    file: str,
    data: bytes,
    required: Sequence[str],
    problems: Problems,
    *,
    optional: Collection[str] = (),
) -> Table | None:
    """The ``required`` columns of a CSV file (those in ``optional`` may be absent: all empty),
    or None when the file cannot be read as such a table (the problem is reported)."""
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
    return Table(file, columns, good_lines)


def parse_floats(
    table: Table,
    column: str,
    problems: Problems,
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


def parse_choices(
    table: Table,
    column: str,
    allowed: Sequence[str],
    problems: Problems,
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


def parse_required(table: Table, column: str, problems: Problems) -> list[str]:
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


def parse_dates(table: Table, column: str, problems: Problems) -> list[str]:
    values = table.columns[column]
    for i, v in enumerate(values):
        if v and parse_iso_date(v) is None:
            problems.add(
                table.file, table.lines[i], column, f"{column}={v!r} is not a YYYY-MM-DD date"
            )
    return values
