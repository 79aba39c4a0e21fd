"""Renderings of a margin report: results/summary/errors CSV, the JSON of SPEC §7.5, a rich table
for terminals and a PDF (fpdf2).

Everything here takes an ``engine.pmc.margin.MarginReport`` and returns bytes or writes to a rich
console; nothing here computes margin. Requirements, risks and minimums are positive numbers in
CSV and JSON (column ``requirement``); the table and the PDF show them negative, as the seed's
results screens do. Amounts are rounded to cents in CSV/JSON and to dollars in the table/PDF.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from engine.pmc.margin import (
    LEVEL_CLASS_GROUP,
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
    MarginReport,
    MarginResult,
)
from engine.pmc.positions import PositionProblem
from engine.pmc.theo import PNL_COLUMNS, POINT_LABELS

RESULT_COLUMNS = (
    "theo_date",
    "level",
    "row",
    "firm",
    "account",
    "account_type",
    "portfolio_group",
    "product_group",
    "class_group",
    "basket_id",
    "symbol",
    "security_type",
    "put_call",
    "series_date",
    "strike",
    "quantity",
    "offset_pct",
    "nav",
    "risk",
    "minimum",
    "requirement",
    *PNL_COLUMNS,
)
SUMMARY_COLUMNS = (
    "theo_date",
    "level",
    "firm",
    "account",
    "account_type",
    "nav",
    "risk",
    "minimum",
    "requirement",
)
ERROR_COLUMNS = ("line", "kind", "reason", "field", "value", "message")
PDF_CONTRACT_LIMIT = 2_000
PDF_DETAIL_ROW_LIMIT = 5_000  # beyond this the PDF points to results.csv
TABLE_ACCOUNT_LIMIT = 10
TABLE_PROBLEM_LIMIT = 20
TABLE_UNIT_LIMIT = 30  # stand-alone units shown per account in the table
JSON_INDENT_LIMIT = 10_000  # positions up to which the JSON is indented
PLAIN_WIDTH = 220  # table width when not on a terminal (files, pipes)


def _money(value: float) -> str:
    return f"{value:.2f}"


def _vec(values: np.ndarray) -> list[str]:
    return [f"{v:.2f}" for v in values.tolist()]


def _opt(value: float) -> str:
    return "" if np.isnan(value) else f"{value:g}"


class _Tree:
    """Parent -> children lists of one result (shared with the JSON through the result)."""

    def __init__(self, r: MarginResult) -> None:
        c = r.children
        self.port_pgs = c.port_product_groups
        self.pg_cgs = c.pg_class_groups
        self.cg_pos = c.cg_contracts
        self.cg_baskets = c.cg_baskets
        self.acct_units = c.account_units
        self.acct_pgs = c.account_product_groups


def results_rows(report: MarginReport) -> Iterator[list[str]]:
    """Rows of ``<stem>.results.csv`` (without the header), account by account, firms last."""
    r = report.result
    tree = _Tree(r)
    b = r.resolved.batch
    blank_vec = [""] * len(PNL_COLUMNS)

    def row(
        level: str,
        kind: str,
        a: int,
        *,
        port: str = "",
        pg: str = "",
        cg: str = "",
        basket: str = "",
        contract: int | None = None,
        offset: str = "",
        nav: float | None = None,
        risk: float | None = None,
        minimum: float | None = None,
        requirement: float | None = None,
        vec: list[str] | None = None,
    ) -> list[str]:
        out = [
            report.theo_date,
            level,
            kind,
            str(r.account_firm[a]),
            str(r.account_id[a]),
            str(r.account_type[a]),
            port,
            pg,
            cg,
            basket,
        ]
        if contract is None:
            out += ["", "", "", "", "", ""]
        else:
            i = contract
            out += [
                str(b.symbol[i]),
                str(b.security_type[i]),
                str(b.put_call[i]),
                str(b.series_date[i]),
                f"{b.strike[i]:g}" if b.strike[i] else "",
                f"{b.quantity[i]:g}",
            ]
        out += [
            offset,
            "" if nav is None else _money(nav),
            "" if risk is None else _money(risk),
            "" if minimum is None else _money(minimum),
            "" if requirement is None else _money(requirement),
        ]
        out += vec if vec is not None else blank_vec
        return out

    def cg_rows(a: int, g: int, port: str, pg: str, unit: int) -> Iterator[list[str]]:
        cg = str(r.cg_id[g])
        basket = str(r.cg_basket[g])
        alone = unit >= 0
        yield row(
            "class_group",
            "Total",
            a,
            port=port,
            pg=pg,
            cg=cg,
            basket=basket,
            nav=float(r.cg_nav[g]),
            risk=float(r.unit_risk[unit]) if alone else None,
            minimum=float(r.cg_minimum[g]),
            requirement=float(r.unit_requirement[unit]) if alone else None,
            vec=_vec(r.cg_total[g]),
        )
        for k in tree.cg_baskets[g]:
            yield row(
                "basket",
                "Total",
                a,
                port=port,
                pg=pg,
                cg=cg,
                basket=str(r.basket_id[k]),
                nav=float(r.basket_nav[k]),
                minimum=float(r.basket_minimum[k]),
                vec=_vec(r.basket_pnl[k]),
            )
        for i in tree.cg_pos[g]:
            yield row(
                "contract",
                "Total",
                a,
                port=port,
                pg=pg,
                cg=cg,
                basket=str(b.basket_id[i]),
                contract=i,
                nav=float(r.pos_nav[i]),
                minimum=float(r.pos_minimum[i]),
                vec=_vec(r.pos_pnl[i]),
            )

    def pg_rows(a: int, p: int, port: str, unit: int) -> Iterator[list[str]]:
        pg = str(r.pg_id[p])
        alone = unit >= 0
        off = _opt(float(r.pg_offset[p]))
        for kind, vec in (("Gains", r.pg_gains[p]), ("Losses", r.pg_losses[p])):
            yield row("product_group", kind, a, port=port, pg=pg, offset=off, vec=_vec(vec))
        yield row(
            "product_group",
            "Total",
            a,
            port=port,
            pg=pg,
            offset=off,
            nav=float(r.pg_nav[p]),
            risk=float(r.unit_risk[unit]) if alone else None,
            minimum=float(r.pg_minimum[p]),
            requirement=float(r.unit_requirement[unit]) if alone else None,
            vec=_vec(r.pg_total[p]),
        )
        for g in tree.pg_cgs[p]:
            yield from cg_rows(a, g, port, pg, int(r.cg_unit[g]))

    for a in range(r.account_firm.shape[0]):
        yield row(
            "account",
            "Total",
            a,
            nav=float(r.account_nav[a]),
            risk=float(r.account_risk[a]),
            minimum=float(r.account_minimum[a]),
            requirement=float(r.account_requirement[a]),
        )
        for u in tree.acct_units[a]:
            level = int(r.unit_level[u])
            ref = int(r.unit_ref[u])
            if level == LEVEL_PORTFOLIO_GROUP:
                port = str(r.port_id[ref])
                off = _opt(float(r.port_offset[ref]))
                for kind, vec in (("Gains", r.port_gains[ref]), ("Losses", r.port_losses[ref])):
                    yield row("portfolio_group", kind, a, port=port, offset=off, vec=_vec(vec))
                yield row(
                    "portfolio_group",
                    "Total",
                    a,
                    port=port,
                    offset=off,
                    nav=float(r.port_nav[ref]),
                    risk=float(r.unit_risk[u]),
                    minimum=float(r.port_minimum[ref]),
                    requirement=float(r.unit_requirement[u]),
                    vec=_vec(r.port_total[ref]),
                )
                for p in tree.port_pgs[ref]:
                    yield from pg_rows(a, p, port, -1)
            elif level == LEVEL_PRODUCT_GROUP:
                yield from pg_rows(a, ref, "", u)
        # product groups without offset: their class groups stand alone
        for p in tree.acct_pgs[a]:
            if not np.isnan(r.pg_offset[p]):
                continue
            pg = str(r.pg_id[p])
            for kind, vec in (("Gains", r.pg_gains[p]), ("Losses", r.pg_losses[p])):
                yield row("product_group", kind, a, pg=pg, vec=_vec(vec))
            yield row(
                "product_group",
                "Total",
                a,
                pg=pg,
                nav=float(r.pg_nav[p]),
                minimum=float(r.pg_minimum[p]),
                vec=_vec(r.pg_total[p]),
            )
            for g in tree.pg_cgs[p]:
                yield from cg_rows(a, g, "", pg, int(r.cg_unit[g]))
    for f in range(r.firm_ids.shape[0]):
        yield [
            report.theo_date,
            "firm",
            "Total",
            str(r.firm_ids[f]),
            *[""] * (RESULT_COLUMNS.index("nav") - RESULT_COLUMNS.index("firm") - 1),
            _money(float(r.firm_nav[f])),
            _money(float(r.firm_risk[f])),
            _money(float(r.firm_minimum[f])),
            _money(float(r.firm_requirement[f])),
            *blank_vec,
        ]


def _csv(
    header: Sequence[str], rows: Iterator[Sequence[object]] | Sequence[Sequence[object]]
) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def results_csv(report: MarginReport) -> bytes:
    """``<stem>.results.csv``: every level, Gains/Losses/Total rows, positive requirements."""
    return _csv(RESULT_COLUMNS, results_rows(report))


def summary_csv(report: MarginReport) -> bytes:
    """``<stem>.summary.csv``: one row per account, then one per firm."""
    r = report.result
    rows: list[list[str]] = []
    for a in range(r.account_firm.shape[0]):
        rows.append(
            [
                report.theo_date,
                "account",
                str(r.account_firm[a]),
                str(r.account_id[a]),
                str(r.account_type[a]),
                _money(float(r.account_nav[a])),
                _money(float(r.account_risk[a])),
                _money(float(r.account_minimum[a])),
                _money(float(r.account_requirement[a])),
            ]
        )
    for f in range(r.firm_ids.shape[0]):
        rows.append(
            [
                report.theo_date,
                "firm",
                str(r.firm_ids[f]),
                "",
                "",
                _money(float(r.firm_nav[f])),
                _money(float(r.firm_risk[f])),
                _money(float(r.firm_minimum[f])),
                _money(float(r.firm_requirement[f])),
            ]
        )
    return _csv(SUMMARY_COLUMNS, rows)


def errors_csv(problems: Sequence[PositionProblem]) -> bytes:
    """``<stem>.errors.csv``: one row per problem (header only when there is none)."""
    return _csv(
        ERROR_COLUMNS,
        [[p.line, p.kind, p.reason, p.field or "", p.value or "", p.message] for p in problems],
    )


def report_document(report: MarginReport) -> dict[str, object]:
    """The JSON document of SPEC §7.5 (the stable machine interface)."""
    r = report.result
    return {
        "theo_date": report.theo_date,
        "counts": report.counts.as_dict(),
        "accounts": [
            {
                "firm": str(r.account_firm[a]),
                "account": str(r.account_id[a]),
                "account_type": str(r.account_type[a]),
                "nav": round(float(r.account_nav[a]), 2),
                "risk": round(float(r.account_risk[a]), 2),
                "minimum": round(float(r.account_minimum[a]), 2),
                "requirement": round(float(r.account_requirement[a]), 2),
                "groups": r.account_groups(a),
            }
            for a in range(r.account_firm.shape[0])
        ],
        "firms": [
            {
                "firm": str(r.firm_ids[f]),
                "nav": round(float(r.firm_nav[f]), 2),
                "requirement": round(float(r.firm_requirement[f]), 2),
            }
            for f in range(r.firm_ids.shape[0])
        ],
        "problems": [p.as_dict() for p in report.problems],
    }


def report_json(report: MarginReport) -> bytes:
    """``report_document`` as UTF-8 JSON with a trailing newline (indented for small files)."""
    indent = 2 if len(report.result.resolved) <= JSON_INDENT_LIMIT else None
    return (json.dumps(report_document(report), indent=indent) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------------
# table (terminal)


def _whole(value: float) -> str:
    return f"{value:,.0f}"


def _neg(value: float) -> str:
    """A requirement as the seed shows it: negative, whole dollars."""
    return _whole(-value) if value else "0"


def render_table(report: MarginReport, console: Console) -> None:
    """Account summary, the Port/Prod Grp rows of each account (Figure 4 style), problems."""
    r = report.result
    c = report.counts
    console.print(
        f"[bold]Portfolio margin[/bold]  P&L set {report.theo_date}   records: "
        f"{c.accepted} accepted, {c.rejected} rejected, {c.invalid_series} invalid series, "
        f"{c.warnings} warnings, {c.total} total"
    )
    summary = Table(title="Account summary", title_justify="left")
    for name in ("#", "Clrng Firm", "Acct ID", "Acct Type", "NAV", "Risk", "Minimum"):
        summary.add_column(
            name, justify="right" if name in ("#", "NAV", "Risk", "Minimum") else "left"
        )
    summary.add_column("Requirement", justify="right")
    n_acct = r.account_firm.shape[0]
    for a in range(n_acct):
        summary.add_row(
            str(a + 1),
            str(r.account_firm[a]),
            str(r.account_id[a]),
            str(r.account_type[a]),
            _whole(float(r.account_nav[a])),
            _neg(float(r.account_risk[a])),
            _neg(float(r.account_minimum[a])),
            _neg(float(r.account_requirement[a])),
        )
    for f in range(r.firm_ids.shape[0]):
        summary.add_row(
            "",
            str(r.firm_ids[f]),
            "Reqt",
            "",
            _whole(float(r.firm_nav[f])),
            _neg(float(r.firm_risk[f])),
            _neg(float(r.firm_minimum[f])),
            _neg(float(r.firm_requirement[f])),
            style="bold",
        )
    console.print(summary)
    tree = _Tree(r)
    for a in range(min(n_acct, TABLE_ACCOUNT_LIMIT)):
        t = Table(
            title=f"{r.account_firm[a]} / {r.account_id[a] or '-'} / {r.account_type[a]}: "
            "portfolio and product groups",
            title_justify="left",
        )
        for name in ("Port Grp", "Prod Grp", "Class Grp", "Row", "NAV", "Requirement", "Minimum"):
            t.add_column(
                name, justify="right" if name in ("NAV", "Requirement", "Minimum") else "left"
            )
        for label in POINT_LABELS:
            t.add_column(label, justify="right")

        def vec(values: np.ndarray) -> list[str]:
            return [_whole(float(v)) for v in values]

        units = tree.acct_units[a]
        for u in units[:TABLE_UNIT_LIMIT]:
            level = int(r.unit_level[u])
            ref = int(r.unit_ref[u])
            req = _neg(float(r.unit_requirement[u]))
            if level == LEVEL_PORTFOLIO_GROUP:
                port = str(r.port_id[ref])
                for p in tree.port_pgs[ref]:
                    pg = str(r.pg_id[p])
                    t.add_row(port, pg, "", "Gains", "", "", "", *vec(r.pg_gains[p]))
                    t.add_row(port, pg, "", "Losses", "", "", "", *vec(r.pg_losses[p]))
                    t.add_row(
                        port,
                        pg,
                        "",
                        "Total",
                        _whole(float(r.pg_nav[p])),
                        "",
                        _neg(float(r.pg_minimum[p])),
                        *vec(r.pg_total[p]),
                    )
                t.add_row(port, "", "", "Gains", "", "", "", *vec(r.port_gains[ref]))
                t.add_row(port, "", "", "Losses", "", "", "", *vec(r.port_losses[ref]))
                t.add_row(
                    port,
                    "",
                    "",
                    "Total",
                    _whole(float(r.port_nav[ref])),
                    req,
                    _neg(float(r.unit_minimum[u])),
                    *vec(r.port_total[ref]),
                    style="bold",
                )
            elif level == LEVEL_PRODUCT_GROUP:
                pg = str(r.pg_id[ref])
                t.add_row("", pg, "", "Gains", "", "", "", *vec(r.pg_gains[ref]))
                t.add_row("", pg, "", "Losses", "", "", "", *vec(r.pg_losses[ref]))
                t.add_row(
                    "",
                    pg,
                    "",
                    "Total",
                    _whole(float(r.pg_nav[ref])),
                    req,
                    _neg(float(r.unit_minimum[u])),
                    *vec(r.pg_total[ref]),
                    style="bold",
                )
            elif level == LEVEL_CLASS_GROUP:
                t.add_row(
                    "",
                    str(r.pg_id[r.cg_pg[ref]]),
                    str(r.cg_id[ref]),
                    "Total",
                    _whole(float(r.cg_nav[ref])),
                    req,
                    _neg(float(r.unit_minimum[u])),
                    *vec(r.cg_total[ref]),
                    style="bold",
                )
        if len(units) > TABLE_UNIT_LIMIT:
            t.add_row("", "", f"... {len(units) - TABLE_UNIT_LIMIT} more units", "")
        t.add_row(
            "Net",
            "",
            "",
            "",
            _whole(float(r.account_nav[a])),
            _neg(float(r.account_requirement[a])),
            _neg(float(r.account_minimum[a])),
            *[""] * len(POINT_LABELS),
            style="bold",
        )
        console.print(t)
    if n_acct > TABLE_ACCOUNT_LIMIT:
        console.print(
            f"... {n_acct - TABLE_ACCOUNT_LIMIT} more accounts (use --format csv for all levels)"
        )
    if report.problems:
        pt = Table(title="Problems", title_justify="left")
        for name in ERROR_COLUMNS:
            pt.add_column(name)
        for prob in report.problems[:TABLE_PROBLEM_LIMIT]:
            pt.add_row(
                str(prob.line),
                prob.kind,
                prob.reason,
                prob.field or "",
                prob.value or "",
                prob.message,
            )
        console.print(pt)
        if len(report.problems) > TABLE_PROBLEM_LIMIT:
            console.print(f"... {len(report.problems) - TABLE_PROBLEM_LIMIT} more problems")


def table_text(report: MarginReport, width: int = PLAIN_WIDTH) -> str:
    """The table view as plain text (for --out with --format table)."""
    buf = io.StringIO()
    render_table(report, Console(file=buf, width=width, color_system=None, force_terminal=False))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# PDF


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
                _whole(float(r.account_nav[a])),
                _neg(float(r.account_risk[a])),
                _neg(float(r.account_minimum[a])),
                _neg(float(r.account_requirement[a])),
            ],
            widths,
        )
    for f in range(r.firm_ids.shape[0]):
        line(
            [
                str(r.firm_ids[f]),
                "Firm total",
                "",
                _whole(float(r.firm_nav[f])),
                _neg(float(r.firm_risk[f])),
                _neg(float(r.firm_minimum[f])),
                _neg(float(r.firm_requirement[f])),
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
            _whole(float(row[17])) if row[17] else "",
            _neg(float(req)) if req else "",
            _neg(float(row[19])) if row[19] else "",
        ]
        cells += [_whole(float(v)) if v else "" for v in row[21:]]
        line(cells, detail_widths, bold=bool(req))
    return bytes(pdf.output())
