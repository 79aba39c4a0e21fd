"""The canonical outbound line of a valid DPL record."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.dpl.canonical import (
    canonical_line,
    canonical_line_of_values,
    canonical_lines_of_joined,
    canonical_lines_of_values,
)
from engine.dpl.fixml import parse_bytes
from engine.dpl.records import DplFields
from engine.errors import EngineBug

from .support import CM_LINE, validator


def test_canonical_line_of_the_readme_sample() -> None:
    (record,) = parse_bytes(CM_LINE)
    fields = validator(cycle=dt.date(2007, 7, 19)).validate(record).fields
    assert fields is not None
    assert canonical_line(fields, rpt_id="143771378", dlv_dt=dt.date(2007, 7, 20)) == (
        b'<FIXML><PosRpt RptID="143771378" BizDt="2007-07-19" DlvDt="2007-07-20" ReqTyp="6"'
        b' ModelTyp="1"><Pty ID="00005" R="4"/><Pty ID="123456789" R="38"/>'
        b'<Pty ID="123456" R="82"><Sub ID="Goldman Sachs" Typ="5"/></Pty>'
        b'<Instrmt Sym="GOOG" SubTyp="ETO"/><Qty Typ="DLT" Long="100"/></PosRpt></FIXML>'
    )


def test_canonical_line_escapes_and_keeps_quantities_as_given() -> None:
    fields = DplFields(
        biz_dt="2026-03-09",
        req_typ="6",
        model_typ="0",
        firm_id="IAN",
        firm_role="7",
        agg_unit='A&B "1" <x>',
        crd="1",
        firm_name="Tab\there\nnewline",
        symbol="É",
        sub_typ="CMB",
        long="0.000",
        short="12.50",
    )
    out = canonical_line(fields, rpt_id="R<1>", dlv_dt="2026-03-10")
    assert b'RptID="R&lt;1&gt;"' in out
    assert b'ID="A&amp;B &quot;1&quot; &lt;x&gt;" R="38"' in out
    assert b'ID="Tab&#9;here&#10;newline"' in out
    assert b'<Qty Typ="DLT" Long="0.000" Short="12.50"/>' in out
    assert "É".encode() in out and b"\n" not in out
    (record,) = parse_bytes(out)
    again = validator(entitled=("IAN",)).validate(record)
    assert again.fields == fields._replace(rpt_id="R<1>", dlv_dt="2026-03-10")


def test_canonical_line_refuses_incomplete_fields() -> None:
    with pytest.raises(EngineBug):
        canonical_line(DplFields(biz_dt="2026-03-09"), rpt_id="1", dlv_dt="2026-03-10")


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
_some = (
    st.sampled_from(["Goldman Sachs", "Müller & Co <Ltd>", 'a"b', "tab\there", "x\r\ny", "5%s %d"])
    | _text
)
_valid_fields = st.builds(
    DplFields,
    rpt_id=st.none() | _some,
    biz_dt=st.just("2026-03-09"),
    dlv_dt=st.none() | _some,
    req_typ=st.just("6"),
    model_typ=st.sampled_from(["0", "1"]),
    firm_id=_some,
    firm_role=st.sampled_from(["4", "7"]),
    agg_unit=_some,
    crd=_some,
    firm_name=_some,
    symbol=_some,
    sub_typ=st.sampled_from(["ETO", "OTC", "CMB"]),
    long=st.none() | st.sampled_from(["100", "0", "1.5"]),
    short=st.none() | st.sampled_from(["7", "0"]),
).filter(lambda f: f.long is not None or f.short is not None)


@settings(max_examples=300, deadline=None)
@given(st.lists(_valid_fields, max_size=20))
def test_many_lines_at_once_are_the_lines_one_by_one(records: list[DplFields]) -> None:
    ids = [f"20260309{n:09d}" for n in range(1, len(records) + 1)]
    one_by_one = b"".join(
        canonical_line_of_values(f, rpt_id=i, dlv_dt="2026-03-10") + b"\n"
        for f, i in zip(records, ids, strict=True)
    )
    assert canonical_lines_of_values(records, ids, dlv_dt=dt.date(2026, 3, 10)) == one_by_one


def test_many_lines_at_once_refuse_incomplete_fields() -> None:
    good = DplFields(None, "2026-03-09", None, "6", "1", "5", "4", "A", "1", "N", "S", "ETO", "1")
    with pytest.raises(EngineBug):
        canonical_lines_of_values([good, good._replace(symbol=None)], ["1", "2"], dlv_dt="x")


def _joined(records: list[DplFields]) -> bytes:
    return "\x1f".join("\x02" if v is None else v for f in records for v in f).encode()


def _no_marks(f: DplFields) -> bool:
    return not any(v is not None and ("\x1f" in v or "\x02" in v) for v in f)


@settings(max_examples=100, deadline=None)
@given(st.lists(_valid_fields.filter(_no_marks), max_size=20), st.integers(1, 2_000_000_000))
def test_lines_of_a_joined_text_are_the_lines_of_the_records(
    records: list[DplFields], first: int
) -> None:
    ids = [f"20260309{n:09d}" for n in range(first, first + len(records))]
    expected = canonical_lines_of_values(records, ids, dlv_dt="2026-03-10")
    assert expected == canonical_lines_of_joined(
        _joined(records),
        records=len(records),
        sep=b"\x1f",
        absent=b"\x02",
        rpt_id_prefix="20260309",
        first_sequence=first,
        dlv_dt=dt.date(2026, 3, 10),
    )


def test_a_joined_text_with_an_incomplete_record_or_a_wrong_count_is_refused() -> None:
    good = DplFields(None, "2026-03-09", None, "6", "1", "5", "4", "A%s", "1", "N", "S", "ETO", "1")
    bad_ones = [
        good._replace(symbol=None),
        good._replace(firm_role="9"),
        good._replace(long=None),
    ]
    options = dict(sep=b"\x1f", absent=b"\x02", rpt_id_prefix="P", first_sequence=1, dlv_dt="x")
    for bad in bad_ones:
        with pytest.raises(EngineBug) as joined:
            canonical_lines_of_joined(_joined([good, bad]), records=2, **options)  # type: ignore[arg-type]
        with pytest.raises(EngineBug) as one_by_one:
            canonical_lines_of_values([good, bad], ["1", "2"], dlv_dt="x")
        assert str(joined.value) == str(one_by_one.value)
    with pytest.raises(EngineBug):
        canonical_lines_of_joined(_joined([good, good]), records=3, **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        canonical_lines_of_joined(_joined([good]), records=1, **{**options, "sep": b"&"})  # type: ignore[arg-type]
