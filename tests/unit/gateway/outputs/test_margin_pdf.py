"""The Detail and Summary PDF exports: US Letter, every column on the page, every row
identifiable, requirement rows at every level, baskets, problems, the set used, page numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.pmc.positions.read import parse_position_file
from engine.pmc.report import MarginReport, margin_for_file
from gateway.outputs.margin.data import results_csv
from gateway.outputs.margin.pdf import DETAIL_COLUMNS, HYPOTHETICAL, report_pdf
from gateway.outputs.margin.table import format_whole
from gateway.theo_store import load_theo_set

ROOT = Path(__file__).resolve().parents[4]
SAMPLES = ROOT / "config" / "samples" / "pmc"
AT = dt.datetime(2026, 11, 20, 22, 15, 0, tzinfo=dt.UTC)
LETTER_LANDSCAPE = (792.0, 612.0)  # points


@pytest.fixture(scope="module")
def report() -> MarginReport:
    theo = load_theo_set(SAMPLES / "theo" / "2026-11-20")
    return margin_for_file(parse_position_file((SAMPLES / "positions.csv").read_bytes()), theo)


def _text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_detail_on_us_letter_with_every_row_identifiable(report: MarginReport) -> None:
    data = report_pdf(report, generated_at=AT)
    reader = PdfReader(io.BytesIO(data))
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == LETTER_LANDSCAPE
    text = _text(data)
    flat = _squash(text)
    assert "P&L set 2026-11-20" in text and "2026-11-20 22:15:00 UTC" in text
    assert _squash(HYPOTHETICAL) in flat
    assert f"page 1/{len(reader.pages)}" in text
    for heading, _ in DETAIL_COLUMNS:
        assert _squash(heading) in flat, heading
    for label in ("-5", "-1", "+1", "+5"):
        assert label in text
    rows = list(csv.DictReader(io.StringIO(results_csv(report).decode())))
    contracts = [r for r in rows if r["level"] == "contract"]
    assert len(contracts) == report.counts.accepted
    for r in contracts:  # type, symbol, put/call, strike, series date, quantity, the +5 point
        for value in (r["symbol"], r["strike"], r["series_date"], r["quantity"]):
            assert _squash(value) in flat, (value, r)
        assert _squash(format_whole(float(r["pnl_p5"]))) in flat
    # requirement rows at class group, product group, portfolio group, account and firm level
    for level in ("Class Grp", "Prod Grp", "Port Grp", "Account Net", "Firm"):
        assert _squash(level) in flat
    assert "Basket" in text and "10101" in text
    firm = report.result.firm_requirement[0]
    assert f"-{firm:,.0f}" in text
    for p in report.problems:
        assert p.reason in text


def test_summary_has_units_baskets_and_problems(report: MarginReport) -> None:
    text = _text(report_pdf(report, part="summary", generated_at=AT))
    assert "summary" in text and "Stand-alone units" in text
    assert "CUST01" in text and "BD1" in text and "Firm total" in text
    assert "Baskets" in text and "10101" in text
    assert "INVALID_SERIES" in text and "BAD_VALUE" in text
    with pytest.raises(ValueError):
        report_pdf(report, part="everything")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} missing (Debian package poppler-utils)")
        pytest.skip(f"{name} missing (Debian package poppler-utils)")
    return path


def test_rendered_page_holds_every_column_inside_the_page(
    report: MarginReport, tmp_path: Path
) -> None:
    pdf = tmp_path / "detail.pdf"
    pdf.write_bytes(report_pdf(report, generated_at=AT))
    subprocess.run(
        [
            _tool("pdftoppm"),
            "-r",
            "50",
            "-f",
            "1",
            "-l",
            "1",
            "-png",
            str(pdf),
            str(tmp_path / "p"),
        ],
        check=True,
        timeout=60,
    )
    png = next(tmp_path.glob("p*.png")).read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (550, 425)  # 11 x 8.5 inches at 50 dpi
    bbox = subprocess.run(
        [_tool("pdftotext"), "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    words = re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
        bbox,
    )
    assert words
    # every word, down to the +5 column, lies inside the page's 10 mm margins
    margin_pt = 10 / 25.4 * 72
    assert max(float(w[2]) for w in words) <= LETTER_LANDSCAPE[0] - margin_pt + 0.5
    assert min(float(w[0]) for w in words) >= margin_pt - 0.5
    texts = [w[4] for w in words]
    for heading in ("Level", "Symbol", "Strike", "Qty", "NAV", "Requirement", "Minimum", "+5"):
        assert heading in texts, heading
