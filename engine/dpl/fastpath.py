"""The fast path of DPL reading: a record in the exact canonical shape read with one regex.

A record written exactly in the canonical shape (attributes in that order, no entity or character
references, no whitespace between elements) is read with one regular expression instead of a
parse and a walk over the element tree (:mod:`engine.dpl.treewalk`). Anything else takes the tree
walk, which is the reference behaviour; property tests check that both agree on every input.

Theory of operation. The shape admits only text that is well-formed XML with one reading: values
exclude quotes, markup, references and the characters XML 1.0 forbids (C0 controls, U+FFFE,
U+FFFF; surrogates cannot survive the UTF-8 check), so lxml would return every value unchanged
(attribute-value normalisation only touches tab, CR and LF, which are excluded too). A required
value cannot start with whitespace (``str.isspace``, the same set as ``\\s``), so it is never
blank. Two entry points:

* :func:`read_line` reads a whole physical line: the FIXML envelope (optionally in the FIXML 5.0
  SP2 namespace) around one PosRpt. A match proves the line is a well-formed FIXML PosRpt, so line
  mode skips the lxml parse for it (:mod:`engine.dpl.fixml`).
* :func:`read_fast` reads a record lxml has already parsed (a Batch child, or any line), envelope
  optional.
"""

from __future__ import annotations

import re

from engine.dpl.records import DplFields, is_date

_VALUE = r'([^\s"&<\x00-\x1f\ufffe\uffff][^"&<\x00-\x1f\ufffe\uffff]*)'
_OPTIONAL = r'([^"&<\x00-\x1f\ufffe\uffff]*)'
_POSRPT = (
    rf'<PosRpt(?: RptID="{_OPTIONAL}")? BizDt="{_VALUE}"(?: DlvDt="{_OPTIONAL}")?'
    r' ReqTyp="6" ModelTyp="([01])">'
    rf'<Pty ID="{_VALUE}" R="(4|7)"/>'
    rf'<Pty ID="{_VALUE}" R="38"/>'
    rf'<Pty ID="{_VALUE}" R="82"><Sub ID="{_VALUE}" Typ="5"/></Pty>'
    rf'<Instrmt Sym="{_VALUE}" SubTyp="(ETO|OTC|CMB)"/>'
    rf'<Qty Typ="DLT"(?: Long="{_OPTIONAL}")?(?: Short="{_OPTIONAL}")?/>'
    r"</PosRpt>"
)
_OPEN = r'<FIXML(?: xmlns="http://www\.fixprotocol\.org/FIXML-5-0-SP2")?>'
_BLANKS = r"[ \t\r\n]*"
_FAST_SHAPE = re.compile(rf"{_BLANKS}(?:{_OPEN})?{_POSRPT}(?:</FIXML>)?{_BLANKS}\Z")
# XML allows blanks before and after the root element when there is no declaration.
_LINE_SHAPE = re.compile(rf"{_BLANKS}{_OPEN}{_POSRPT}</FIXML>{_BLANKS}\Z")


# Many lines at a time (``LINES_OF_BLOCK``): every line of a block of complete lines is one match.
# A line in the exact canonical shape with well-formed decimal quantities fills the groups 1-15:
# the line without the CR of a CRLF ending, then the 14 fields of ``DplFields`` in their order
# (ReqTyp captured as "6"; absent or empty optional values are None). Every other line fills only
# group 16: the whole line, CR included. Used by :meth:`engine.dpl.validate.DplValidator.\
# validate_block`, which sends every line it does not accept on the spot down the per-line path.
_NONEMPTY = r'([^"&<\x00-\x1f\ufffe\uffff]+)?'
_DECIMAL = r"([0-9]+(?:\.[0-9]+)?)"
_POSRPT_OF_BLOCK = (
    rf'<PosRpt(?: RptID="{_NONEMPTY}")? BizDt="{_VALUE}"(?: DlvDt="{_NONEMPTY}")?'
    r' ReqTyp="(6)" ModelTyp="([01])">'
    rf'<Pty ID="{_VALUE}" R="(4|7)"/>'
    rf'<Pty ID="{_VALUE}" R="38"/>'
    rf'<Pty ID="{_VALUE}" R="82"><Sub ID="{_VALUE}" Typ="5"/></Pty>'
    rf'<Instrmt Sym="{_VALUE}" SubTyp="(ETO|OTC|CMB)"/>'
    rf'<Qty Typ="DLT"(?: Long="{_DECIMAL}")?(?: Short="{_DECIMAL}")?/>'
    r"</PosRpt>"
)
LINES_OF_BLOCK = re.compile(
    rf"^(?:([ \t\r]*{_OPEN}{_POSRPT_OF_BLOCK}</FIXML>[ \t\r]*?)\r?|(.*))$", re.MULTILINE
)


def read_fast(raw: bytes) -> DplFields | None:
    """Fields of a parsed record in the exact canonical shape, or None to take the tree walk."""
    try:
        match = _FAST_SHAPE.match(raw.decode("utf-8"))
    except UnicodeDecodeError:  # pragma: no cover - files are checked as UTF-8 before parsing
        return None
    return None if match is None else _fields(match.groups())


def read_line(content: bytes) -> DplFields | None:
    """Fields of a whole line that is a FIXML PosRpt in the exact canonical shape, or None.

    A result proves the line well-formed, with exactly the fields lxml and the tree walk would
    read and no problem; None says nothing (the line takes the parse and the tree walk). The
    caller has checked the line is UTF-8 and within the line length limit.
    """
    try:
        match = _LINE_SHAPE.match(content.decode("utf-8"))
    except UnicodeDecodeError:  # pragma: no cover - files are checked as UTF-8 before parsing
        return None
    return None if match is None else _fields(match.groups())


def _fields(groups: tuple[str, ...]) -> DplFields | None:
    rpt_id, biz_dt, dlv_dt, model, firm, role, agg, crd, name, sym, sub, long, short = groups
    if not long and not short:
        return None  # the tree walk reports it
    if dlv_dt and not is_date(dlv_dt):
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
        long or None,
        short or None,
    )
