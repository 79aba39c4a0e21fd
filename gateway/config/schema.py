"""The config schema machinery: typed value parsers, table parsing and problem collection.

Every loader of the config package (the TOML settings, account files, reference CSVs) reports
through one ``Problems`` collector, so that ``load_config`` can raise a single ``ConfigError``
naming every problem with its file, line and key.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration or reference data is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# ---------------------------------------------------------------------------------------------
# Schema: table -> key -> (parser, default). A default of REQUIRED means the key must be given.

REQUIRED = object()
Parser = Callable[[Any], Any]


def typed(
    kind: type | tuple[type, ...], check: Callable[[Any], bool] | None = None, what: str = ""
) -> Parser:
    def parse(value: Any) -> Any:
        if isinstance(value, bool) and kind is not bool and kind != (bool,):
            raise ValueError(f"expected {what or kind}, got a boolean")
        if not isinstance(value, kind):
            raise ValueError(
                f"expected {what or getattr(kind, '__name__', kind)}, "
                f"got {type(value).__name__} {value!r}"
            )
        if check is not None and not check(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return parse


def clock_time(value: Any) -> dt.time:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        raise ValueError(f"expected a time HH:MM, got {value!r}")
    try:
        return dt.time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"expected a time HH:MM, got {value!r}") from exc


STR = typed(str, what="a string")
NONEMPTY = typed(str, lambda v: bool(v.strip()), "a non-empty string")
BOOL = typed(bool, what="true or false")
PORT = typed(int, lambda v: 0 <= v <= 65535, "a port number 0..65535")
POS_INT = typed(int, lambda v: v > 0, "a positive integer")
POS_NUM = typed((int, float), lambda v: v > 0, "a positive number")
NONNEG_NUM = typed((int, float), lambda v: v >= 0, "a non-negative number")


class Problems:
    """Collects problems, each located in a file (and a line and key where known)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(
        self, path: Path, message: str, line: int | None = None, key: str | None = None
    ) -> None:
        where = str(path) + (f":{line}" if line else "")
        self.items.append(f"{where}: " + (f"{key}: " if key else "") + message)


def line_of(text: str, table: str | None, key: str) -> int | None:
    """Best-effort line number of ``key = `` inside ``[table]`` (or anywhere) of a TOML text."""
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?$", line)
        if header:
            current = header.group(1)
            if table is None and current == key:
                return number
            continue
        if (table is None or current == table) and re.match(rf"^{re.escape(key)}\s*=", line):
            return number
    return None


def parse_table(
    values: Mapping[str, Any],
    schema: Mapping[str, tuple[Parser, Any]],
    *,
    path: Path,
    text: str,
    table: str,
    problems: Problems,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in values:
        if key not in schema:
            problems.add(
                path,
                f"unknown key (known: {', '.join(sorted(schema))})",
                line_of(text, table, key),
                f"{table}.{key}",
            )
    for key, (parse, default) in schema.items():
        if key not in values:
            if default is REQUIRED:
                problems.add(
                    path, "required key is missing", line_of(text, None, table), f"{table}.{key}"
                )
            out[key] = None if default is REQUIRED else default
            if isinstance(default, str) and parse is clock_time:
                out[key] = clock_time(default)
            continue
        try:
            out[key] = parse(values[key])
        except ValueError as exc:
            problems.add(path, str(exc), line_of(text, table, key), f"{table}.{key}")
            out[key] = None
    return out
