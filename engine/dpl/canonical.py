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
    long, short = f.long, f.short
    values: tuple[str, ...] = (
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
        long or "",
        short or "",
    )
    if _NEEDS_ESCAPE("".join(values)):
        values = tuple([_escape(v) for v in values])
    v = values
    quantity = (f' Long="{v[10]}"' if long is not None else "") + (
        f' Short="{v[11]}"' if short is not None else ""
    )
    text = (
        f'<FIXML><PosRpt RptID="{v[0]}" BizDt="{v[1]}"'
        f' DlvDt="{v[2]}" ReqTyp="6" ModelTyp="{v[3]}">'
        f'<Pty ID="{v[4]}" R="{f.firm_role}"/>'
        f'<Pty ID="{v[5]}" R="38"/>'
        f'<Pty ID="{v[6]}" R="82"><Sub ID="{v[7]}" Typ="5"/></Pty>'
        f'<Instrmt Sym="{v[8]}" SubTyp="{v[9]}"/>'
        f'<Qty Typ="DLT"{quantity}/></PosRpt></FIXML>'
    )
    return text.encode("utf-8")
