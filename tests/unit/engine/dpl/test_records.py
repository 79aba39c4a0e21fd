"""The DPL record model: reference lookups, identifier comparison, aggregation order."""

from __future__ import annotations

from engine.dpl.records import DplFields, DplReference, aggregation_sort_key, firm_sort_text, id_key


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
