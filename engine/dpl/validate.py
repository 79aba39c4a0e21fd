"""Delta Position Limit records: validation with reasons, canonical form, aggregation order.

Theory of operation. :mod:`engine.dpl.fixml` turns a file into records (raw bytes plus a parsed
PosRpt, or a MALFORMED problem). A :class:`DplValidator` is built once per file from the reference
data, the cycle and the submitting account's entitlements (so the allowed BizDt strings and the id
sets are computed once), then checks every record against SPEC §6.3 and collects *all* reasons, each
with a :class:`Problem` naming the field and value for the on-demand report. The hot path reads
attributes as dicts and walks the few children of a PosRpt once; there is no XPath.

Decisions where the SPEC is silent (also in the README part of this flow):

* The record layout is the one of the seed's Appendix A, closed: any other element or attribute,
  anywhere inside the PosRpt, is ``LAYOUT``; so is non-blank text content, a party role other than
  4, 7, 38 or 82, a ``Sub`` outside the ``R=82`` party, a ``Sub`` whose ``Typ`` is not 5, and a
  second party of the same role (``R=4`` and ``R=7`` together count as two firm parties).
  Attributes on the ``FIXML`` envelope are ignored (real FIXML carries version attributes there).
* Values are compared as sent: ``ReqTyp`` must be exactly ``6``, ``ModelTyp`` ``0`` or ``1``,
  ``SubTyp`` one of ``ETO OTC CMB``, ``Typ`` ``DLT``, dates exactly ``YYYY-MM-DD``. A quantity is a
  non-negative decimal written ``digits[.digits]``. A value of only blanks counts as empty.
* An optional attribute present but empty (``RptID``, ``DlvDt``, ``Long`` or ``Short``) counts as
  absent; a present ``DlvDt`` must still be a valid date.
* Identifiers made only of ASCII digits compare by numeric value (``00005`` = ``5``) for clearing
  members, NCOs and entitlements; other identifiers compare exactly (case-sensitive).
* Aggregation order (SPEC §6.6) sorts firms numeric-aware: numeric ids by value, before any
  non-numeric id, which sort by code point; aggregation unit, symbol and SubTyp sort as sent, by
  code point (the same order as SQLite's BINARY collation on UTF-8 text).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from engine.calendar import BusinessCalendar
from engine.dpl.fixml import (
    DEFAULT_MAX_LINE_BYTES,
    FIXML_NS,
    FixmlRecord,
    iter_records,
    local_name,
)
from engine.errors import EngineBug

MALFORMED = "MALFORMED"
LAYOUT = "LAYOUT"
MISSING_FIELD = "MISSING_FIELD"
UNKNOWN_CM = "UNKNOWN_CM"
UNKNOWN_NCO = "UNKNOWN_NCO"
NCO_NOT_ELIGIBLE = "NCO_NOT_ELIGIBLE"
BIZDT_OUT_OF_RANGE = "BIZDT_OUT_OF_RANGE"
LONG_AND_SHORT = "LONG_AND_SHORT"
NOT_ENTITLED = "NOT_ENTITLED"

#: Every reason code, in the order of SPEC §6.3; a record's reasons are listed in this order.
REASON_CODES = (
    MALFORMED,
    LAYOUT,
    MISSING_FIELD,
    UNKNOWN_CM,
    UNKNOWN_NCO,
    NCO_NOT_ELIGIBLE,
    BIZDT_OUT_OF_RANGE,
    LONG_AND_SHORT,
    NOT_ENTITLED,
)
_REASON_ORDER = {code: i for i, code in enumerate(REASON_CODES)}

VALID = "valid"
REJECTED = "rejected"

ROLE_CLEARING_MEMBER = "4"
ROLE_NCO = "7"
ROLE_POSITION_ACCOUNT = "38"
ROLE_CRD = "82"
MODEL_TYPES = frozenset({"0", "1"})
SUB_TYPES = frozenset({"ETO", "OTC", "CMB"})

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_INTEGER = re.compile(r"[0-9]+\Z")

# The fast path: a record written exactly in the Appendix A shape (attributes in that order, no
# entity or character references, no whitespace between elements) is read with one regular
# expression instead of a walk over the element tree. It only runs on records lxml has already
# parsed, and it accepts nothing the tree walk would read differently: values exclude quotes,
# markup, references and control characters, and a required value cannot start with whitespace
# (so it is never blank). Anything else takes the tree walk, which is the reference behaviour;
# a property test checks that both agree.
_VALUE = r'([^\s"&<\x00-\x1f\ufffe\uffff][^"&<\x00-\x1f\ufffe\uffff]*)'
_OPTIONAL = r'([^"&<\x00-\x1f\ufffe\uffff]*)'
_FAST_SHAPE = re.compile(
    r"[ \t\r\n]*(?:<FIXML(?: xmlns=\"http://www\.fixprotocol\.org/FIXML-5-0-SP2\")?>)?"
    rf'<PosRpt(?: RptID="{_OPTIONAL}")? BizDt="{_VALUE}"(?: DlvDt="{_OPTIONAL}")?'
    r' ReqTyp="6" ModelTyp="([01])">'
    rf'<Pty ID="{_VALUE}" R="(4|7)"/>'
    rf'<Pty ID="{_VALUE}" R="38"/>'
    rf'<Pty ID="{_VALUE}" R="82"><Sub ID="{_VALUE}" Typ="5"/></Pty>'
    rf'<Instrmt Sym="{_VALUE}" SubTyp="(ETO|OTC|CMB)"/>'
    rf'<Qty Typ="DLT"(?: Long="{_OPTIONAL}")?(?: Short="{_OPTIONAL}")?/>'
    r"</PosRpt>(?:</FIXML>)?[ \t\r\n]*\Z"
)
_QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")


def _tags(name: str) -> frozenset[str]:
    return frozenset({name, f"{{{FIXML_NS}}}{name}"})


_PTY = _tags("Pty")
_SUB = _tags("Sub")
_INSTRMT = _tags("Instrmt")
_QTY = _tags("Qty")
_POSRPT_ATTRS = frozenset({"RptID", "BizDt", "DlvDt", "ReqTyp", "ModelTyp"})
_PTY_ATTRS = frozenset({"ID", "R"})
_SUB_ATTRS = frozenset({"ID", "Typ"})
_INSTRMT_ATTRS = frozenset({"Sym", "SubTyp"})
_QTY_ATTRS = frozenset({"Typ", "Long", "Short"})


class Problem(NamedTuple):
    """One reason a record was rejected, with the field and value it concerns."""

    code: str
    field: str
    value: str | None
    message: str

    def describe(self, line: int | None = None) -> str:
        """``LAYOUT: BizDt='2026-13-01' is not a date YYYY-MM-DD (line 7)``."""
        where = f" (line {line})" if line is not None else ""
        return f"{self.code}: {self.message}{where}"


class DplFields(NamedTuple):
    """The values of one record, as sent (None when absent). Complete for a valid record."""

    rpt_id: str | None = None
    biz_dt: str | None = None
    dlv_dt: str | None = None
    req_typ: str | None = None
    model_typ: str | None = None
    firm_id: str | None = None
    firm_role: str | None = None
    agg_unit: str | None = None
    crd: str | None = None
    firm_name: str | None = None
    symbol: str | None = None
    sub_typ: str | None = None
    long: str | None = None
    short: str | None = None


class ValidationResult(NamedTuple):
    """The outcome for one record: status, reasons in SPEC order, fields and detailed problems.

    ``fields`` is None only for a MALFORMED record (nothing could be read from it).
    """

    line: int
    raw: bytes
    status: str
    reasons: tuple[str, ...]
    fields: DplFields | None
    problems: tuple[Problem, ...]

    @property
    def is_valid(self) -> bool:
        return self.status == VALID


def id_key(value: str) -> str:
    """Comparison key of an identifier: ASCII-digit ids by numeric value, others as sent."""
    if value.isdigit() and value.isascii():
        return value.lstrip("0") or "0"
    return value


def firm_sort_text(firm_id: str) -> str:
    """A text whose code-point order is the aggregation order of firm ids.

    Numeric ids (ASCII digits) sort by value and before every other id; others sort as sent.
    ``00005`` and ``5`` give the same text: they are the same firm.
    """
    if firm_id.isdigit() and firm_id.isascii():
        digits = firm_id.lstrip("0") or "0"
        return f"0{len(digits):010d}{digits}"
    return "1" + firm_id


def aggregation_sort_key(fields: DplFields) -> tuple[str, str, str, str]:
    """(firm, aggregation unit, symbol, SubTyp): the publication order of SPEC §6.6."""
    return (
        firm_sort_text(fields.firm_id or ""),
        fields.agg_unit or "",
        fields.symbol or "",
        fields.sub_typ or "",
    )


class DplReference:
    """Reference data a DPL record is checked against.

    ``clearing_members`` maps CM number -> active; ``ncos`` maps NCO id -> eligible for DPL.
    Numeric ids are compared by value.
    """

    def __init__(self, clearing_members: Mapping[str, bool], ncos: Mapping[str, bool]) -> None:
        self._cms = {id_key(k): bool(v) for k, v in clearing_members.items()}
        self._active_cms = frozenset(k for k, v in self._cms.items() if v)
        self._ncos = {id_key(k): bool(v) for k, v in ncos.items()}

    def cm_status(self, cm_number: str) -> bool | None:
        """True active, False known but inactive, None unknown."""
        return self._cms.get(id_key(cm_number))

    def is_active_cm(self, cm_number: str) -> bool:
        return id_key(cm_number) in self._active_cms

    def nco_eligibility(self, nco_id: str) -> bool | None:
        """True eligible for DPL, False known but not eligible, None unknown."""
        return self._ncos.get(id_key(nco_id))


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


def _blank(value: str | None) -> bool:
    return not value or value.isspace()


def _is_date(value: str) -> bool:
    if _DATE.match(value) is None:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


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
        posrpt = record.posrpt
        if posrpt is None:
            problem = Problem(MALFORMED, "", None, record.problem or "not a FIXML PosRpt")
            return ValidationResult(
                record.line, record.raw, REJECTED, (MALFORMED,), None, (problem,)
            )
        problems: list[Problem] = []
        fields = _read_fast(record.raw)
        if fields is None:
            fields = self._read(posrpt, problems)
            if _may_hold_text(record.raw):
                _check_text(posrpt, problems)
        self._check_values(fields, problems)
        if not problems:
            return ValidationResult(record.line, record.raw, VALID, (), fields, ())
        codes = sorted({p.code for p in problems}, key=_REASON_ORDER.__getitem__)
        return ValidationResult(
            record.line, record.raw, REJECTED, tuple(codes), fields, tuple(problems)
        )

    # -- structure ----------------------------------------------------------------------------

    def read_fields(self, posrpt: Any) -> tuple[DplFields, list[Problem]]:
        """The tree walk alone, text checks included (the reference reading; for tests)."""
        problems: list[Problem] = []
        fields = self._read(posrpt, problems)
        _check_text(posrpt, problems)
        return fields, problems

    def _read(self, posrpt: Any, problems: list[Problem]) -> DplFields:
        """Walk the PosRpt once: collect values, report LAYOUT and MISSING_FIELD problems.

        Attributes are read with ``get`` and their count compared with the known ones found, so
        the (rare) unknown attributes are looked for only when there are some.
        """
        add = problems.append
        attrib = posrpt.attrib
        get = attrib.get
        rpt_id = get("RptID")
        biz_dt = get("BizDt")
        dlv_dt = get("DlvDt")
        req_typ = get("ReqTyp")
        model_typ = get("ModelTyp")
        known = (
            (rpt_id is not None)
            + (biz_dt is not None)
            + (dlv_dt is not None)
            + (req_typ is not None)
            + (model_typ is not None)
        )
        if len(attrib) != known:
            _unknown_attributes(posrpt, "PosRpt", _POSRPT_ATTRS, add)

        firms: list[tuple[str, str | None]] = []
        agg_units: list[str | None] = []
        crds: list[str | None] = []
        names: list[str | None] = []
        instruments: list[Any] = []
        quantities: list[Any] = []
        for child in posrpt:
            tag = child.tag
            if tag in _PTY:
                self._read_party(child, firms, agg_units, crds, names, add)
            elif tag in _INSTRMT:
                instruments.append(child)
                if len(child):
                    _no_children(child, "Instrmt", add)
            elif tag in _QTY:
                quantities.append(child)
                if len(child):
                    _no_children(child, "Qty", add)
            else:
                add(_unknown_element("PosRpt", tag))

        # PosRpt attributes
        rpt_id = rpt_id or None
        dlv_dt = dlv_dt or None
        if _blank(biz_dt):
            add(_missing("BizDt"))
            biz_dt = None
        if _blank(req_typ):
            add(_missing("ReqTyp"))
            req_typ = None
        elif req_typ != "6":
            add(Problem(LAYOUT, "ReqTyp", req_typ, f"ReqTyp={req_typ!r} must be 6"))
        if _blank(model_typ):
            add(_missing("ModelTyp"))
            model_typ = None
        elif model_typ not in MODEL_TYPES:
            add(Problem(LAYOUT, "ModelTyp", model_typ, f"ModelTyp={model_typ!r} must be 0 or 1"))
        if dlv_dt is not None and not _is_date(dlv_dt):
            add(Problem(LAYOUT, "DlvDt", dlv_dt, f"DlvDt={dlv_dt!r} is not a date YYYY-MM-DD"))

        # parties
        firm_id: str | None = None
        firm_role: str | None = None
        if not firms:
            add(_missing("Pty[R=4|7]", "no firm party (R=4 clearing member or R=7 NCO)"))
        else:
            if len(firms) > 1:
                roles = ",".join(r for r, _ in firms)
                add(Problem(LAYOUT, "Pty[R=4|7]", roles, f"{len(firms)} firm parties (R={roles})"))
            firm_role, firm_id = firms[0]
            for role, pid in firms:
                if _blank(pid):
                    add(_missing(f"Pty[R={role}]/@ID"))
            if _blank(firm_id):
                firm_id = None
        agg_unit = _single_party("38", agg_units, add)
        crd = _single_party("82", crds, add)
        firm_name: str | None = None
        if crds:
            if not names:
                add(_missing("Pty[R=82]/Sub[Typ=5]", "no Sub with Typ=5 (firm legal name)"))
            else:
                if len(names) > 1:
                    add(Problem(LAYOUT, "Pty[R=82]/Sub[Typ=5]", None, "duplicated Sub Typ=5"))
                firm_name = names[0]
                if _blank(firm_name):
                    add(_missing("Pty[R=82]/Sub[Typ=5]/@ID"))
                    firm_name = None

        # instrument
        symbol: str | None = None
        sub_typ: str | None = None
        if not instruments:
            add(_missing("Instrmt"))
        else:
            if len(instruments) > 1:
                add(Problem(LAYOUT, "Instrmt", None, f"{len(instruments)} Instrmt elements"))
            instrument = instruments[0].attrib
            symbol = instrument.get("Sym")
            sub_typ = instrument.get("SubTyp")
            if len(instrument) != ((symbol is not None) + (sub_typ is not None)):
                _unknown_attributes(instruments[0], "Instrmt", _INSTRMT_ATTRS, add)
            if _blank(symbol):
                add(_missing("Instrmt/@Sym"))
                symbol = None
            if _blank(sub_typ):
                add(_missing("Instrmt/@SubTyp"))
                sub_typ = None
            elif sub_typ not in SUB_TYPES:
                add(
                    Problem(
                        LAYOUT,
                        "Instrmt/@SubTyp",
                        sub_typ,
                        f"SubTyp={sub_typ!r} must be ETO, OTC or CMB",
                    )
                )

        # quantity
        long: str | None = None
        short: str | None = None
        if not quantities:
            add(_missing("Qty"))
        else:
            if len(quantities) > 1:
                add(Problem(LAYOUT, "Qty", None, f"{len(quantities)} Qty elements"))
            quantity = quantities[0].attrib
            typ = quantity.get("Typ")
            long = quantity.get("Long")
            short = quantity.get("Short")
            if len(quantity) != ((typ is not None) + (long is not None) + (short is not None)):
                _unknown_attributes(quantities[0], "Qty", _QTY_ATTRS, add)
            long = long or None
            short = short or None
            if _blank(typ):
                add(_missing("Qty/@Typ"))
            elif typ != "DLT":
                add(Problem(LAYOUT, "Qty/@Typ", typ, f"Qty Typ={typ!r} must be DLT"))
            if long is None and short is None:
                add(_missing("Qty/@Long|Short", "neither Long nor Short is given"))
        return DplFields(
            rpt_id,
            biz_dt,
            dlv_dt,
            req_typ,
            model_typ,
            firm_id,
            firm_role,
            agg_unit,
            crd,
            firm_name,
            symbol,
            sub_typ,
            long,
            short,
        )

    def _read_party(
        self,
        party: Any,
        firms: list[tuple[str, str | None]],
        agg_units: list[str | None],
        crds: list[str | None],
        names: list[str | None],
        add: Any,
    ) -> None:
        attrib = party.attrib
        role = attrib.get("R")
        pid = attrib.get("ID")
        if len(attrib) != ((role is not None) + (pid is not None)):
            _unknown_attributes(party, "Pty", _PTY_ATTRS, add)
        if role == ROLE_CLEARING_MEMBER or role == ROLE_NCO:
            firms.append((role, pid))
        elif role == ROLE_POSITION_ACCOUNT:
            agg_units.append(pid)
        elif role == ROLE_CRD:
            crds.append(pid)
        elif _blank(role):
            add(_missing("Pty/@R", f"a Pty without a role (ID={pid!r})"))
        else:
            add(Problem(LAYOUT, "Pty/@R", role, f"unknown party role R={role!r}"))
        if not len(party):
            return
        for sub in party:
            if sub.tag not in _SUB or role != ROLE_CRD:
                add(_unknown_element(f"Pty[R={role}]", sub.tag))
                continue
            sub_attrib = sub.attrib
            typ = sub_attrib.get("Typ")
            value = sub_attrib.get("ID")
            if len(sub_attrib) != ((typ is not None) + (value is not None)):
                _unknown_attributes(sub, "Sub", _SUB_ATTRS, add)
            if len(sub):
                _no_children(sub, "Sub", add)
            if _blank(typ):
                add(_missing("Pty[R=82]/Sub/@Typ"))
            elif typ != "5":
                add(Problem(LAYOUT, "Pty[R=82]/Sub/@Typ", typ, f"Sub Typ={typ!r} must be 5"))
            else:
                names.append(value)

    # -- values against the cycle, the reference data and the entitlements ---------------------

    def _check_values(self, fields: DplFields, problems: list[Problem]) -> None:
        add = problems.append
        biz_dt = fields.biz_dt
        if biz_dt is not None and biz_dt not in self._allowed_bizdts:
            if _is_date(biz_dt):
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


def _read_fast(raw: bytes) -> DplFields | None:
    """Fields of a record in the exact Appendix A shape, or None to take the tree walk."""
    try:
        match = _FAST_SHAPE.match(raw.decode("utf-8"))
    except UnicodeDecodeError:  # pragma: no cover - files are checked as UTF-8 before parsing
        return None
    if match is None:
        return None
    rpt_id, biz_dt, dlv_dt, model, firm, role, agg, crd, name, sym, sub, long, short = (
        match.groups()
    )
    long = long or None
    short = short or None
    if long is None and short is None:
        return None  # the tree walk reports it
    if dlv_dt and not _is_date(dlv_dt):
        return None
    return DplFields(
        rpt_id or None,
        biz_dt,
        dlv_dt or None,
        "6",
        model,
        firm,
        role,
        agg,
        crd,
        name,
        sym,
        sub,
        long,
        short,
    )


# -- problem constructors (cold path) ---------------------------------------------------------


def _may_hold_text(raw: bytes) -> bool:
    """False when ``raw`` certainly has no character data inside its elements.

    Character data can only follow a ``>``; when every ``>`` but the last is followed directly by
    ``<`` and there is no CDATA section, there is none (an attribute value holding ``>`` only
    makes this answer True, which costs a little time, never a wrong result).
    """
    return raw.count(b">") - raw.count(b"><") > 1 or b"<![CDATA[" in raw


def _check_text(posrpt: Any, problems: list[Problem]) -> None:
    """LAYOUT for any non-blank text inside the PosRpt (the envelope is fixml's business)."""
    if _has_text(posrpt.text):
        problems.append(_text_problem("PosRpt", posrpt.text))
    for element in posrpt.iterdescendants():
        name = local_name(element.tag)
        if _has_text(element.text):
            problems.append(_text_problem(name, element.text))
        if _has_text(element.tail):
            problems.append(_text_problem(f"after {name}", element.tail))


def _has_text(text: str | None) -> bool:
    return text is not None and text != "" and not text.isspace()


def _missing(field: str, message: str | None = None) -> Problem:
    return Problem(MISSING_FIELD, field, None, message or f"{field} is missing or empty")


def _unknown_attribute(element: str, name: str, value: str) -> Problem:
    shown = local_name(name) if name.startswith("{") else name
    return Problem(
        LAYOUT, f"{element}/@{shown}", value, f"unknown attribute {element} {shown}={value!r}"
    )


def _unknown_element(parent: str, tag: object) -> Problem:
    name = local_name(tag)
    return Problem(LAYOUT, f"{parent}/{name}", None, f"unknown element <{name}> in {parent}")


def _text_problem(where: str, text: str | None) -> Problem:
    shown = (text or "").strip()[:40]
    return Problem(LAYOUT, where, shown, f"unexpected text {shown!r} in {where}")


def _unknown_attributes(element: Any, name: str, known: frozenset[str], add: Any) -> None:
    for attribute, value in element.items():
        if attribute not in known:
            add(_unknown_attribute(name, attribute, value))


def _no_children(element: Any, name: str, add: Any) -> None:
    for child in element:
        add(_unknown_element(name, child.tag))


def _single_party(role: str, values: list[str | None], add: Any) -> str | None:
    if not values:
        add(_missing(f"Pty[R={role}]", f"no party with R={role}"))
        return None
    if len(values) > 1:
        add(Problem(LAYOUT, f"Pty[R={role}]", None, f"{len(values)} parties with R={role}"))
    value = values[0]
    if _blank(value):
        add(_missing(f"Pty[R={role}]/@ID"))
        return None
    return value


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
) -> Iterator[ValidationResult]:
    """Results of every record of a file given as byte chunks, in input order.

    Raises :class:`~engine.errors.UnreadableInput` when the file cannot be read at all (SPEC §6.4);
    see :mod:`engine.dpl.fixml` for when that can happen after some results were produced.
    """
    validate = DplValidator(reference, cycle, calendar, entitled_firms).validate
    for record in iter_records(chunks, max_line_bytes=max_line_bytes, name=name):
        yield validate(record)


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
    """Every result of an in-memory file and its summary; raises UnreadableInput (SPEC §6.4)."""
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


# -- canonical serialisation (SPEC §6.6, Appendix A order) ------------------------------------

_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def _attr(value: str) -> str:
    return value.translate(_ATTR_ESCAPES)


def canonical_line(fields: DplFields, *, rpt_id: str, dlv_dt: dt.date | str) -> bytes:
    """One namespace-free FIXML line (UTF-8, no terminator) for a valid record's fields.

    ``rpt_id`` and ``dlv_dt`` (the publication date) are set by the publisher; every other value
    is written as it was sent, XML-escaped. Raises EngineBug when ``fields`` are incomplete.
    """
    f = fields
    if (
        f.biz_dt is None
        or f.model_typ is None
        or f.firm_id is None
        or f.firm_role not in (ROLE_CLEARING_MEMBER, ROLE_NCO)
        or f.agg_unit is None
        or f.crd is None
        or f.firm_name is None
        or f.symbol is None
        or f.sub_typ is None
        or (f.long is None and f.short is None)
    ):
        raise EngineBug(f"canonical_line needs the fields of a valid record, got {fields!r}")
    delivery = dlv_dt.isoformat() if isinstance(dlv_dt, dt.date) else dlv_dt
    quantity = ""
    if f.long is not None:
        quantity += f' Long="{_attr(f.long)}"'
    if f.short is not None:
        quantity += f' Short="{_attr(f.short)}"'
    text = (
        f'<FIXML><PosRpt RptID="{_attr(rpt_id)}" BizDt="{_attr(f.biz_dt)}"'
        f' DlvDt="{_attr(delivery)}" ReqTyp="6" ModelTyp="{_attr(f.model_typ)}">'
        f'<Pty ID="{_attr(f.firm_id)}" R="{f.firm_role}"/>'
        f'<Pty ID="{_attr(f.agg_unit)}" R="38"/>'
        f'<Pty ID="{_attr(f.crd)}" R="82"><Sub ID="{_attr(f.firm_name)}" Typ="5"/></Pty>'
        f'<Instrmt Sym="{_attr(f.symbol)}" SubTyp="{_attr(f.sub_typ)}"/>'
        f'<Qty Typ="DLT"{quantity}/></PosRpt></FIXML>'
    )
    return text.encode("utf-8")
