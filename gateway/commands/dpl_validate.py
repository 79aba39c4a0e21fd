"""Verb ``dpl validate``: check one delta position limit file offline, one JSON line per record.

Also owns the ``dpl`` verb group: :func:`dpl_group` creates it on first use and hands the same
sub-command registry to every module that adds a ``dpl`` action (``publish`` lives elsewhere).

Output (stdout): ``{"line": N, "status": "valid"|"rejected", "reasons": [...]}`` per record in input
order (``--details`` adds each reason's message), then ``{"summary": {...}}``. A file that cannot be
read at all prints ``{"error": {...}}`` instead and exits 65; a readable file exits 0 even when
records were rejected.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias, cast

from engine.dpl.fixml import iter_records
from engine.dpl.records import ValidationResult
from engine.dpl.validate import DplValidator, ValidationSummary
from engine.errors import UnreadableInput
from gateway.cli import EX_CONFIG, EX_DATAERR, EX_OK, EX_USAGE
from gateway.commands.common import input_exit_code, load_calendar_or_report
from gateway.reference import dpl_reference, firm_entitlements

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1 << 20
HELD_OUTPUT_BYTES = 8 << 20

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def dpl_group(subparsers: SubParsers) -> SubParsers:
    """The sub-command registry of ``posgate dpl``, created on the first call."""
    parser = subparsers.choices.get("dpl")
    if parser is None:
        parser = subparsers.add_parser(
            "dpl",
            help="delta position limit files: validate, publish",
            description="Delta position limit (DPL) files.",
        )
        actions = parser.add_subparsers(dest="dpl_action", metavar="ACTION")
        parser.set_defaults(func=_group_usage(parser))
        return actions
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return cast(SubParsers, action)
    raise RuntimeError("the 'dpl' verb exists without sub-commands")  # pragma: no cover


def _group_usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def usage(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EX_USAGE

    return usage


def register(subparsers: SubParsers) -> None:
    validate = dpl_group(subparsers).add_parser(
        "validate",
        help="validate one DPL file offline; one JSON line per record",
        description="Validate a delta position limit file as if the firm had uploaded it.",
    )
    validate.add_argument("file", metavar="FILE", help="the FIXML file")
    validate.add_argument(
        "--firm", required=True, metavar="ID", help="the submitting firm (its account's rights)"
    )
    validate.add_argument(
        "--received-at",
        metavar="ISO8601",
        help="instant of receipt with its offset, e.g. 2026-03-09T18:30:00-05:00 (default: now)",
    )
    validate.add_argument(
        "--details", action="store_true", help="add each reason's message to rejected records"
    )
    validate.set_defaults(func=run_validate)


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 instant with an offset (``Z`` allowed); ValueError when naive or malformed."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset (add e.g. Z or -06:00)")
    return value


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")


def _record_line(result: ValidationResult, details: bool) -> dict[str, Any]:
    line: dict[str, Any] = {
        "line": result.line,
        "status": result.status,
        "reasons": list(result.reasons),
    }
    if details and result.problems:
        line["details"] = [
            {"reason": p.code, "field": p.field, "value": p.value, "message": p.message}
            for p in result.problems
        ]
    return line


def run_validate(args: argparse.Namespace) -> int:
    try:
        received_at = (
            parse_instant(args.received_at) if args.received_at else dt.datetime.now(dt.UTC)
        )
    except ValueError as exc:
        print(f"posgate dpl validate: --received-at: {exc}", file=sys.stderr)
        return EX_USAGE
    loaded = load_calendar_or_report(args.config)
    if loaded is None:
        return EX_CONFIG
    config, calendar = loaded

    path = Path(args.file)
    try:
        source = open(path, "rb")  # noqa: SIM115 - closed by the ExitStack below
    except OSError as exc:
        print(f"posgate dpl validate: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return input_exit_code(exc, EX_USAGE)

    cycle = calendar.cycle_of(received_at)
    validator = DplValidator(
        dpl_reference(config.reference),
        cycle,
        calendar,
        firm_entitlements(config.accounts, args.firm),
    )
    summary = ValidationSummary()
    with contextlib.ExitStack() as stack:
        stack.enter_context(source)
        # The file is read in chunks, so memory does not grow with it; a whole-file failure can
        # show after some records, so the record lines wait (on disk past a few MiB) until the
        # file has been read to its end: an unreadable file prints only its error.
        held = stack.enter_context(
            tempfile.SpooledTemporaryFile(max_size=HELD_OUTPUT_BYTES, mode="w+", encoding="utf-8")
        )
        try:
            records = iter_records(
                _chunks(source), max_line_bytes=config.dpl.max_line_bytes, name=str(path)
            )
            for record in records:
                result = validator.validate(record)
                summary.add(result)
                held.write(json.dumps(_record_line(result, args.details)) + "\n")
        except OSError as exc:
            print(f"posgate dpl validate: cannot read {path}: {exc.strerror}", file=sys.stderr)
            return input_exit_code(exc, EX_USAGE)
        except UnreadableInput as exc:
            return _unreadable(path, exc)
        held.seek(0)
        shutil.copyfileobj(held, sys.stdout)
    previous, current = calendar.allowed_bizdts(cycle)
    _emit(
        {
            "summary": {
                "file": str(path),
                "firm": args.firm,
                "received_at": received_at.isoformat(),
                "cycle": cycle.isoformat(),
                "allowed_bizdt": [previous.isoformat(), current.isoformat()],
                **summary.as_dict(),
            }
        }
    )
    return EX_OK


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(READ_CHUNK_BYTES):
        yield chunk


def _unreadable(path: Path, exc: UnreadableInput) -> int:
    _emit(
        {
            "error": {
                "file": str(path),
                "reason": exc.reason,
                "message": exc.message,
                "line": exc.location.line,
            }
        }
    )
    print(f"posgate dpl validate: {path}: unreadable: {exc}", file=sys.stderr)
    return EX_DATAERR
