"""DPL records in the ledger: the intake's row shape, and both ways of handing rows over."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.dpl.records import DplFields, firm_sort_text
from gateway.ledger import (
    Ledger,
    StoreRejected,
    dpl_sort_key,
    pack_fields,
    unpack_fields,
    valid_row,
)

values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x1f\x02\x01"))
optional = st.none() | values.filter(bool)
required = values.filter(bool)
valid_fields = st.builds(
    DplFields,
    rpt_id=optional,
    biz_dt=required,
    dlv_dt=optional,
    req_typ=st.just("6"),
    model_typ=st.sampled_from(["0", "1"]),
    firm_id=required,
    firm_role=st.sampled_from(["4", "7"]),
    agg_unit=required,
    crd=required,
    firm_name=required,
    symbol=required,
    sub_typ=st.sampled_from(["ETO", "OTC", "CMB"]),
    long=optional,
    short=optional,
)


@given(valid_fields)
def test_a_valid_row_packs_and_sorts_as_the_general_functions_do(fields: DplFields) -> None:
    firm_sort = firm_sort_text(fields.firm_id or "")
    line, raw, packed, sort_key = valid_row(7, b"raw", fields, firm_sort)
    assert (line, raw) == (7, b"raw")
    assert packed == pack_fields(fields)
    assert unpack_fields(packed) == tuple(fields)
    assert sort_key == dpl_sort_key(
        firm_sort, fields.agg_unit or "", fields.symbol or "", fields.sub_typ or ""
    )


def _file(ledger: Ledger, name: str) -> int:
    return ledger.record_file(
        flow="dpl",
        firm="00005",
        account="00005",
        name=name,
        sha256=name * 8,
        size=1,
        received_at=dt.datetime(2026, 3, 9, 20, tzinfo=dt.UTC),
        cycle="2026-03-09",
        work_path=f"work/{name}",
        source="test",
    )


def _stored(ledger: Ledger, file_id: int) -> list[tuple[object, ...]]:
    return [
        (r["line"], bytes(r["raw"]), r["status"], r["reasons"], r["details"], r["fields"])
        for r in ledger.dpl_records_for_file(file_id)
    ]


FIELDS = DplFields(None, "2026-03-09", None, "6", "1", "00005", "4", "AU", "361", "GS", "X", "ETO")


def test_rows_in_both_shapes_store_the_same_records_in_line_order(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    packed = pack_fields(FIELDS._replace(long="5"))
    sort_key = dpl_sort_key(firm_sort_text("00005"), "AU", "X", "ETO")
    tuples = [
        (1, b"a", "valid", "", None, packed, sort_key),
        (2, b"b", "rejected", "LAYOUT NOT_ENTITLED", '[{"code": "LAYOUT"}]', packed, None),
        (3, b"c", "valid", "", None, packed, sort_key),
        (5, b"e", "rejected", "MALFORMED", None, None, None),
    ]

    def rows(store_rejected: StoreRejected) -> Iterator[tuple[object, ...]]:
        for line, raw, status, reasons, details, fields, key in tuples:
            if status == "valid":
                yield line, raw, fields, key
            else:  # stored between the valid rows, as the intake does
                store_rejected(line, raw, reasons, details, fields)

    first, second = _file(ledger, "a"), _file(ledger, "b")
    ledger.replace_dpl_records(
        first, tuples, cycle="2026-03-09", submitter="00005", totals=(4, 2, 2)
    )
    ledger.replace_dpl_records(
        second, iter(tuples), cycle="2026-03-10", submitter="00005", totals=(4, 2, 2)
    )
    expected = [t[:6] for t in tuples]
    assert _stored(ledger, first) == expected
    assert _stored(ledger, second) == expected
    third = _file(ledger, "c")
    ledger.replace_dpl_records(third, rows, cycle="2026-03-11", submitter="00005", totals=(4, 2, 2))
    assert _stored(ledger, third) == expected
    assert [r["sort_key"] for r in ledger.dpl_records_for_file(third)] == [
        sort_key,
        None,
        sort_key,
        None,
    ]


def test_a_row_of_no_known_status_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    file_id = _file(ledger, "a")
    with pytest.raises(ValueError, match="'superseded'"):
        ledger.replace_dpl_records(
            file_id,
            [(1, b"a", "superseded", "", None, None, None)],
            cycle="2026-03-09",
            submitter="00005",
            totals=(1, 0, 0),
        )
    assert ledger.dpl_records_for_file(file_id) == []
    assert ledger.file(file_id).state == "received"
