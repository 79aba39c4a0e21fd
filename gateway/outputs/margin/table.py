"""The terminal view of a margin report (rich): account summary, the requirement of each
stand-alone unit of each account, and the problems, in 80 columns; with ``wide`` the portfolio and
product group rows of each account in the calculator's results style with all ten P&L points
(about 160 columns). Amounts are whole dollars, requirements shown negative (the PDF shows them
alike).
"""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console
from rich.table import Table

from engine.pmc.margin import (
    LEVEL_CLASS_GROUP,
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
)
from engine.pmc.report import MarginReport
from engine.pmc.theo.model import POINT_LABELS
from gateway.outputs.margin.data import ERROR_COLUMNS

TABLE_ACCOUNT_LIMIT = 10
TABLE_PROBLEM_LIMIT = 20
TABLE_UNIT_LIMIT = 30  # stand-alone units shown per account in the table
PLAIN_WIDTH = 220  # width of the wide view
NARROW_WIDTH = 80


def format_whole(value: float) -> str:
    return f"{value:,.0f}"


def format_requirement(value: float) -> str:
    """A requirement as results screens show it: negative, whole dollars."""
    return format_whole(-value) if value else "0"


def render_table(report: MarginReport, console: Console) -> None:
    """Account summary, the Port/Prod Grp rows of each account, problems."""
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
            format_whole(float(r.account_nav[a])),
            format_requirement(float(r.account_risk[a])),
            format_requirement(float(r.account_minimum[a])),
            format_requirement(float(r.account_requirement[a])),
        )
    for f in range(r.firm_ids.shape[0]):
        summary.add_row(
            "",
            str(r.firm_ids[f]),
            "Reqt",
            "",
            format_whole(float(r.firm_nav[f])),
            format_requirement(float(r.firm_risk[f])),
            format_requirement(float(r.firm_minimum[f])),
            format_requirement(float(r.firm_requirement[f])),
            style="bold",
        )
    console.print(summary)
    tree = r.children
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
            return [format_whole(float(v)) for v in values]

        units = tree.account_units[a]
        for u in units[:TABLE_UNIT_LIMIT]:
            level = int(r.unit_level[u])
            ref = int(r.unit_ref[u])
            req = format_requirement(float(r.unit_requirement[u]))
            if level == LEVEL_PORTFOLIO_GROUP:
                port = str(r.port_id[ref])
                for p in tree.port_product_groups[ref]:
                    pg = str(r.pg_id[p])
                    t.add_row(port, pg, "", "Gains", "", "", "", *vec(r.pg_gains[p]))
                    t.add_row(port, pg, "", "Losses", "", "", "", *vec(r.pg_losses[p]))
                    t.add_row(
                        port,
                        pg,
                        "",
                        "Total",
                        format_whole(float(r.pg_nav[p])),
                        "",
                        format_requirement(float(r.pg_minimum[p])),
                        *vec(r.pg_total[p]),
                    )
                t.add_row(port, "", "", "Gains", "", "", "", *vec(r.port_gains[ref]))
                t.add_row(port, "", "", "Losses", "", "", "", *vec(r.port_losses[ref]))
                t.add_row(
                    port,
                    "",
                    "",
                    "Total",
                    format_whole(float(r.port_nav[ref])),
                    req,
                    format_requirement(float(r.unit_minimum[u])),
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
                    format_whole(float(r.pg_nav[ref])),
                    req,
                    format_requirement(float(r.unit_minimum[u])),
                    *vec(r.pg_total[ref]),
                    style="bold",
                )
            elif level == LEVEL_CLASS_GROUP:
                t.add_row(
                    "",
                    str(r.pg_id[r.cg_pg[ref]]),
                    str(r.cg_id[ref]),
                    "Total",
                    format_whole(float(r.cg_nav[ref])),
                    req,
                    format_requirement(float(r.unit_minimum[u])),
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
            format_whole(float(r.account_nav[a])),
            format_requirement(float(r.account_requirement[a])),
            format_requirement(float(r.account_minimum[a])),
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


def render_compact(report: MarginReport, console: Console) -> None:
    """The 80-column view: summary, each account's units (no P&L vectors), problems."""
    r = report.result
    c = report.counts
    console.print(
        f"Portfolio margin, P&L set {report.theo_date}. Records: {c.accepted} accepted, "
        f"{c.rejected} rejected, {c.invalid_series} invalid series, {c.warnings} warnings, "
        f"{c.total} total."
    )
    summary = Table(title="Account summary", title_justify="left", padding=(0, 1, 0, 0))
    for name in ("Firm", "Account", "Type", "NAV", "Risk", "Minimum", "Requirement"):
        right = name in ("NAV", "Risk", "Minimum", "Requirement")
        summary.add_column(name, justify="right" if right else "left", overflow="fold")
    n_acct = r.account_firm.shape[0]
    for a in range(n_acct):
        summary.add_row(
            str(r.account_firm[a]),
            str(r.account_id[a]),
            str(r.account_type[a]),
            format_whole(float(r.account_nav[a])),
            format_requirement(float(r.account_risk[a])),
            format_requirement(float(r.account_minimum[a])),
            format_requirement(float(r.account_requirement[a])),
        )
    for f in range(r.firm_ids.shape[0]):
        summary.add_row(
            str(r.firm_ids[f]),
            "firm total",
            "",
            format_whole(float(r.firm_nav[f])),
            format_requirement(float(r.firm_risk[f])),
            format_requirement(float(r.firm_minimum[f])),
            format_requirement(float(r.firm_requirement[f])),
            style="bold",
        )
    console.print(summary)
    tree = r.children
    for a in range(min(n_acct, TABLE_ACCOUNT_LIMIT)):
        t = Table(
            title=f"{r.account_firm[a]} / {r.account_id[a] or '-'} / {r.account_type[a]}: units",
            title_justify="left",
            padding=(0, 1, 0, 0),
        )
        for name in ("Port Grp", "Prod Grp", "Class Grp", "NAV", "Requirement", "Minimum", "At"):
            right = name in ("NAV", "Requirement", "Minimum")
            t.add_column(name, justify="right" if right else "left", overflow="fold")
        units = tree.account_units[a]
        for u in units[:TABLE_UNIT_LIMIT]:
            level = int(r.unit_level[u])
            ref = int(r.unit_ref[u])
            total = r.unit_total[u]
            worst = int(np.argmin(total))
            at = POINT_LABELS[worst] if float(total[worst]) < 0 else ""
            if level == LEVEL_PORTFOLIO_GROUP:
                names = (str(r.port_id[ref]), "", "")
            elif level == LEVEL_PRODUCT_GROUP:
                names = ("", str(r.pg_id[ref]), "")
            else:
                names = ("", str(r.pg_id[r.cg_pg[ref]]), str(r.cg_id[ref]))
            t.add_row(
                *names,
                format_whole(float(r.unit_nav[u])),
                format_requirement(float(r.unit_requirement[u])),
                format_requirement(float(r.unit_minimum[u])),
                at,
            )
        if len(units) > TABLE_UNIT_LIMIT:
            t.add_row("", "", f"{len(units) - TABLE_UNIT_LIMIT} more", "", "", "", "")
        t.add_row(
            "Net",
            "",
            "",
            format_whole(float(r.account_nav[a])),
            format_requirement(float(r.account_requirement[a])),
            format_requirement(float(r.account_minimum[a])),
            "",
            style="bold",
        )
        console.print(t)
    if n_acct > TABLE_ACCOUNT_LIMIT:
        console.print(f"{n_acct - TABLE_ACCOUNT_LIMIT} more accounts: use --format csv for all.")
    console.print("At: the point of the largest loss. --wide shows every point of every group.")
    if report.problems:
        pt = Table(title="Problems", title_justify="left", padding=(0, 1, 0, 0))
        for name in ("Line", "Kind", "Reason", "Message"):
            pt.add_column(name, overflow="fold")
        for prob in report.problems[:TABLE_PROBLEM_LIMIT]:
            pt.add_row(str(prob.line), prob.kind, prob.reason, prob.message)
        console.print(pt)
        if len(report.problems) > TABLE_PROBLEM_LIMIT:
            console.print(f"{len(report.problems) - TABLE_PROBLEM_LIMIT} more problems")


def table_text(report: MarginReport, *, wide: bool = False) -> str:
    """The table view as plain text: 80 columns, or the wide view with every P&L point."""
    buf = io.StringIO()
    width = PLAIN_WIDTH if wide else NARROW_WIDTH
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    if wide:
        render_table(report, console)
    else:
        render_compact(report, console)
    return buf.getvalue()
