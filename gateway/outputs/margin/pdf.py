"""The PDF exports of a margin report (fpdf2), US Letter landscape: Detail and Summary.

Both start with the P&L set used, the generation time, the record counts and the statement that
the results are hypothetical, and end with the problems list; every page is numbered. Tables are
drawn cell by cell with fpdf2's ``text()``; a value wider than its column wraps (nothing is cut
off, a long value makes a taller row) and the headings repeat on each page.

* Detail: per account, every level's row from the results CSV in order (portfolio group, product
  group, class group, basket, contract), each identifiable (type, symbol, put/call, strike, series
  date, quantity), with NAV, Requirement and Minimum and the ten P&L points; the account's Net
  row; then the firm rows. Requirement is shown on every Total row of a class group, product
  group, portfolio group, account and firm: for a group inside a larger unit it is the group's
  own figure (its largest loss or its minimum, whichever is larger), as in the calculator's
  results screen; the account total is the sum of its stand-alone units only.
* Summary: accounts and firms, then each account's stand-alone units (no contracts).

Amounts are whole dollars, requirements negative, like the terminal table. A PDF is for a
person to read, and a Detail row takes about 0.3 ms to draw (a 100,000-position file has some
200,000 rows: 4,000 pages, a minute), so a large file stops the Detail after
``PDF_DETAIL_ROW_LIMIT`` rows, the Summary after ``PDF_SUMMARY_ROW_LIMIT`` accounts and units and
both after ``PDF_PROBLEM_LIMIT`` problems, each saying so and pointing to the CSV file that has
everything. With these limits both PDFs of any file take about half a second.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from engine.pmc.margin import LEVEL_PORTFOLIO_GROUP, LEVEL_PRODUCT_GROUP
from engine.pmc.report import MarginReport
from engine.pmc.theo.model import PNL_COLUMNS, POINT_LABELS
from gateway.outputs.margin.data import RESULT_COLUMNS, firm_result_rows
from gateway.outputs.margin.detail_csv import iter_result_rows
from gateway.outputs.margin.table import format_requirement, format_whole

PDF_DETAIL_ROW_LIMIT = 1000  # beyond this the PDF points to results.csv
PDF_SUMMARY_ROW_LIMIT = 1000  # accounts, units; beyond this the PDF points to summary.csv
PDF_PROBLEM_LIMIT = 500  # beyond this the PDF points to errors.csv
PARTS = ("detail", "summary")
HYPOTHETICAL = (
    "Results are hypothetical: they are computed from the positions given and the theoretical "
    "P&L set named above, and are not a margin call or a statement of any account."
)
LEVEL_NAMES = {
    "account": "Account",
    "portfolio_group": "Port Grp",
    "product_group": "Prod Grp",
    "class_group": "Class Grp",
    "basket": "Basket",
    "contract": "Contract",
    "firm": "Firm",
}

# Detail columns: heading, width (mm); the ten points share what is left of the 259 mm line
DETAIL_COLUMNS: tuple[tuple[str, float], ...] = (
    ("Level", 12.0),
    ("Port Grp", 11.0),
    ("Prod Grp", 9.0),
    ("Class Grp", 11.0),
    ("Bskt", 8.0),
    ("Type", 6.0),
    ("Symbol", 11.0),
    ("C/P", 5.0),
    ("Strike", 11.0),
    ("Ser/Ctr Date", 14.0),
    ("Qty", 10.0),
    ("Row", 9.0),
    ("NAV", 14.0),
    ("Requirement", 14.0),
    ("Minimum", 12.0),
)
LINE_WIDTH_MM = 279.4 - 2 * 10.0 - 0.01  # the effective page width, rounding kept inside


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _amount(text: str) -> str:
    return format_whole(float(text)) if text else ""


def _reqt(text: str) -> str:
    return format_requirement(float(text)) if text else ""


class _Pdf:
    """An FPDF document with the report's header lines and numbered pages."""

    def __init__(self, title: str) -> None:
        from fpdf import FPDF

        class Doc(FPDF):  # type: ignore[misc]
            def footer(self) -> None:
                self.set_y(-10)
                self.set_font("Helvetica", "", 7)
                self.cell(0, 5, f"{title} - page {self.page_no()}/{{nb}}", align="C")

        self.doc = Doc(orientation="L", unit="mm", format="Letter")
        self.doc.set_margins(10, 10, 10)
        self.doc.set_auto_page_break(True, margin=14)
        self.doc.set_title(title)
        self.doc.alias_nb_pages()
        self.doc.add_page()

    def text(self, text: str, size: float = 8, style: str = "") -> None:
        self.doc.set_font("Helvetica", style, size)
        self.doc.multi_cell(0, size * 0.5, _latin(text), new_x="LMARGIN", new_y="NEXT")

    def table(
        self,
        headings: Sequence[str],
        rows: Sequence[tuple[Sequence[str], bool]],
        widths: Sequence[float],
        *,
        size: float = 6.0,
        right_from: int = 0,
    ) -> None:
        """A table of (cells, bold) rows; columns from ``right_from`` on align right.

        Drawn with ``text()`` and ``line()`` (fpdf2's own table layout costs about 0.2 ms a
        cell, this about 0.02): a value wider than its column wraps onto more lines and makes
        the row taller, so nothing is cut off; the headings repeat on every page.
        """
        doc = self.doc
        pad = 0.6
        line_h = size * 0.45
        left = doc.l_margin
        total = min(sum(widths), doc.epw)
        starts = [left]
        for w in widths[:-1]:
            starts.append(starts[-1] + w)
        right_aligned = [bool(right_from) and j >= right_from for j in range(len(widths))]

        def draw(cells: Sequence[str], style: str, fill: bool) -> None:
            doc.set_font("Helvetica", style, size)
            lines = [self._wrap(_latin(c), w - 2 * pad) for c, w in zip(cells, widths, strict=True)]
            height = max(len(cl) for cl in lines) * line_h + 2 * pad
            if doc.get_y() + height > doc.page_break_trigger and not fill:
                doc.add_page()
                draw(headings, "B", True)
                doc.set_font("Helvetica", style, size)
            top = doc.get_y()
            if fill:
                doc.set_fill_color(225, 225, 225)
                doc.rect(left, top, total, height, style="F")
            for j, cell_lines in enumerate(lines):
                for k, text in enumerate(cell_lines):
                    if not text:
                        continue
                    if right_aligned[j]:
                        x = starts[j] + widths[j] - pad - self._width(text)
                    else:
                        x = starts[j] + pad
                    doc.text(x, top + pad + (k + 0.78) * line_h, text)
            doc.line(left, top + height, left + total, top + height)
            doc.set_y(top + height)

        doc.set_draw_color(160, 160, 160)
        doc.set_line_width(0.1)
        draw(headings, "B", True)
        for cells, strong in rows:
            draw(cells, "B" if strong else "", False)
        doc.set_font("Helvetica", "", size)
        doc.ln(2)

    def _width(self, text: str) -> float:
        """The width of ``text`` in the current core font (its metrics: what
        ``get_string_width`` computes, without its per-call text shaping)."""
        doc = self.doc
        widths = doc.current_font.cw
        return float(doc.font_size * sum(widths.get(c, 500) for c in text) / 1000)

    def _wrap(self, text: str, width: float) -> list[str]:
        """``text`` in lines no wider than ``width`` (at spaces when it can, else anywhere)."""
        if not text or self._width(text) <= width:
            return [text]
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            candidate = f"{current} {word}" if current else word
            if self._width(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = ""
            for ch in word:  # a word wider than the column: cut it where it must be
                if current and self._width(current + ch) > width:
                    lines.append(current)
                    current = ""
                current += ch
        lines.append(current)
        return lines

    def output(self) -> bytes:
        return bytes(self.doc.output())


def _heading(pdf: _Pdf, report: MarginReport, title: str, generated_at: dt.datetime) -> None:
    c = report.counts
    pdf.text(title, 13, "B")
    pdf.text(
        f"P&L set {report.theo_date} ({report.theo_name})    generated "
        f"{generated_at.astimezone(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}"
    )
    pdf.text(
        f"Records: {c.accepted} accepted, {c.rejected} rejected, {c.invalid_series} invalid "
        f"series, {c.warnings} warnings, {c.total} total. Amounts in USD, whole dollars; "
        "requirements shown negative."
    )
    pdf.text(HYPOTHETICAL, 8, "I")
    pdf.doc.ln(1)


def _summary_tables(pdf: _Pdf, report: MarginReport) -> None:
    r = report.result
    rows: list[tuple[Sequence[str], bool]] = []
    n_accounts = r.account_firm.shape[0]
    for a in range(min(n_accounts, PDF_SUMMARY_ROW_LIMIT)):
        rows.append(
            (
                [
                    str(r.account_firm[a]),
                    str(r.account_id[a]),
                    str(r.account_type[a]),
                    format_whole(float(r.account_nav[a])),
                    format_requirement(float(r.account_risk[a])),
                    format_requirement(float(r.account_minimum[a])),
                    format_requirement(float(r.account_requirement[a])),
                ],
                False,
            )
        )
    for f in range(r.firm_ids.shape[0]):
        rows.append(
            (
                [
                    str(r.firm_ids[f]),
                    "Firm total",
                    "",
                    format_whole(float(r.firm_nav[f])),
                    format_requirement(float(r.firm_risk[f])),
                    format_requirement(float(r.firm_minimum[f])),
                    format_requirement(float(r.firm_requirement[f])),
                ],
                True,
            )
        )
    pdf.text("Accounts and firms", 10, "B")
    pdf.table(
        ["Clrng Firm", "Account ID", "Acct Type", "NAV", "Risk", "Minimum", "Requirement"],
        rows,
        [24, 40, 18, 34, 34, 34, 34],
        size=7,
        right_from=3,
    )
    if n_accounts > PDF_SUMMARY_ROW_LIMIT:
        pdf.text(
            f"{n_accounts - PDF_SUMMARY_ROW_LIMIT:,} more accounts: every account is in the "
            "summary CSV (the firm rows above include them).",
            8,
            "I",
        )


def _problems(pdf: _Pdf, report: MarginReport) -> None:
    pdf.text(f"Problems ({len(report.problems)})", 10, "B")
    if not report.problems:
        pdf.text("None: every record was accepted.")
        return
    rows: list[tuple[Sequence[str], bool]] = [
        ([str(p.line), p.kind, p.reason, p.field or "", p.value or "", p.message], False)
        for p in report.problems[:PDF_PROBLEM_LIMIT]
    ]
    pdf.table(
        ["Line", "Kind", "Reason", "Field", "Value", "Message"],
        rows,
        [12, 22, 34, 34, 30, LINE_WIDTH_MM - 132],
        size=6.5,
    )
    if len(report.problems) > PDF_PROBLEM_LIMIT:
        pdf.text(
            f"{len(report.problems) - PDF_PROBLEM_LIMIT:,} more problems: every one is in the "
            "errors CSV.",
            8,
            "I",
        )


def _own_requirement(row: dict[str, str]) -> str:
    """A Total row's requirement: the unit's when it stands alone, else the group's own."""
    if row["requirement"]:
        return row["requirement"]
    if row["row"] != "Total" or row["level"] in ("contract", "basket"):
        return ""
    losses = [float(row[c]) for c in PNL_COLUMNS if row[c]]
    worst = max([0.0, *(-v for v in losses)])
    minimum = float(row["minimum"]) if row["minimum"] else 0.0
    return f"{max(worst, minimum):.2f}"


def _detail_cells(row: dict[str, str]) -> list[str]:
    level = row["level"]
    contract = level == "contract"
    return [
        LEVEL_NAMES.get(level, level),
        row["portfolio_group"],
        row["product_group"],
        row["class_group"],
        row["basket_id"],
        row["security_type"] if contract else "",
        row["symbol"] if contract else "",
        row["put_call"],
        row["strike"],
        row["series_date"],
        row["quantity"],
        row["row"],
        _amount(row["nav"]),
        _reqt(_own_requirement(row)),
        _reqt(row["minimum"]),
        *[_amount(row[c]) for c in PNL_COLUMNS],
    ]


def detail_pdf(report: MarginReport, generated_at: dt.datetime | None = None) -> bytes:
    """The Detail export: every level of every account (see the module docstring)."""
    at = generated_at or dt.datetime.now(dt.UTC)
    pdf = _Pdf("Portfolio margin - detail")
    _heading(pdf, report, "Portfolio margin results - detail", at)
    _summary_tables(pdf, report)
    point_width = (LINE_WIDTH_MM - sum(w for _, w in DETAIL_COLUMNS)) / len(POINT_LABELS)
    headings = [h for h, _ in DETAIL_COLUMNS] + list(POINT_LABELS)
    widths = [w for _, w in DETAIL_COLUMNS] + [point_width] * len(POINT_LABELS)
    right_from = [h for h, _ in DETAIL_COLUMNS].index("NAV")
    block: list[tuple[Sequence[str], bool]] = []
    title = ""
    emitted = 0
    firm_rows: list[tuple[Sequence[str], bool]] = []

    def flush() -> None:
        if block:
            pdf.text(title, 9, "B")
            pdf.table(headings, block, widths, size=5.5, right_from=right_from)
            block.clear()

    stopped = False
    for values in iter_result_rows(report):  # made a block at a time: the limit stops it
        row: dict[str, Any] = dict(zip(RESULT_COLUMNS, values, strict=True))
        level = row["level"]
        if level == "firm" or stopped:
            break
        if level == "account":
            flush()
            title = f"Account {row['firm']} / {row['account'] or '-'} / {row['account_type']}"
            account_row = _detail_cells(row)
            account_row[0] = "Account Net"
            block.append((account_row, True))
            continue
        emitted += 1
        if emitted > PDF_DETAIL_ROW_LIMIT:
            stopped = True
            break
        block.append((_detail_cells(row), row["row"] == "Total" and level != "contract"))
    flush()
    for values in firm_result_rows(report):
        firm_rows.append((_detail_cells(dict(zip(RESULT_COLUMNS, values, strict=True))), True))
    if stopped:
        pdf.text(
            f"Detail stops after {PDF_DETAIL_ROW_LIMIT:,} rows: every level is in the results CSV.",
            8,
            "I",
        )
    if firm_rows:
        title = "Firms"
        block.extend(firm_rows)
        flush()
    _problems(pdf, report)
    return pdf.output()


def summary_pdf(report: MarginReport, generated_at: dt.datetime | None = None) -> bytes:
    """The Summary export: accounts, firms and each account's stand-alone units."""
    at = generated_at or dt.datetime.now(dt.UTC)
    r = report.result
    pdf = _Pdf("Portfolio margin - summary")
    _heading(pdf, report, "Portfolio margin results - summary", at)
    _summary_tables(pdf, report)
    account_units = r.children.account_units  # the one member list it needs
    rows: list[tuple[Sequence[str], bool]] = []
    shown_rows = 0  # rows past the limit are counted, not made
    n_rows = int(r.unit_level.shape[0]) + int(r.account_firm.shape[0])
    for a in range(r.account_firm.shape[0]):
        if shown_rows >= PDF_SUMMARY_ROW_LIMIT:
            break
        who = [str(r.account_firm[a]), str(r.account_id[a]), str(r.account_type[a])]
        shown_rows += len(account_units[a]) + 1
        for u in account_units[a]:
            level = int(r.unit_level[u])
            ref = int(r.unit_ref[u])
            basket = ""
            if level == LEVEL_PORTFOLIO_GROUP:
                names = [str(r.port_id[ref]), "", ""]
            elif level == LEVEL_PRODUCT_GROUP:
                names = ["", str(r.pg_id[ref]), ""]
            else:
                names = ["", str(r.pg_id[r.cg_pg[ref]]), str(r.cg_id[ref])]
                basket = str(r.cg_basket[ref])
            rows.append(
                (
                    [
                        *who,
                        *names,
                        basket,
                        format_whole(float(r.unit_nav[u])),
                        format_requirement(float(r.unit_risk[u])),
                        format_requirement(float(r.unit_minimum[u])),
                        format_requirement(float(r.unit_requirement[u])),
                    ],
                    False,
                )
            )
        rows.append(
            (
                [
                    *who,
                    "Net",
                    "",
                    "",
                    "",
                    format_whole(float(r.account_nav[a])),
                    format_requirement(float(r.account_risk[a])),
                    format_requirement(float(r.account_minimum[a])),
                    format_requirement(float(r.account_requirement[a])),
                ],
                True,
            )
        )
    more = max(0, n_rows - PDF_SUMMARY_ROW_LIMIT)
    rows = rows[:PDF_SUMMARY_ROW_LIMIT]
    pdf.text("Stand-alone units of each account", 10, "B")
    pdf.table(
        [
            "Clrng Firm",
            "Account ID",
            "Type",
            "Port Grp",
            "Prod Grp",
            "Class Grp",
            "Bskt",
            "NAV",
            "Risk",
            "Minimum",
            "Requirement",
        ],
        rows,
        [20, 30, 12, 22, 20, 24, 14, 30, 29, 29, 29.4],
        size=7,
        right_from=7,
    )
    if more:
        pdf.text(f"{more:,} more rows: every unit is in the summary CSV.", 8, "I")
    baskets = [
        (
            [
                str(r.account_firm[int(r.basket_account[k])]),
                str(r.account_id[int(r.basket_account[k])]),
                str(r.basket_id[k]),
                str(r.cg_id[int(r.basket_cg[k])]),
                format_whole(float(r.basket_nav[k])),
                format_requirement(float(r.basket_minimum[k])),
            ],
            False,
        )
        for k in range(min(r.basket_id.shape[0], PDF_SUMMARY_ROW_LIMIT))
    ]
    if baskets:
        pdf.text("Baskets", 10, "B")
        pdf.table(
            ["Clrng Firm", "Account ID", "Basket ID", "Class Grp", "NAV", "Minimum"],
            baskets,
            [24, 40, 30, 30, 40, 40],
            size=7,
            right_from=4,
        )
    _problems(pdf, report)
    return pdf.output()


def report_pdf(
    report: MarginReport, *, part: str = "detail", generated_at: dt.datetime | None = None
) -> bytes:
    """The Detail (default) or Summary PDF export."""
    if part not in PARTS:
        raise ValueError(f"part {part!r} is not detail or summary")
    if part == "summary":
        return summary_pdf(report, generated_at)
    return detail_pdf(report, generated_at)
