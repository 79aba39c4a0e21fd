"""Structured logging to stderr: one line per event, key=value or JSON, no secrets.

Theory of operation. Call sites write ordinary %-style messages; a placeholder written as
``key=%s`` (or ``%d``, ``%r``, ``%.1f`` …) in the constant template becomes a real field of the
line, with the argument as its value, and leaves the event text (``msg``). Fields may also come
as ``extra={"fields": {...}}``. Every value, the message included, is escaped by the formatter:
in key=value lines a value with a space, quote, ``=``, backslash or control character is quoted
and its quotes, backslashes and control characters escaped, so no value (an uploaded file name, a
login) can end its field early and forge another; in JSON every field is a JSON string or number.

Under systemd (``JOURNAL_STREAM`` names our stderr) each line starts with the syslog priority
``<N>`` so that journald stores it at the right level and ``journalctl -p warning`` finds it.
pika's own logging is kept out: the AMQP connection loop logs one line per state change itself.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

RESERVED = frozenset({"ts", "level", "logger", "msg", "exc"})
_FIELD = re.compile(r"(?:(?<=\s)|^)([a-z][a-z0-9_]*)=(%(?:\.\d+)?[sdrfi])(?=[\s,;:)]|$)")
_SPEC = re.compile(r"%(?:%|(?:\.\d+)?[a-z])")
_KEY = re.compile(r"^[a-z][a-z0-9_.]*$")
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+\-]+$")
_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029]')  # what quote_value escapes
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def split_fields(record: logging.LogRecord) -> tuple[str, dict[str, object]]:
    """The event text and the fields of ``record`` (template ``key=%s`` fields, then extras)."""
    fields: dict[str, object] = {}
    template, args = record.msg, record.args
    text: str
    if isinstance(template, str) and isinstance(args, tuple) and args:
        text = _split_template(template, args, fields)
    else:
        text = record.getMessage()
    extra = getattr(record, "fields", None)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            name = str(key)
            if not _KEY.match(name) or name in RESERVED:
                name = "field_" + re.sub(r"[^a-z0-9_]", "_", name.lower())
            fields[name] = value
    return text, fields


@dataclass(frozen=True)
class _Plan:
    """How the arguments of one template become the event text and the fields."""

    placeholders: int  # arguments the template takes
    fields: tuple[tuple[int, str, str], ...]  # (argument index, key, placeholder) of each field
    kept: tuple[int, ...]  # the indexes of the arguments left in the text
    text: str  # the event text with the placeholders of the kept arguments


@functools.lru_cache(maxsize=2048)
def _plan(template: str) -> _Plan:
    """The plan of a template, worked out once per template (they are constant strings)."""
    index_at: dict[int, int] = {}  # placeholder offset -> argument index
    for spec in _SPEC.finditer(template):
        if spec.group() != "%%":
            index_at[spec.start()] = len(index_at)
    fields: list[tuple[int, str, str]] = []
    keys: set[str] = set()
    kept_parts: list[str] = []
    kept: list[int] = []
    pos = 0
    for match in _FIELD.finditer(template):
        key = match.group(1)
        start = match.start(2)
        if key in RESERVED or key in keys or start not in index_at:
            continue
        segment = template[pos : match.start()]
        kept_parts.append(segment)
        kept.extend(index_at[s.start() + pos] for s in _SPEC.finditer(segment) if s.group() != "%%")
        fields.append((index_at[start], key, match.group(2)))
        keys.add(key)
        pos = match.end()
    segment = template[pos:]
    kept_parts.append(segment)
    kept.extend(index_at[s.start() + pos] for s in _SPEC.finditer(segment) if s.group() != "%%")
    text = re.sub(r"\s+", " ", "".join(kept_parts)).strip().rstrip(":,;").rstrip()
    return _Plan(len(index_at), tuple(fields), tuple(kept), text)


def _split_template(template: str, args: tuple[Any, ...], fields: dict[str, object]) -> str:
    plan = _plan(template)
    if plan.placeholders != len(args):
        return template % args if args else template
    for index, key, spec in plan.fields:
        value = args[index]
        fields[key] = value if spec in ("%s", "%d", "%i") else spec % (value,)
    try:
        return plan.text % tuple(args[i] for i in plan.kept)
    except (TypeError, ValueError):
        return template % args


def quote_value(value: object) -> str:
    """A key=value value that cannot be mistaken for more than one field."""
    text = value if isinstance(value, str) else str(value)
    if text and _BARE.match(text):
        return text
    if not _ESCAPED.search(text):
        return '"' + text + '"'
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _timestamp(record: logging.LogRecord) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{ts}.{int(record.msecs):03d}Z"


def _json_value(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple | dict):
        return json.loads(json.dumps(value, default=str))
    return str(value)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text, fields = split_fields(record)
        parts = [
            f"ts={_timestamp(record)}",
            f"level={record.levelname}",
            f"logger={record.name}",
            f"msg={quote_value(text)}",
        ]
        parts.extend(f"{key}={quote_value(value)}" for key, value in fields.items())
        if record.exc_info:
            parts.append(f"exc={quote_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text, fields = split_fields(record)
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": text,
        }
        entry.update((key, _json_value(value)) for key, value in fields.items())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class JournalPriorityFormatter(logging.Formatter):
    """Prefixes each line with ``<N>``, the syslog priority journald reads from a stream."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno)
        if priority is None:
            priority = 2 if record.levelno > logging.ERROR else 7
            for level, value in sorted(_PRIORITY.items()):
                if record.levelno <= level:
                    priority = value
                    break
        return f"<{priority}>" + self.inner.format(record)


def stream_is_journal(stream: TextIO, journal_stream: str | None) -> bool:
    """``JOURNAL_STREAM`` (``device:inode``) names this very stream: systemd connected it."""
    if not journal_stream:
        return False
    try:
        device, inode = (int(part) for part in journal_stream.split(":", 1))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def build_formatter(fmt: str, stream: TextIO, journal_stream: str | None) -> logging.Formatter:
    inner: logging.Formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    if stream_is_journal(stream, journal_stream):
        return JournalPriorityFormatter(inner)
    return inner


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(build_formatter(fmt, sys.stderr, os.environ.get("JOURNAL_STREAM")))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The lines never show where they were written nor the process or thread: skip finding them
    # for every record (the logging HOWTO's "Optimization"; a line costs half as much).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    # pika logs several ERROR lines for each failed connection attempt; the connection loop
    # already logs each state change once.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)


class PlainFormatter(logging.Formatter):
    """For a person at a terminal: ``posgate: message`` (``posgate: warning: message``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage().replace("\n", " ")
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text += ": " + self.formatException(record.exc_info).splitlines()[-1]
        return f"posgate: {text}"


def configure_cli_logging() -> None:
    """CLI verbs other than the daemons: plain lines on stderr, never mixed into stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("paramiko", "apscheduler", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
