"""The canonical outbound form of a valid DPL record: one FIXML line.

Publication writes every valid record again in this form, whatever the layout it was sent in:
namespace-free, attributes in a fixed order, the publisher's ``RptID`` and ``DlvDt``, every
other value as sent, XML-escaped so that the line parses back to the same fields.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from engine.dpl.records import ROLE_CLEARING_MEMBER, ROLE_NCO, DplFields
from engine.errors import EngineBug

# Whether a text holds a character that needs escaping: most values hold none, and testing the
# joined values of a record (or of a whole batch) once is much cheaper than escaping each value.
_NEEDS_ESCAPE = re.compile('[&<>"\t\n\r]').search


def _escape(value: str) -> str:
    """XML-escape an attribute value (or many values joined by a character that needs none):
    the same as translating each character, and one fast pass per character kind."""
    if not _NEEDS_ESCAPE(value):
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


_HEAD = (
    '<FIXML><PosRpt RptID="%s" BizDt="%s" DlvDt="%s" ReqTyp="6" ModelTyp="%s">'
    '<Pty ID="%s" R="%s"/><Pty ID="%s" R="38"/><Pty ID="%s" R="82"><Sub ID="%s" Typ="5"/></Pty>'
    '<Instrmt Sym="%s" SubTyp="%s"/><Qty Typ="DLT"'
)
_TAIL = "/></PosRpt></FIXML>"
_LONG_ONLY = _HEAD + ' Long="%s"' + _TAIL
_SHORT_ONLY = _HEAD + ' Short="%s"' + _TAIL
_LONG_AND_SHORT = _HEAD + ' Long="%s" Short="%s"' + _TAIL
_FIRM_ROLES = frozenset((ROLE_CLEARING_MEMBER, ROLE_NCO))


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
    return canonical_lines_of_values((values,), (rpt_id,), dlv_dt=dlv_dt)[:-1]


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


_FIELDS = len(DplFields._fields)
_REQUIRED = tuple(
    DplFields._fields.index(name)
    for name in (
        "biz_dt",
        "model_typ",
        "firm_id",
        "agg_unit",
        "crd",
        "firm_name",
        "symbol",
        "sub_typ",
    )
)
_ROLE, _LONG, _SHORT = (DplFields._fields.index(n) for n in ("firm_role", "long", "short"))
_UNUSABLE_MARKS = frozenset(b'&<>"\t\n\r')
_FIRM_ROLE_BYTES = frozenset(role.encode() for role in _FIRM_ROLES)


def _escape_utf8(data: bytes) -> bytes:
    """:func:`_escape` of UTF-8 text, in its bytes: the same, since no byte of a multi-byte
    UTF-8 sequence is ASCII."""
    return (
        data.replace(b"&", b"&amp;")
        .replace(b"<", b"&lt;")
        .replace(b">", b"&gt;")
        .replace(b'"', b"&quot;")
        .replace(b"\t", b"&#9;")
        .replace(b"\n", b"&#10;")
        .replace(b"\r", b"&#13;")
    )


def canonical_lines_of_joined(
    data: bytes,
    *,
    records: int,
    sep: bytes,
    absent: bytes,
    rpt_id_prefix: str,
    first_sequence: int,
    dlv_dt: dt.date | str,
) -> bytes:
    """The canonical lines of ``records`` records given as one UTF-8 text: the values of each
    record's :class:`DplFields` in field order, every value of every record joined by ``sep``
    (one ASCII character no value holds), ``absent`` (likewise) standing for None. The
    ``RptID`` of the n-th record (from 0) is ``rpt_id_prefix`` followed by
    ``first_sequence + n`` in at least nine digits. The same bytes as
    :func:`canonical_lines_of_values` for those records and RptIDs (the publication's hot path:
    no decoding, one escape pass and one formatting for the whole text). Raises EngineBug when
    a record's fields are incomplete."""
    if (
        len(sep) != 1
        or len(absent) != 1
        or sep == absent
        or sep[0] in _UNUSABLE_MARKS
        or absent[0] in _UNUSABLE_MARKS
        or sep[0] > 0x7F
        or absent[0] > 0x7F
    ):
        raise ValueError(f"unusable separator {sep!r} or absent mark {absent!r}")
    if records == 0 and not data:
        return b""
    values: list[Any] = _escape_utf8(data).split(sep)
    if len(values) != records * _FIELDS:
        raise EngineBug(f"{records} records need {records * _FIELDS} values, got {len(values)}")
    longs, shorts = values[_LONG::_FIELDS], values[_SHORT::_FIELDS]
    if (
        any(absent in values[i::_FIELDS] for i in _REQUIRED)
        or not _FIRM_ROLE_BYTES.issuperset(values[_ROLE::_FIELDS])
        or (absent in longs and any(a == b == absent for a, b in zip(longs, shorts, strict=True)))
    ):
        _raise_for_first_incomplete(data.decode("utf-8").split(sep.decode()), absent.decode())
    values[0::_FIELDS] = range(first_sequence, first_sequence + records)
    values[_LONG::_FIELDS] = [b"" if v == absent else b' Long="' + v + b'"' for v in longs]
    values[_SHORT::_FIELDS] = [b"" if v == absent else b' Short="' + v + b'"' for v in shorts]
    delivery = dlv_dt.isoformat() if isinstance(dlv_dt, dt.date) else dlv_dt
    return _joined_template(rpt_id_prefix, delivery, records) % tuple(values)


@functools.lru_cache(maxsize=4)
def _joined_template(rpt_id_prefix: str, delivery: str, records: int) -> bytes:
    """``records`` lines, each taking every value of one record: the RptID as a number, the
    sent RptID, DlvDt and ReqTyp consumed without output (``%.0s``), the quantities ready-made."""

    def literal(value: str) -> str:
        return _escape(value).replace("%", "%%")

    line = (
        f'<FIXML><PosRpt RptID="{literal(rpt_id_prefix)}%09d" BizDt="%s"%.0s'
        f' DlvDt="{literal(delivery)}" ReqTyp="6"%.0s ModelTyp="%s">'
        '<Pty ID="%s" R="%s"/><Pty ID="%s" R="38"/><Pty ID="%s" R="82"><Sub ID="%s" Typ="5"/></Pty>'
        '<Instrmt Sym="%s" SubTyp="%s"/><Qty Typ="DLT"%s%s' + _TAIL + "\n"
    )
    return (line * records).encode("utf-8")


def _raise_for_first_incomplete(values: list[str], absent: str) -> None:
    """Raise the EngineBug of :func:`canonical_lines_of_values` for the first incomplete record."""
    records = [
        DplFields._make(None if v == absent else v for v in values[i : i + _FIELDS])
        for i in range(0, len(values), _FIELDS)
    ]
    canonical_lines_of_values(records, ["" for _ in records], dlv_dt="")
    raise EngineBug("a record is incomplete")  # pragma: no cover - the call above raises
