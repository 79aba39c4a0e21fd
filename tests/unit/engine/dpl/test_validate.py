"""DPL validation rules, details, summaries, canonical form, aggregation order (SPEC §6.3, §6.6)."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.dpl.fixml import parse_bytes
from engine.dpl.validate import (
    REASON_CODES,
    DplFields,
    DplReference,
    ValidationSummary,
    _read_fast,
    aggregation_sort_key,
    canonical_line,
    firm_sort_text,
    id_key,
    validate_file,
    validate_record,
)
from engine.errors import EngineBug, UnreadableInput

from .support import CALENDAR, CYCLE, REFERENCE, line, posrpt, validator

SEED_CM = (
    b'<FIXML><PosRpt BizDt="2007-07-19" DlvDt="2007-07-20" ReqTyp="6" ModelTyp="1">'
    b'<Pty ID="00005" R="4"/><Pty ID="123456789" R="38"/><Pty ID="123456" R="82">'
    b'<Sub ID="Goldman Sachs" Typ="5"/></Pty><Instrmt Sym="GOOG" SubTyp="ETO"/>'
    b'<Qty Typ="DLT" Long="100"/></PosRpt></FIXML>'
)


def check(data: bytes, entitled: tuple[str, ...] = ("00005",)) -> list[tuple[str, ...]]:
    v = validator(entitled)
    return [v.validate(r).reasons for r in parse_bytes(data)]


def test_a_valid_record_has_every_field() -> None:
    (record,) = parse_bytes(SEED_CM)
    result = validate_record(record, REFERENCE, dt.date(2007, 7, 19), CALENDAR, ["00005"])
    assert result.status == "valid" and result.is_valid
    assert result.reasons == () and result.problems == ()
    assert result.line == 1 and result.raw == SEED_CM
    assert result.fields == DplFields(
        rpt_id=None,
        biz_dt="2007-07-19",
        dlv_dt="2007-07-20",
        req_typ="6",
        model_typ="1",
        firm_id="00005",
        firm_role="4",
        agg_unit="123456789",
        crd="123456",
        firm_name="Goldman Sachs",
        symbol="GOOG",
        sub_typ="ETO",
        long="100",
        short=None,
    )


def test_problems_name_field_and_value() -> None:
    v = validator()
    (record,) = parse_bytes(line(biz="2026-13-01", firm="00418", long="7", short="x"))
    result = v.validate(record)
    assert result.status == "rejected"
    assert result.reasons == ("LAYOUT", "UNKNOWN_CM", "NOT_ENTITLED")
    by_code = {p.code: p for p in result.problems}
    assert by_code["UNKNOWN_CM"].value == "00418"
    assert "inactive" in by_code["UNKNOWN_CM"].message
    layout = [p for p in result.problems if p.code == "LAYOUT"]
    assert {(p.field, p.value) for p in layout} == {("BizDt", "2026-13-01"), ("Qty/@Short", "x")}
    assert layout[0].describe(7).startswith("LAYOUT: BizDt='2026-13-01'")
    assert layout[0].describe(7).endswith("(line 7)")


def test_reasons_are_unique_and_in_spec_order() -> None:
    inner = posrpt(firm="00999", biz="2020-01-01", long="1", short="2").replace(
        "<PosRpt ", '<PosRpt X="1" Y="2" '
    )
    (reasons,) = check(line(inner))
    assert reasons == (
        "LAYOUT",
        "UNKNOWN_CM",
        "BIZDT_OUT_OF_RANGE",
        "LONG_AND_SHORT",
        "NOT_ENTITLED",
    )
    assert list(reasons) == sorted(reasons, key=REASON_CODES.index)


def test_malformed_records_keep_their_problem_text() -> None:
    v = validator()
    (record,) = parse_bytes(line() + b"\n<FIXML><PosRpt></FIXML>")[1:]
    result = v.validate(record)
    assert result.reasons == ("MALFORMED",) and result.fields is None
    assert "not well-formed" in result.problems[0].message


@pytest.mark.parametrize(
    ("firm", "role", "reasons"),
    [
        ("00005", "4", ()),
        ("5", "4", ()),
        ("0000000005", "4", ()),
        ("00418", "4", ("UNKNOWN_CM", "NOT_ENTITLED")),
        ("IAN", "7", ("NOT_ENTITLED",)),
        ("SMQ", "7", ("NCO_NOT_ELIGIBLE", "NOT_ENTITLED")),
        ("ZZZ", "7", ("UNKNOWN_NCO", "NOT_ENTITLED")),
        ("٥", "4", ("UNKNOWN_CM", "NOT_ENTITLED")),  # Arabic-Indic five is not the number 5
    ],
)
def test_firm_checks(firm: str, role: str, reasons: tuple[str, ...]) -> None:
    assert check(line(firm=firm, role=role)) == [reasons]


def test_entitlement_compares_numeric_ids_by_value() -> None:
    assert check(line(firm="00161"), entitled=("161",)) == [()]
    assert check(line(firm="IAN", role="7"), entitled=("00005", "IAN")) == [()]
    assert check(line(firm="IAN", role="7"), entitled=("00005", "ian")) == [("NOT_ENTITLED",)]


def test_firm_checks_are_cached_per_file_but_reported_for_every_record() -> None:
    data = b"\n".join([line(firm="00999")] * 3)
    assert check(data) == [("UNKNOWN_CM", "NOT_ENTITLED")] * 3


def test_reference_lookups() -> None:
    ref = DplReference({"00005": True, "418": False, "AB1": True}, {"007": True, "SMQ": False})
    assert ref.is_active_cm("5") and ref.cm_status("0005") is True
    assert ref.cm_status("00418") is False and not ref.is_active_cm("00418")
    assert ref.cm_status("ab1") is None and ref.is_active_cm("AB1")
    assert ref.nco_eligibility("7") is True and ref.nco_eligibility("SMQ") is False
    assert ref.nco_eligibility("IAN") is None


def test_id_key() -> None:
    assert id_key("00005") == id_key("5") == "5"
    assert id_key("0000") == "0"
    assert id_key("A05") == "A05"
    assert id_key("0" * 5000 + "7") == "7"  # no int() conversion limits


def test_bizdt_window_follows_the_cycle() -> None:
    tuesday = validator(cycle=dt.date(2026, 3, 10))
    (mon, fri) = parse_bytes(line(biz="2026-03-09") + b"\n" + line(biz="2026-03-06"))
    assert tuesday.validate(mon).reasons == ()
    assert tuesday.validate(fri).reasons == ("BIZDT_OUT_OF_RANGE",)
    with pytest.raises(ValueError):
        validator(cycle=dt.date(2026, 3, 7))  # a Saturday is never a cycle


def test_validate_file_and_summary() -> None:
    data = b"\n".join(
        [line(), line(firm="00999"), b"junk", line(long="1", short="1"), line(firm="IAN", role="7")]
    )
    outcome = validate_file(
        data, reference=REFERENCE, cycle=CYCLE, calendar=CALENDAR, entitled_firms=["00005"]
    )
    assert [r.status for r in outcome.results] == ["valid"] + ["rejected"] * 4
    assert outcome.summary.as_dict() == {
        "total": 5,
        "valid": 1,
        "rejected": 4,
        "by_reason": {
            "MALFORMED": 1,
            "UNKNOWN_CM": 1,
            "LONG_AND_SHORT": 1,
            "NOT_ENTITLED": 2,
        },
    }


def test_validate_file_raises_for_unreadable_files() -> None:
    with pytest.raises(UnreadableInput) as caught:
        validate_file(
            b"\x00\x01",
            reference=REFERENCE,
            cycle=CYCLE,
            calendar=CALENDAR,
            entitled_firms=[],
            name="x.fixml",
        )
    assert caught.value.reason == "BINARY" and caught.value.location.file == "x.fixml"


def test_empty_summary() -> None:
    assert ValidationSummary().as_dict() == {"total": 0, "valid": 0, "rejected": 0, "by_reason": {}}


# -- canonical form ----------------------------------------------------------------------------


def test_canonical_line_of_the_seed_sample() -> None:
    (record,) = parse_bytes(SEED_CM)
    fields = validator(cycle=dt.date(2007, 7, 19)).validate(record).fields
    assert fields is not None
    assert canonical_line(fields, rpt_id="143771378", dlv_dt=dt.date(2007, 7, 20)) == (
        b'<FIXML><PosRpt RptID="143771378" BizDt="2007-07-19" DlvDt="2007-07-20" ReqTyp="6"'
        b' ModelTyp="1"><Pty ID="00005" R="4"/><Pty ID="123456789" R="38"/>'
        b'<Pty ID="123456" R="82"><Sub ID="Goldman Sachs" Typ="5"/></Pty>'
        b'<Instrmt Sym="GOOG" SubTyp="ETO"/><Qty Typ="DLT" Long="100"/></PosRpt></FIXML>'
    )


def test_plain_records_take_the_fast_path_and_others_the_tree_walk() -> None:
    assert _read_fast(SEED_CM) is not None
    assert _read_fast(SEED_CM.replace(b"Goldman", b"&#71;oldman")) is None
    assert _read_fast(SEED_CM.replace(b'ReqTyp="6" ModelTyp', b'ModelTyp="1" ReqTyp="6" X')) is None
    assert _read_fast(SEED_CM.replace(b' Long="100"', b"")) is None


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


# -- aggregation order ---------------------------------------------------------------------------


def test_firm_sort_text_orders_numeric_ids_by_value_first() -> None:
    firms = ["IAN", "00161", "5", "WLV", "00005", "1000", "0", "A1", "099"]
    ordered = sorted(firms, key=firm_sort_text)
    assert ordered == ["0", "5", "00005", "099", "00161", "1000", "A1", "IAN", "WLV"]
    assert firm_sort_text("5") == firm_sort_text("00005")


def test_aggregation_sort_key() -> None:
    def fields(firm: str, agg: str, sym: str, sub: str) -> DplFields:
        return DplFields(firm_id=firm, agg_unit=agg, symbol=sym, sub_typ=sub)

    rows = [
        fields("IAN", "A", "IBM", "ETO"),
        fields("00161", "B", "AAPL", "OTC"),
        fields("00161", "B", "AAPL", "CMB"),
        fields("00161", "A", "ZZZ", "ETO"),
        fields("5", "Z", "A", "ETO"),
    ]
    ordered = sorted(rows, key=aggregation_sort_key)
    assert [(f.firm_id, f.agg_unit, f.symbol, f.sub_typ) for f in ordered] == [
        ("5", "Z", "A", "ETO"),
        ("00161", "A", "ZZZ", "ETO"),
        ("00161", "B", "AAPL", "CMB"),
        ("00161", "B", "AAPL", "OTC"),
        ("IAN", "A", "IBM", "ETO"),
    ]
