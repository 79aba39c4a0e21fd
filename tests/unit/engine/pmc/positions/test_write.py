"""The 346 writer: CSV and ASCII round-trip every field the reader gives; header, trailer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.pmc.positions.model import PositionBatch
from engine.pmc.positions.read import parse_position_file
from engine.pmc.positions.rows import positions_from_rows
from engine.pmc.positions.write import PositionNotWritable, render_position_file

DATA = Path(__file__).resolve().parents[4] / "data" / "pmc"
FIELDS = (
    "firm",
    "account",
    "account_type",
    "put_call",
    "symbol",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "strike",
    "security_type",
    "market_value",
    "quantity",
    "basket_id",
)
ASCII_LOST = ("exercise_style", "settlement_style", "expiration_date")


def same(a: PositionBatch, b: PositionBatch, skip: tuple[str, ...] = ()) -> None:
    assert len(a) == len(b)
    for name in FIELDS:
        if name not in skip:
            assert getattr(a, name).tolist() == getattr(b, name).tolist(), name


@pytest.mark.parametrize("name", ["sample_mixed.csv", "sample_ascii.txt", "ascii_no_header.txt"])
@pytest.mark.parametrize("fmt", ["csv", "ascii"])
def test_sample_files_round_trip(name: str, fmt: str) -> None:
    first = parse_position_file((DATA / name).read_bytes())
    date = first.header.date if first.header else ""
    data = render_position_file(first.positions, fmt=fmt, date=date)
    again = parse_position_file(data)
    assert again.format == fmt
    assert [p for p in again.problems if p.kind != "warning"] == []
    same(first.positions, again.positions, ASCII_LOST if fmt == "ascii" else ())
    if first.header:
        assert again.header is not None
        assert (again.header.firm, again.header.date) == (first.header.firm, first.header.date)
    q = first.positions.quantity
    assert again.trailer is not None
    assert (again.trailer.total_longs, again.trailer.total_shorts) == (
        int(q[q > 0].sum()),
        int(-q[q < 0].sum()),
    )


def test_csv_layout_of_one_record_with_header_and_trailer() -> None:
    batch, problems = positions_from_rows(
        [
            {
                "firm": "5",
                "account": "CUST01",
                "account_type": "C",
                "symbol": "SPX",
                "security_type": "O",
                "put_call": "C",
                "series_date": "2026-12-18",
                "expiration_date": "2026-12-19",
                "exercise_style": "E",
                "settlement_style": "O",
                "strike": 6000,
                "quantity": -10,
            },
            {
                "firm": "5",
                "account": "CUST01",
                "account_type": "C",
                "symbol": "FAKE",
                "security_type": "S",
                "market_value": 12.5,
                "quantity": 50,
                "basket_id": "10101",
            },
        ]
    )
    assert problems == []
    text = render_position_file(batch, fmt="csv", date="2026-11-20").decode()
    assert text.splitlines() == [
        "346,H,5,20261120",
        "346,,5,CUST01,C,SPX,,E,O,20261218,20261219,6000.0000,S,O,0.00,10,C,",
        "346,,5,CUST01,,FAKE,,,,,,0.0000,L,S,12.50,50,C,10101",
        "346,T,5,50,10",
    ]
    ascii_text = render_position_file(batch, fmt="ascii", date="2026-11-20").decode()
    assert ascii_text.splitlines() == [
        "346H000520261120",
        "346 0005CUST01    CSPX   20261218060000000SO000000000000000000010C     ",
        "346 0005CUST01     FAKE  00000000000000000LS000012500000000000050C10101",
        "346T00050000000005000000000010",
    ]


def test_values_that_do_not_fit_ascii_are_refused_by_name() -> None:
    batch, _ = positions_from_rows(
        [
            {
                "firm": "5",
                "account": "A-VERY-LONG-ID",
                "account_type": "C",
                "symbol": "IBM",
                "security_type": "S",
                "quantity": 1,
            }
        ]
    )
    with pytest.raises(PositionNotWritable) as info:
        render_position_file(batch, fmt="ascii")
    assert info.value.location.field == "ACCOUNT ID" and "A-VERY-LONG-ID" in info.value.message
    assert render_position_file(batch, fmt="csv").count(b"A-VERY-LONG-ID") == 1
    with pytest.raises(ValueError):
        render_position_file(batch, fmt="xml")


_symbol = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6)
_date = st.dates(min_value=__import__("datetime").date(2000, 1, 1)).map(lambda d: d.isoformat())


@st.composite
def _row(draw: st.DrawFn) -> dict[str, object]:
    sectype = draw(st.sampled_from("OIFSW"))
    option = sectype in "OIW"
    row: dict[str, object] = {
        "firm": str(draw(st.integers(0, 9999))),
        "account": draw(st.text(alphabet='ABC xyz,0-9"', max_size=10)).strip(),
        "account_type": draw(st.sampled_from("CFM")),
        "symbol": draw(_symbol),
        "security_type": sectype,
        "put_call": ("C" if sectype == "W" else draw(st.sampled_from("CP"))) if option else "",
        "series_date": draw(_date) if sectype != "S" else "",
        "expiration_date": draw(st.one_of(st.just(""), _date)),
        "exercise_style": draw(st.sampled_from(["", "A", "E"])),
        "settlement_style": draw(st.sampled_from(["", "O", "C"])),
        "strike": draw(st.integers(1, 99_999_9999)) / 10_000 if option else 0,
        "market_value": draw(st.integers(0, 999_999_999_999)) / 1_000_000 if sectype == "S" else 0,
        "quantity": draw(st.integers(1, 999_999_999)) * draw(st.sampled_from([1, -1])),
        "basket_id": draw(st.sampled_from(["", "10101", "B7"])) if sectype == "S" else "",
    }
    return row


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_row(), min_size=0, max_size=8), fmt=st.sampled_from(["csv", "ascii"]))
def test_any_valid_batch_round_trips(rows: list[dict[str, object]], fmt: str) -> None:
    batch, problems = positions_from_rows(rows)
    assert [p for p in problems if p.kind != "warning"] == []
    data = render_position_file(batch, fmt=fmt, date="2026-11-20")
    again = parse_position_file(data)
    assert [p for p in again.problems if p.kind != "warning"] == []
    same(batch, again.positions, ASCII_LOST if fmt == "ascii" else ())
    assert np.array_equal(again.positions.quantity, batch.quantity)
