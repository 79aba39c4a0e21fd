"""Delta Position Limit validation: every record of a file checked against every rule, with reasons.

Theory of operation. :mod:`engine.dpl.fixml` turns a file into records (raw bytes plus a parsed
PosRpt, or a MALFORMED problem). A :class:`DplValidator` is built once per file from the reference
data, the cycle and the submitting account's entitlements (so the allowed BizDt strings and the id
sets are computed once), then checks every record against all rules and collects *all* reasons, each
with a :class:`~engine.dpl.records.Problem` naming the field and value for the on-demand report.
A record is read by :mod:`engine.dpl.fastpath` when it has the exact canonical shape, otherwise by
the tree walk of :mod:`engine.dpl.treewalk` (the structure: ``LAYOUT`` and ``MISSING_FIELD``). In
line mode, :meth:`DplValidator.validate_block` accepts the good lines of a whole block from one
regular-expression pass and sends every other line down that per-line path; this
module then checks the values against the cycle, the reference data and the entitlements, and
summarises a file. The record model (reason codes, fields, results, reference data) is
:mod:`engine.dpl.records`.

Decisions (also in the README part of this flow):

* ``BizDt`` must be a date ``YYYY-MM-DD`` (else ``LAYOUT``) and one of the two allowed business
  dates of the cycle (else ``BIZDT_OUT_OF_RANGE``).
* A quantity is a non-negative decimal written ``digits[.digits]``; ``LONG_AND_SHORT`` only when
  both are well-formed and non-zero.
* Reference and entitlement problems are computed once per firm party and file, and reported for
  every record of that firm.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from engine.calendar import BusinessCalendar
from engine.dpl.fastpath import LINES_OF_BLOCK, read_fast
from engine.dpl.fixml import (
    DEFAULT_MAX_LINE_BYTES,
    FixmlRecord,
    LineBlock,
    iter_records,
    iter_records_and_blocks,
)
from engine.dpl.records import (
    BIZDT_OUT_OF_RANGE,
    LAYOUT,
    LONG_AND_SHORT,
    MALFORMED,
    NCO_NOT_ELIGIBLE,
    NOT_ENTITLED,
    REASON_CODES,
    REJECTED,
    ROLE_CLEARING_MEMBER,
    UNKNOWN_CM,
    UNKNOWN_NCO,
    VALID,
    DplFields,
    DplReference,
    Problem,
    ValidationResult,
    id_key,
    is_date,
)
from engine.dpl.treewalk import check_text, may_hold_text, read_tree

_REASON_ORDER = {code: i for i, code in enumerate(REASON_CODES)}

_QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")


class ValidationSummary:
    """Counts over the records of one file; ``by_reason`` counts every reason of every record."""

    def __init__(self) -> None:
        self.total = 0
        self.valid = 0
        self.rejected = 0
        self.by_reason: dict[str, int] = {}

    def add(self, result: ValidationResult) -> None:
        self.total += 1
        if result.status == VALID:
            self.valid += 1
            return
        self.rejected += 1
        for code in result.reasons:
            self.by_reason[code] = self.by_reason.get(code, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "valid": self.valid,
            "rejected": self.rejected,
            "by_reason": {c: self.by_reason[c] for c in REASON_CODES if c in self.by_reason},
        }


class FileValidation(NamedTuple):
    results: list[ValidationResult]
    summary: ValidationSummary


def _nonzero(quantity: str) -> bool:
    return quantity.strip("0.") != ""


class DplValidator:
    """Validates the records of one file: one cycle, one reference, one submitting account."""

    def __init__(
        self,
        reference: DplReference,
        cycle: dt.date,
        calendar: BusinessCalendar,
        entitled_firms: Iterable[str],
    ) -> None:
        self.reference = reference
        self.cycle = cycle
        previous, current = calendar.allowed_bizdts(cycle)
        self._allowed_bizdts = frozenset({previous.isoformat(), current.isoformat()})
        self._allowed_text = f"{previous.isoformat()} or {current.isoformat()}"
        self._entitled = frozenset(id_key(f) for f in entitled_firms)
        self._firm_problems: dict[tuple[str, str], tuple[Problem, ...]] = {}

    def validate(self, record: FixmlRecord) -> ValidationResult:
        fields = record.fields
        if fields is not None:  # read by the fast path: the structure is right, check the values
            problems: list[Problem] = []
            self._check_values(fields, problems)
            if not problems:
                return ValidationResult(record.line, record.raw, VALID, (), fields, ())
            return self._rejected(record, fields, problems)
        posrpt = record.posrpt
        if posrpt is None:
            problem = Problem(MALFORMED, "", None, record.problem or "not a FIXML PosRpt")
            return ValidationResult(
                record.line, record.raw, REJECTED, (MALFORMED,), None, (problem,)
            )
        problems = []
        fields = read_fast(record.raw)
        if fields is None:
            fields = read_tree(posrpt, problems)
            if may_hold_text(record.raw):
                check_text(posrpt, problems)
        self._check_values(fields, problems)
        if not problems:
            return ValidationResult(record.line, record.raw, VALID, (), fields, ())
        return self._rejected(record, fields, problems)

    def validate_block(self, block: LineBlock) -> Iterator[ValidationResult]:
        """The results of every non-blank line of a block, in order: the same as
        ``validate(block.parse(line, content))`` for each, but a line in the exact canonical shape
        with good values is accepted straight from one regular-expression pass over the block
        (the hot path of the intake); every other line takes the per-line path."""
        text = block.data.decode("utf-8")  # checked as UTF-8 while the file was read
        if text.endswith("\n"):
            text = text[:-1]  # the block's last line ending, not an empty line after it
        allowed = self._allowed_bizdts
        firm_problems = self._firm_problems
        limit = block.max_line_bytes
        parse, validate = block.parse, self.validate
        make = tuple.__new__
        number = block.first - 1
        for match in LINES_OF_BLOCK.finditer(text):
            number += 1
            groups = match.groups()
            line = groups[0]
            if line is None:  # not the exact shape: the per-line path says what it is
                content = groups[15].encode("utf-8")
                if content.endswith(b"\r"):
                    content = content[:-1]
                if content and not content.isspace():
                    yield validate(parse(number, content))
                continue
            raw = line.encode("utf-8")
            long, short = groups[13], groups[14]
            if (
                groups[2] in allowed
                and (long is None or short is None or not (_nonzero(long) and _nonzero(short)))
                and (long is not None or short is not None)
                and (groups[3] is None or is_date(groups[3]))
                and len(raw) <= limit
            ):
                key = (groups[7], groups[6])
                found = firm_problems.get(key)
                if found is None:
                    found = firm_problems[key] = self._check_firm(*key)
                if not found:
                    fields = make(DplFields, groups[1:15])
                    yield make(ValidationResult, (number, raw, VALID, (), fields, ()))
                    continue
            yield validate(parse(number, raw))

    @staticmethod
    def _rejected(
        record: FixmlRecord, fields: DplFields, problems: list[Problem]
    ) -> ValidationResult:
        codes = sorted({p.code for p in problems}, key=_REASON_ORDER.__getitem__)
        return ValidationResult(
            record.line, record.raw, REJECTED, tuple(codes), fields, tuple(problems)
        )

    # -- values against the cycle, the reference data and the entitlements ---------------------

    def _check_values(self, fields: DplFields, problems: list[Problem]) -> None:
        add = problems.append
        biz_dt = fields.biz_dt
        if biz_dt is not None and biz_dt not in self._allowed_bizdts:
            if is_date(biz_dt):
                add(
                    Problem(
                        BIZDT_OUT_OF_RANGE,
                        "BizDt",
                        biz_dt,
                        f"BizDt={biz_dt!r} is not {self._allowed_text} (cycle {self.cycle})",
                    )
                )
            else:
                add(Problem(LAYOUT, "BizDt", biz_dt, f"BizDt={biz_dt!r} is not a date YYYY-MM-DD"))
        long, short = fields.long, fields.short
        long_ok = long is None or _QUANTITY.match(long) is not None
        short_ok = short is None or _QUANTITY.match(short) is not None
        if not long_ok:
            add(_bad_quantity("Long", long))
        if not short_ok:
            add(_bad_quantity("Short", short))
        if (
            long_ok
            and short_ok
            and long is not None
            and short is not None
            and _nonzero(long)
            and _nonzero(short)
        ):
            add(
                Problem(
                    LONG_AND_SHORT,
                    "Qty",
                    f"Long={long} Short={short}",
                    f"both Long={long!r} and Short={short!r} are non-zero",
                )
            )
        firm_id = fields.firm_id
        if firm_id is None:
            return
        key = (fields.firm_role or "", firm_id)
        found = self._firm_problems.get(key)
        if found is None:
            found = self._firm_problems[key] = self._check_firm(key[0], firm_id)
        if found:
            problems.extend(found)

    def _check_firm(self, role: str, firm_id: str) -> tuple[Problem, ...]:
        """Reference and entitlement problems of one firm party (cached per file)."""
        found: list[Problem] = []
        add = found.append
        if role == ROLE_CLEARING_MEMBER:
            if not self.reference.is_active_cm(firm_id):
                known = self.reference.cm_status(firm_id) is not None
                what = "an inactive clearing member" if known else "not a clearing member"
                add(Problem(UNKNOWN_CM, "Pty[R=4]/@ID", firm_id, f"ID={firm_id!r} is {what}"))
        else:
            eligible = self.reference.nco_eligibility(firm_id)
            if eligible is None:
                add(
                    Problem(
                        UNKNOWN_NCO,
                        "Pty[R=7]/@ID",
                        firm_id,
                        f"ID={firm_id!r} is not a known non-clearing firm",
                    )
                )
            elif not eligible:
                add(
                    Problem(
                        NCO_NOT_ELIGIBLE,
                        "Pty[R=7]/@ID",
                        firm_id,
                        f"NCO {firm_id!r} is not eligible for delta position limit submission",
                    )
                )
        if id_key(firm_id) not in self._entitled:
            add(
                Problem(
                    NOT_ENTITLED,
                    f"Pty[R={role}]/@ID",
                    firm_id,
                    f"the submitting account may not submit for firm {firm_id!r}",
                )
            )
        return tuple(found)


# -- problem constructors (cold path) ---------------------------------------------------------


def _bad_quantity(name: str, value: str | None) -> Problem:
    return Problem(LAYOUT, f"Qty/@{name}", value, f"{name}={value!r} is not a non-negative decimal")


# -- files --------------------------------------------------------------------------------------


def validate_record(
    record: FixmlRecord,
    reference: DplReference,
    cycle: dt.date,
    calendar: BusinessCalendar,
    entitled_firms: Iterable[str],
) -> ValidationResult:
    """Validate one record (convenience; build a :class:`DplValidator` for many records)."""
    return DplValidator(reference, cycle, calendar, entitled_firms).validate(record)


def iter_validate(
    chunks: Iterable[bytes],
    *,
    reference: DplReference,
    cycle: dt.date,
    calendar: BusinessCalendar,
    entitled_firms: Iterable[str],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    name: str | None = None,
    fast_path: bool = True,
) -> Iterator[ValidationResult]:
    """Results of every record of a file given as byte chunks, in input order.

    ``fast_path=False`` parses every record with lxml and walks its tree: the reference behaviour
    the fast paths are proven against (the same results, only slower).

    Raises :class:`~engine.errors.UnreadableInput` when the file cannot be read at all;
    see :mod:`engine.dpl.fixml` for when that can happen after some results were produced.
    """
    validator = DplValidator(reference, cycle, calendar, entitled_firms)
    validate = validator.validate
    if not fast_path:
        records = iter_records(chunks, max_line_bytes=max_line_bytes, name=name, fast_path=False)
        for record in records:
            yield validate(record)
        return
    validate_block = validator.validate_block
    for item in iter_records_and_blocks(chunks, max_line_bytes=max_line_bytes, name=name):
        if isinstance(item, LineBlock):
            yield from validate_block(item)
        else:
            yield validate(item)


def validate_file(
    data: bytes,
    *,
    reference: DplReference,
    cycle: dt.date,
    calendar: BusinessCalendar,
    entitled_firms: Iterable[str],
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    name: str | None = None,
) -> FileValidation:
    """Every result of an in-memory file and its summary; raises UnreadableInput."""
    summary = ValidationSummary()
    results: list[ValidationResult] = []
    for result in iter_validate(
        (data,),
        reference=reference,
        cycle=cycle,
        calendar=calendar,
        entitled_firms=entitled_firms,
        max_line_bytes=max_line_bytes,
        name=name,
    ):
        summary.add(result)
        results.append(result)
    return FileValidation(results, summary)
