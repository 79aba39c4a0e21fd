"""The canonical outbound form of a valid DPL record: one FIXML line (SPEC §6.6, Appendix A).

Publication writes every valid record again in this form, whatever the layout it was sent in:
namespace-free, attributes in Appendix A order, the publisher's ``RptID`` and ``DlvDt``, every
other value as sent, XML-escaped so that the line parses back to the same fields.
"""

from __future__ import annotations

import datetime as dt
import re

from engine.dpl.records import ROLE_CLEARING_MEMBER, ROLE_NCO, DplFields
from engine.errors import EngineBug

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


# Whether a text holds a character that needs escaping: most values hold none, and testing the
# joined values of a record once is much cheaper than translating each of them.
_NEEDS_ESCAPE = re.compile('[&<>"\t\n\r]').search


def _escape(value: str) -> str:
    return value.translate(_ATTR_ESCAPES)


def _same(value: str) -> str:
    return value


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
    values = (
        rpt_id,
        f.biz_dt,
        delivery,
        f.model_typ,
        f.firm_id,
        f.agg_unit,
        f.crd,
        f.firm_name,
        f.symbol,
        f.sub_typ,
        f.long or "",
        f.short or "",
    )
    esc = _escape if _NEEDS_ESCAPE("".join(values)) else _same
    quantity = ""
    if f.long is not None:
        quantity += f' Long="{esc(f.long)}"'
    if f.short is not None:
        quantity += f' Short="{esc(f.short)}"'
    text = (
        f'<FIXML><PosRpt RptID="{esc(rpt_id)}" BizDt="{esc(f.biz_dt)}"'
        f' DlvDt="{esc(delivery)}" ReqTyp="6" ModelTyp="{esc(f.model_typ)}">'
        f'<Pty ID="{esc(f.firm_id)}" R="{f.firm_role}"/>'
        f'<Pty ID="{esc(f.agg_unit)}" R="38"/>'
        f'<Pty ID="{esc(f.crd)}" R="82"><Sub ID="{esc(f.firm_name)}" Typ="5"/></Pty>'
        f'<Instrmt Sym="{esc(f.symbol)}" SubTyp="{esc(f.sub_typ)}"/>'
        f'<Qty Typ="DLT"{quantity}/></PosRpt></FIXML>'
    )
    return text.encode("utf-8")
