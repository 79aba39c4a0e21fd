"""DPL validation rules, problem details and file summaries."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.dpl.fixml import parse_bytes
from engine.dpl.records import REASON_CODES, DplFields
from engine.dpl.validate import ValidationSummary, validate_file, validate_record
from engine.errors import UnreadableInput

from .support import CALENDAR, CM_LINE, CYCLE, REFERENCE, line, posrpt, validator


def check(data: bytes, entitled: tuple[str, ...] = ("00005",)) -> list[tuple[str, ...]]:
    v = validator(entitled)
    return [v.validate(r).reasons for r in parse_bytes(data)]


def test_a_valid_record_has_every_field() -> None:
    (record,) = parse_bytes(CM_LINE)
    result = validate_record(record, REFERENCE, dt.date(2007, 7, 19), CALENDAR, ["00005"])
    assert result.status == "valid" and result.is_valid
    assert result.reasons == () and result.problems == ()
    assert result.line == 1 and result.raw == CM_LINE
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
