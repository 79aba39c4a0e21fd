"""The canonical outbound form of a valid DPL record: one FIXML line.

Publication writes every valid record again in this form, whatever the layout it was sent in:
namespace-free, attributes in a fixed order, the publisher's ``RptID`` and ``DlvDt``, every
other value as sent, XML-escaped so that the line parses back to the same fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

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


_HEAD = (
    '<FIXML><PosRpt RptID="%s" BizDt="%s" DlvDt="%s" ReqTyp="6" ModelTyp="%s">'
    '<Pty ID="%s" R="%s"/><Pty ID="%s" R="38"/><Pty ID="%s" R="82"><Sub ID="%s" Typ="5"/></Pty>'
    '<Instrmt Sym="%s" SubTyp="%s"/><Qty Typ="DLT"'
)
_TAIL = "/></PosRpt></FIXML>"
_LONG_ONLY = _HEAD + ' Long="%s"' + _TAIL
_SHORT_ONLY = _HEAD + ' Short="%s"' + _TAIL
_LONG_AND_SHORT = _HEAD + ' Long="%s" Short="%s"' + _TAIL
_FIRM_ROLES = (ROLE_CLEARING_MEMBER, ROLE_NCO)


def canonical_line(fields: DplFields, *, rpt_id: str, dlv_dt: dt.date | str) -> bytes:
    """One namespace-free FIXML line (UTF-8, no terminator) for a valid record's fields.

    ``rpt_id`` and ``dlv_dt`` (the publication date) are set by the publisher; every other value
    is written as it was sent, XML-escaped. Raises EngineBug when ``fields`` are incomplete.
    """
    return canonical_line_of_values(fields, rpt_id=rpt_id, dlv_dt=dlv_dt)


def canonical_line_of_values(
    values: Sequence[str | None], *, rpt_id: str, dlv_dt: dt.date | str
) -> bytes:
    """:func:`canonical_line` for the values of :class:`DplFields` as a plain sequence in field
    order (None for absent), as a store holds them; the same bytes, without building the tuple."""
    (_, biz_dt, _, _, model_typ, firm_id, role, agg, crd, name, symbol, sub_typ, long, short) = (
        values
    )
    if (
        biz_dt is None
        or model_typ is None
        or firm_id is None
        or role not in _FIRM_ROLES
        or agg is None
        or crd is None
        or name is None
        or symbol is None
        or sub_typ is None
        or (long is None and short is None)
    ):
        raise EngineBug(f"canonical_line needs the fields of a valid record, got {values!r}")
    delivery = dlv_dt.isoformat() if isinstance(dlv_dt, dt.date) else dlv_dt
    head = (rpt_id, biz_dt, delivery, model_typ, firm_id, role, agg, crd, name, symbol, sub_typ)
    all_values: tuple[str, ...]
    if short is None:
        template, all_values = _LONG_ONLY, (*head, str(long))
    elif long is None:
        template, all_values = _SHORT_ONLY, (*head, short)
    else:
        template, all_values = _LONG_AND_SHORT, (*head, long, short)
    if _NEEDS_ESCAPE("".join(all_values)):
        all_values = tuple([_escape(v) for v in all_values])
    return (template % all_values).encode("utf-8")


def canonical_lines_of_values(
    rows: Iterable[Sequence[str | None]], rpt_ids: Iterable[str], *, dlv_dt: dt.date | str
) -> bytes:
    """The canonical lines of many records at once, each LF-terminated, as one UTF-8 text: the
    same bytes as :func:`canonical_line_of_values` for each row with its ``RptID``, joined
    (the publication's hot path: one encoding per batch, no call per record)."""
    delivery = dlv_dt.isoformat() if isinstance(dlv_dt, dt.date) else dlv_dt
    needs_escape = _NEEDS_ESCAPE
    lines: list[str] = []
    append = lines.append
    for values, rpt_id in zip(rows, rpt_ids, strict=True):
        _, biz_dt, _, _, model_typ, firm_id, role, agg, crd, name, symbol, sub_typ, long, short = (
            values
        )
        if (
            biz_dt is None
            or model_typ is None
            or firm_id is None
            or role not in _FIRM_ROLES
            or agg is None
            or crd is None
            or name is None
            or symbol is None
            or sub_typ is None
            or (long is None and short is None)
        ):
            raise EngineBug(f"canonical_line needs the fields of a valid record, got {values!r}")
        head = (rpt_id, biz_dt, delivery, model_typ, firm_id, role, agg, crd, name, symbol, sub_typ)
        all_values: tuple[str, ...]
        if short is None:
            template, all_values = _LONG_ONLY, (*head, str(long))
        elif long is None:
            template, all_values = _SHORT_ONLY, (*head, short)
        else:
            template, all_values = _LONG_AND_SHORT, (*head, long, short)
        if needs_escape("".join(all_values)):
            all_values = tuple([_escape(v) for v in all_values])
        append(template % all_values)
    append("")
    return "\n".join(lines).encode("utf-8")
