"""The PDF of a margin report (fpdf2): counts, account and firm summary, then per account its
units, product groups and class groups (contracts for small files), in the table's whole-dollar,
negative-requirement style. Long reports stop after a detail row limit: the results CSV has all.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.pmc.report import MarginReport
from engine.pmc.theo.model import POINT_LABELS
from gateway.outputs.margin.data import results_rows
from gateway.outputs.margin.table import format_requirement, format_whole

PDF_CONTRACT_LIMIT = 2_000
PDF_DETAIL_ROW_LIMIT = 5_000  # beyond this the PDF points to results.csv


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def report_pdf(report: MarginReport) -> bytes:
    """A PDF of the results: counts, account summary, and per account its units, product
    groups and class groups with the Requirement on unit, account and firm rows (contracts
    too when the file has at most ``PDF_CONTRACT_LIMIT`` of them; at most
    ``PDF_DETAIL_ROW_LIMIT`` detail rows, the results CSV has everything)."""
    from fpdf import FPDF

    r = report.result
    c = report.counts
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.set_title("Portfolio margin results")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, "Portfolio margin results", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(
        0,
        6,
        _latin(
            f"P&L set {report.theo_date} - records: {c.accepted} accepted, {c.rejected} "
            f"rejected, {c.invalid_series} invalid series, {c.warnings} warnings, {c.total} total"
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)

    def line(cells: Sequence[str], widths: Sequence[float], bold: bool = False) -> None:
        pdf.set_font("Helvetica", "B" if bold else "", 7)
        for text, w in zip(cells, widths, strict=True):
            pdf.cell(w, 4.5, _latin(text)[:40], border=0, align="R" if w < 25 else "L")
        pdf.ln(4.5)

    widths = [22, 28, 10, 30, 30, 30, 30]
    line(["Clrng Firm", "Acct ID", "Type", "NAV", "Risk", "Minimum", "Requirement"], widths, True)
    for a in range(r.account_firm.shape[0]):
        line(
            [
                str(r.account_firm[a]),
                str(r.account_id[a]),
                str(r.account_type[a]),
                format_whole(float(r.account_nav[a])),
                format_requirement(float(r.account_risk[a])),
                format_requirement(float(r.account_minimum[a])),
                format_requirement(float(r.account_requirement[a])),
            ],
            widths,
        )
    for f in range(r.firm_ids.shape[0]):
        line(
            [
                str(r.firm_ids[f]),
                "Firm total",
                "",
                format_whole(float(r.firm_nav[f])),
                format_requirement(float(r.firm_risk[f])),
                format_requirement(float(r.firm_minimum[f])),
                format_requirement(float(r.firm_requirement[f])),
            ],
            widths,
            True,
        )
    pdf.ln(3)
    detail_widths = [18, 16, 18, 18, 12, 20, 20, 18] + [15.0] * 10
    header = ["Level", "Port Grp", "Prod Grp", "Class Grp", "Row", "NAV", "Requirement", "Minimum"]
    with_contracts = len(r.resolved) <= PDF_CONTRACT_LIMIT
    emitted = 0
    for row in results_rows(report):
        level = row[1]
        if level == "firm" or level == "basket" or (level == "contract" and not with_contracts):
            continue
        emitted += 1
        if emitted > PDF_DETAIL_ROW_LIMIT:
            pdf.ln(3)
            pdf.set_font("Helvetica", "I", 8)
            pdf.cell(
                0,
                5,
                f"Detail stops after {PDF_DETAIL_ROW_LIMIT:,} rows: every level is in the "
                "results CSV.",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            break
        if level == "account":
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 9)
            pdf.cell(
                0,
                6,
                _latin(f"Account {row[3]} / {row[4] or '-'} / {row[5]}"),
                new_x="LMARGIN",
                new_y="NEXT",
            )
            line(header + list(POINT_LABELS), detail_widths, True)
        req = row[20]
        cells = [
            level.replace("_group", ""),
            row[6],
            row[7],
            row[8] if level != "contract" else row[10],
            row[2],
            format_whole(float(row[17])) if row[17] else "",
            format_requirement(float(req)) if req else "",
            format_requirement(float(row[19])) if row[19] else "",
        ]
        cells += [format_whole(float(v)) if v else "" for v in row[21:]]
        line(cells, detail_widths, bold=bool(req))
    return bytes(pdf.output())
