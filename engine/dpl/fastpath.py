"""The fast path of DPL validation: a record in the exact Appendix A shape read with one regex.

A record written exactly in the Appendix A shape (attributes in that order, no entity or character
references, no whitespace between elements) is read with one regular expression instead of a walk
over the element tree (:mod:`engine.dpl.treewalk`). It only runs on records lxml has already
parsed, and it accepts nothing the tree walk would read differently: values exclude quotes, markup,
references and control characters, and a required value cannot start with whitespace (so it is
never blank). Anything else takes the tree walk, which is the reference behaviour; a property test
checks that both agree.
"""

from __future__ import annotations

import re

from engine.dpl.records import DplFields, is_date

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


def read_fast(raw: bytes) -> DplFields | None:
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
        long,
        short,
    )
