"""346 position files: CSV and ASCII, header/trailer, per-line problems."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import UnreadableInput
from engine.pmc.positions.checks import parse_date
from engine.pmc.positions.model import REJECTED, WARNING
from engine.pmc.positions.read import detect_format, parse_position_file
from engine.pmc.report import margin_for_file
from engine.pmc.theo.model import FILES
from engine.pmc.theo.read import parse_theo_set
from tests.benchmarks.bench_margin import reference_margin

DATA = Path(__file__).resolve().parents[4] / "data" / "pmc"
SAMPLE_THEO = (
    Path(__file__).resolve().parents[5] / "config" / "samples" / "pmc" / "theo" / "2026-11-20"
)


def ascii_detail(
    *,
    firm: str = "4444",
    account: str = "1234567888",
    pc: str = "C",
    symbol: str = "DJX",
    series: str = "20131221",
    strike: str = "001100000",
    function: str = "L",
    sectype: str = "O",
    market_value: str = "000000000000",
    qty: str = "000000100",
    acct_type: str = "F",
    basket: str = "",
) -> str:
    return (
        f"346 {firm:>4}{account:<10}{pc:1}{symbol:<6}{series:<8}{strike:>9}{function}{sectype}"
        f"{market_value:>12}{qty:>9}{acct_type}{basket:<5}"
    )


CSV_SAMPLE = (
    "346,H,4444,20231205\n"
    "346,,4444,1234567888,P,BP,,,,20120609,,1500,L,I,,1,F,\n"
    "346,,4444,saash,C,DJX,,A,C,20131221,20131221,110,L,O,,100,C,\n"
    "346,,4444,1234567890,,FAKE,,,,,,0,L,S,999.00,1,C,\n"
    "346,,4444,1234567890,,FAKER,,,,,,0,S,S,50.00,1,C,10101\n"
    "346,T,4444,102,1\n"
)


def test_csv_with_header_and_trailer() -> None:
    pf = parse_position_file(CSV_SAMPLE.encode())
    assert pf.format == "csv"
    assert pf.header is not None and pf.header.firm == "04444" and pf.header.date == "2023-12-05"
    assert pf.trailer is not None and (pf.trailer.total_longs, pf.trailer.total_shorts) == (102, 1)
    assert pf.records == 4 and pf.problems == []
    b = pf.positions
    assert b.line.tolist() == [2, 3, 4, 5]
    assert b.account.tolist() == ["1234567888", "saash", "1234567890", "1234567890"]
    assert b.account_type.tolist() == ["F", "C", "C", "C"]
    assert b.security_type.tolist() == ["I", "O", "S", "S"]
    assert b.series_date.tolist() == ["2012-06-09", "2013-12-21", "", ""]
    assert b.strike.tolist() == [1500.0, 110.0, 0.0, 0.0]
    assert b.quantity.tolist() == [1.0, 100.0, 1.0, -1.0]
    assert b.market_value.tolist() == [0.0, 0.0, 999.0, 50.0]
    assert b.basket_id.tolist() == ["", "", "", "10101"]
    assert b.exercise_style.tolist() == ["", "A", "", ""]


def test_ascii_layout_columns() -> None:
    lines = [
        "346H444420231205",
        ascii_detail(),
        ascii_detail(
            pc="",
            symbol="FAKE",
            series="00000000",
            strike="000000000",
            sectype="S",
            market_value="000999000000",
            qty="000000001",
            acct_type="C",
            basket="10101",
            function="S",
        ),
        "346T44440000000010000000000001",
    ]
    pf = parse_position_file(("\r\n".join(lines) + "\r\n").encode())
    assert pf.format == "ascii" and pf.problems == []
    b = pf.positions
    assert b.firm.tolist() == ["04444", "04444"]
    assert b.account.tolist() == ["1234567888", "1234567888"]
    assert b.strike.tolist() == [110.0, 0.0]  # 9 (5.4)
    assert b.market_value.tolist() == [0.0, 999.0]  # 12 (6.6)
    assert b.quantity.tolist() == [100.0, -1.0]
    assert b.basket_id.tolist() == ["", "10101"]
    assert b.series_date.tolist() == ["2013-12-21", ""]


def test_ascii_without_header_or_trailer_and_short_trailing_blanks() -> None:
    line = ascii_detail(acct_type="M").rstrip()  # basket omitted, trailing blanks trimmed
    pf = parse_position_file((line + "\n").encode())
    assert pf.format == "ascii" and pf.header is None and pf.trailer is None
    assert pf.positions.account_type.tolist() == ["M"]


def test_format_detection() -> None:
    assert detect_format(["", "346,,1,A,C,X"]) == "csv"
    assert detect_format(['"346","H"']) == "csv"
    assert detect_format(["346H000520260101"]) == "ascii"
    assert detect_format(["hello"]) is None


def test_trailer_totals_mismatch_is_a_warning() -> None:
    data = CSV_SAMPLE.replace("346,T,4444,102,1", "346,T,4444,103,1").encode()
    pf = parse_position_file(data)
    assert [(p.line, p.kind, p.reason) for p in pf.problems] == [(6, WARNING, "TRAILER_TOTALS")]
    assert len(pf.positions) == 4  # the records are still used


def test_trailer_totals_count_rejected_records_too() -> None:
    data = CSV_SAMPLE.replace(",100,C,\n", ",100,Z,\n").encode()  # line 3 rejected (type Z)
    pf = parse_position_file(data)
    assert [(p.line, p.reason) for p in pf.problems] == [(3, "BAD_VALUE")]


@pytest.mark.parametrize(
    ("line", "reason", "field"),
    [
        ("346,,4444,A,C,DJX,,,,20131221,,110,X,O,,1,C,", "BAD_VALUE", "FUNCTION"),
        ("346,,4444,A,C,DJX,,,,20131221,,110,L,Q,,1,C,", "BAD_VALUE", "SECURITY TYPE CODE"),
        ("346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1,Z,", "BAD_VALUE", "INTERVAL DISTINCTION ID"),
        ("346,,4444,A,C,DJX,,,,20131221,,110,L,O,,,C,", "MISSING_FIELD", "NET POSITION"),
        ("346,,4444,A,C,DJX,,,,20131221,,110,L,O,,-5,C,", "BAD_VALUE", "NET POSITION"),
        ("346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1.5,C,", "BAD_VALUE", "NET POSITION"),
        ("346,,4444,A,,DJX,,,,20131221,,110,L,O,,1,C,", "MISSING_FIELD", "PUT/CALL INDICATOR"),
        ("346,,4444,A,P,DJX,,,,20131221,,110,L,W,,1,C,", "BAD_VALUE", "PUT/CALL INDICATOR"),
        ("346,,4444,A,C,DJX,,,,20131321,,110,L,O,,1,C,", "BAD_VALUE", "SERIES/CONTRACT DATE"),
        ("346,,4444,A,C,DJX,,,,,,110,L,O,,1,C,", "MISSING_FIELD", "SERIES/CONTRACT DATE"),
        ("346,,4444,A,C,DJX,,,,20131221,,abc,L,O,,1,C,", "BAD_VALUE", "STRIKE PRICE"),
        ("346,,4444,A,C,DJX,,,,20131221,,0,L,O,,1,C,", "BAD_VALUE", "STRIKE PRICE"),
        ("346,,4444,A,C,,,,,20131221,,110,L,O,,1,C,", "MISSING_FIELD", "SYMBOL"),
        ("346,,ABCD,A,C,DJX,,,,20131221,,110,L,O,,1,C,", "BAD_VALUE", "CLEARING FIRM NUMBER"),
        ("346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1", "LAYOUT", None),
        ("347,,4444,A,C,DJX,,,,20131221,,110,L,O,,1,C,", "LAYOUT", "TRANS-ID"),
        ("346,Q,4444,A,C,DJX,,,,20131221,,110,L,O,,1,C,", "LAYOUT", "RECORD-TYPE"),
    ],
)
def test_csv_rejections_name_reason_line_and_field(
    line: str, reason: str, field: str | None
) -> None:
    good = "346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1,C,"
    pf = parse_position_file(f"{good}\n{line}\n".encode())
    assert pf.records == 2 and len(pf.positions) == 1
    [problem] = pf.problems
    assert (problem.line, problem.kind, problem.reason, problem.field) == (
        2,
        REJECTED,
        reason,
        field,
    )
    assert problem.message


def test_ascii_rejections() -> None:
    lines = [
        ascii_detail(),
        ascii_detail()[:50],  # too short
        ascii_detail(strike="0011000X0"),
        ascii_detail() + "XXXXXXX",  # too long
    ]
    pf = parse_position_file("\n".join(lines).encode())
    assert [(p.line, p.reason) for p in pf.problems] == [
        (2, "LAYOUT"),
        (3, "BAD_VALUE"),
        (4, "LAYOUT"),
    ]


def test_zero_quantity_rejected_and_warnings_strike_on_stock_basket_on_option() -> None:
    data = (
        b"346,,4444,A,C,DJX,,,,20131221,,110,L,O,,0,C,\n"
        b"346,,4444,A,,IBM,,,,,,12,L,S,,5,C,\n"
        b"346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1,C,10101\n"
        b"346,,4444,A,C,DJX,,,,20131221,,110,L,O,3.25,1,C,\n"
    )
    pf = parse_position_file(data)
    assert [(p.line, p.kind, p.reason, p.field) for p in pf.problems] == [
        (1, REJECTED, "ZERO_QUANTITY", "NET POSITION"),
        (2, WARNING, "STRIKE_IGNORED", "STRIKE PRICE"),
        (3, WARNING, "BASKET_IGNORED", "BASKET ID"),
        (4, WARNING, "MARKET_VALUE_IGNORED", "MARKET VALUE"),
    ]
    assert len(pf.positions) == 3
    assert pf.positions.line.tolist() == [2, 3, 4]
    assert pf.positions.strike.tolist() == [0.0, 110.0, 110.0]
    assert pf.positions.basket_id.tolist() == ["", "", ""]
    assert pf.positions.market_value.tolist() == [0.0, 0.0, 0.0]


def test_zero_quantity_in_ascii_is_rejected() -> None:
    line = "346 4444ACCT1     CDJX   20131221001100000LO000000000000000000000C     "
    pf = parse_position_file(line.encode())
    assert [(p.line, p.reason) for p in pf.problems] == [(1, "ZERO_QUANTITY")]
    assert len(pf.positions) == 0


def test_misplaced_header_and_records_after_trailer() -> None:
    data = (
        b"346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1,C,\n"
        b"346,H,4444,20231205\n"
        b"346,T,4444,1,0\n"
        b"346,,4444,A,C,DJX,,,,20131221,,110,L,O,,1,C,\n"
    )
    pf = parse_position_file(data)
    assert [(p.line, p.reason) for p in pf.problems if p.kind == REJECTED] == [
        (2, "MISPLACED_RECORD"),
        (4, "MISPLACED_RECORD"),
    ]
    assert len(pf.positions) == 1


def test_blank_firm_takes_the_submitting_firm() -> None:
    data = b"346,,,A,C,DJX,,,,20131221,,110,L,O,,1,C,\n"
    assert parse_position_file(data).problems[0].reason == "MISSING_FIELD"
    pf = parse_position_file(data, default_firm="00005")
    assert pf.positions.firm.tolist() == ["00005"]


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("20131221", "2013-12-21"),
        ("1131221", "2013-12-21"),
        ("0991231", "1999-12-31"),
        ("131221", "2013-12-21"),
        ("2013-12-21", "2013-12-21"),
        ("12/21/2013", "2013-12-21"),
        ("00000000", ""),
        ("", ""),
    ],
)
def test_date_forms(text: str, iso: str) -> None:
    assert parse_date(text, "D") == iso


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "EMPTY"),
        (b"   \n\n", "EMPTY"),
        (b"\x00\x01\x02binary", "NOT_TEXT"),
        (b"346,\xff\xfe,x\n", "NOT_TEXT"),
        (b"hello,world\nno records\n", "NOT_346"),
    ],
)
def test_unreadable_files(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableInput) as info:
        parse_position_file(data)
    assert info.value.reason == reason


EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_parses_as_expected(name: str) -> None:
    want = EXPECTED[name]
    pf = parse_position_file((DATA / name).read_bytes())
    assert pf.format == want["format"]
    assert (pf.records, len(pf.positions)) == (want["records"], want["parsed"])
    assert [[p.line, p.kind, p.reason] for p in pf.problems] == want["problems"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_margin_matches_the_reference_loop(name: str) -> None:
    theo = parse_theo_set({f: (SAMPLE_THEO / f).read_bytes() for f in FILES})
    pf = parse_position_file((DATA / name).read_bytes())
    report = margin_for_file(pf, theo)
    assert report.counts.as_dict() == EXPECTED[name]["counts"]
    ref = reference_margin(pf.positions, theo)
    r = report.result
    got = {
        (str(f), str(a), str(t)): float(v)
        for f, a, t, v in zip(
            r.account_firm, r.account_id, r.account_type, r.account_requirement, strict=True
        )
    }
    assert got.keys() == ref.keys()
    for key, value in got.items():
        assert value == pytest.approx(ref[key], rel=1e-9, abs=1e-6)


def test_corpus_is_complete() -> None:
    files = {p.name for p in DATA.iterdir() if p.suffix in (".csv", ".txt")}
    assert files == set(EXPECTED)


def test_progress_is_reported() -> None:
    seen: list[tuple[int, int]] = []
    parse_position_file(CSV_SAMPLE.encode(), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (6, 6)


def _check_parsed(data: bytes) -> None:
    try:
        pf = parse_position_file(data)
    except UnreadableInput:
        return
    rejected = [p.line for p in pf.problems if p.kind == REJECTED]
    assert len(rejected) == len(set(rejected))  # at most one rejection per line
    assert pf.records == len(pf.positions) + len(rejected)
    assert np.isfinite(pf.positions.quantity).all()
    for p in pf.problems:
        assert p.kind in (REJECTED, WARNING) and p.line >= 1 and p.message


_FIELD = st.text(alphabet='0123456789ACDEFILMOPSTWXZ .-/,"', max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_FIELD, min_size=1, max_size=20), min_size=1, max_size=8))
def test_csv_parser_never_crashes(rows: list[list[str]]) -> None:
    text = "\n".join("346," + ",".join(r) for r in rows)
    _check_parsed(text.encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet="0123456789 ACFHLMOPSTWX.", min_size=0, max_size=80), max_size=8))
def test_ascii_parser_never_crashes(lines: list[str]) -> None:
    _check_parsed(("\n".join("346" + line for line in lines)).encode())


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_typed_outcome(data: bytes) -> None:
    _check_parsed(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 60), st.sampled_from(list(CSV_SAMPLE)), st.data())
def test_mutated_sample_file(pos: int, ch: str, data: st.DataObject) -> None:
    text = CSV_SAMPLE
    i = data.draw(st.integers(0, len(text) - 1))
    mutated = text[:i] + ch + text[i + 1 + pos % 3 :]
    _check_parsed(mutated.encode())
