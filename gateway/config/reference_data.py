"""Reference data: the clearing members, NCOs, exchanges and OCC holidays CSVs of ``reference_dir``.

``load_reference`` reads the four files into frozen dataclasses; every bad cell is reported with
its file, line and column, as are duplicate ids and weekend "open" holidays. Turning these rows
into engine objects is ``gateway.reference``'s business.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.schema import ConfigError, Problems


@dataclass(frozen=True)
class ClearingMember:
    cm_number: str
    name: str
    crd: str
    active: bool
    technical_contact: str
    contact_email: str
    contact_phone: str
    notify: bool


@dataclass(frozen=True)
class Nco:
    nco_id: str
    name: str
    crd: str
    dpl_eligible: bool
    technical_contact: str
    contact_email: str
    contact_phone: str
    notify: bool


@dataclass(frozen=True)
class Exchange:
    exchange_id: str
    name: str
    receives_dpl: bool
    delivery: str  # "spool" or "sftp://user@host:port/path"
    receives_ebe: bool = False


@dataclass(frozen=True)
class OccHoliday:
    date: dt.date
    action: str  # "close" | "open"
    description: str


@dataclass(frozen=True)
class ReferenceData:
    clearing_members: tuple[ClearingMember, ...]
    ncos: tuple[Nco, ...]
    exchanges: tuple[Exchange, ...]
    occ_holidays: tuple[OccHoliday, ...]


def numeric_key(value: str) -> str:
    """A firm id as compared: clearing member numbers ignore leading zeros."""
    return str(int(value)) if value.isdigit() else value


def _yes_no(value: str) -> bool:
    if value.strip().upper() in ("Y", "YES"):
        return True
    if value.strip().upper() in ("N", "NO"):
        return False
    raise ValueError(f"expected Y or N, got {value!r}")


def _date(value: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ValueError(f"expected YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date: {exc}") from exc


def _id(value: str) -> str:
    if not value.strip():
        raise ValueError("empty")
    return value.strip()


def _delivery(value: str) -> str:
    value = value.strip()
    if value == "spool" or re.fullmatch(r"sftp://[^@/\s]+@[^:/\s]+(:\d+)?(/\S*)?", value):
        return value
    raise ValueError(f"expected 'spool' or sftp://user@host:port/path, got {value!r}")


def _action(value: str) -> str:
    if value.strip() in ("close", "open"):
        return value.strip()
    raise ValueError(f"expected close or open, got {value!r}")


REFERENCE_FILES: dict[str, tuple[str, dict[str, Callable[[str], Any]]]] = {
    "clearing_members": (
        "clearing_members.csv",
        {
            "cm_number": _id,
            "name": str.strip,
            "crd": str.strip,
            "active": _yes_no,
            "technical_contact": str.strip,
            "contact_email": str.strip,
            "contact_phone": str.strip,
            "notify": _yes_no,
        },
    ),
    "ncos": (
        "ncos.csv",
        {
            "nco_id": _id,
            "name": str.strip,
            "crd": str.strip,
            "dpl_eligible": _yes_no,
            "technical_contact": str.strip,
            "contact_email": str.strip,
            "contact_phone": str.strip,
            "notify": _yes_no,
        },
    ),
    "exchanges": (
        "exchanges.csv",
        {
            "exchange_id": _id,
            "name": str.strip,
            "receives_dpl": _yes_no,
            "delivery": _delivery,
            "receives_ebe": _yes_no,
        },
    ),
    "occ_holidays": (
        "occ_holidays.csv",
        {"date": _date, "action": _action, "description": str.strip},
    ),
}
REFERENCE_TYPES: dict[str, type] = {
    "clearing_members": ClearingMember,
    "ncos": Nco,
    "exchanges": Exchange,
    "occ_holidays": OccHoliday,
}


def load_reference(folder: Path, problems: Problems | None = None) -> ReferenceData:
    """Read the four reference CSVs of ``folder``; problems name file, line and column."""
    own = problems is None
    problems = problems or Problems()
    loaded: dict[str, tuple[Any, ...]] = {}
    for key, (filename, columns) in REFERENCE_FILES.items():
        loaded[key] = tuple(
            _read_reference_csv(folder / filename, columns, REFERENCE_TYPES[key], problems)
        )
    _check_unique(folder, loaded, problems)
    _check_holidays(folder, loaded["occ_holidays"], problems)
    if own and problems.items:
        raise ConfigError(problems.items)
    return ReferenceData(**loaded)


OPTIONAL_COLUMNS = {"receives_ebe": "N"}
"""Columns a reference file may leave out, with the value they then have."""


def _read_reference_csv(
    path: Path, columns: Mapping[str, Callable[[str], Any]], kind: type, problems: Problems
) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.add(path, "reference file is missing")
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, f"cannot read reference file as UTF-8: {exc}")
        return []
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in columns if c not in header and c not in OPTIONAL_COLUMNS]
    if missing:
        problems.add(path, f"missing column(s) {', '.join(missing)} in header {header}", 1)
        return []
    rows = []
    for row in reader:
        line = reader.line_num
        values: dict[str, Any] = {}
        ok = True
        for column, parse in columns.items():
            raw = row.get(column) if column in header else OPTIONAL_COLUMNS[column]
            if raw is None:
                problems.add(path, "row is too short", line, column)
                ok = False
                continue
            try:
                values[column] = parse(raw)
            except ValueError as exc:
                problems.add(path, str(exc), line, column)
                ok = False
        if ok:
            rows.append(kind(**values))
    return rows


def _check_holidays(folder: Path, holidays: Iterable[OccHoliday], problems: Problems) -> None:
    path = folder / REFERENCE_FILES["occ_holidays"][0]
    for h in holidays:
        if h.action == "open" and h.date.weekday() >= 5:
            problems.add(
                path, f"{h.date} is a weekend: a weekend is never a business day", None, "action"
            )


def _check_unique(folder: Path, loaded: Mapping[str, tuple[Any, ...]], problems: Problems) -> None:
    for key, attr in (
        ("clearing_members", "cm_number"),
        ("ncos", "nco_id"),
        ("exchanges", "exchange_id"),
        ("occ_holidays", "date"),
    ):
        seen: set[Any] = set()
        for item in loaded[key]:
            value = getattr(item, attr)
            norm = numeric_key(value) if isinstance(value, str) else value
            if norm in seen:
                problems.add(
                    folder / REFERENCE_FILES[key][0], f"duplicate {attr} {value!s}", None, attr
                )
            seen.add(norm)
