"""Renderings of one position file computed under several account types (``margin --as``):
a side-by-side table at 80 columns, CSV (one requirement and NAV column per type) and JSON (the
full report of each type, as ``posgate margin --format json`` gives it, keyed by type)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from engine.pmc.compare import compare_accounts
from engine.pmc.report import MarginReport
from gateway.outputs.margin.data import report_document
from gateway.outputs.margin.table import NARROW_WIDTH, format_requirement, format_whole

TYPE_NAMES = {"C": "CPM (C)", "F": "RBH-BD (F)", "M": "RBH-MM (M)"}


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def comparison_csv(reports: Mapping[str, MarginReport]) -> bytes:
    types = list(reports)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    theo_date = next(iter(reports.values())).theo_date if reports else ""
    w.writerow(
        ["theo_date", "level", "firm", "account"]
        + [f"requirement_{t}" for t in types]
        + [f"nav_{t}" for t in types]
    )
    for row in compare_accounts(reports):
        w.writerow(
            [theo_date, row.level, row.firm, row.account]
            + [_money(row.requirement[t]) for t in types]
            + [_money(row.nav[t]) for t in types]
        )
    return buf.getvalue().encode("utf-8")


def comparison_json(reports: Mapping[str, MarginReport]) -> bytes:
    doc = {
        "theo_date": next(iter(reports.values())).theo_date if reports else "",
        "account_types": list(reports),
        "reports": {t: report_document(r) for t, r in reports.items()},
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def comparison_table(reports: Mapping[str, MarginReport]) -> str:
    types = list(reports)
    first = next(iter(reports.values()))
    t = Table(
        title=f"Requirement by account type, P&L set {first.theo_date} (USD, shown negative)",
        title_justify="left",
        padding=(0, 1, 0, 0),
    )
    t.add_column("Firm", overflow="fold")
    t.add_column("Account", overflow="fold")
    for a in types:
        t.add_column(TYPE_NAMES.get(a, a), justify="right", overflow="fold")
    t.add_column(f"NAV ({types[0]})", justify="right", overflow="fold")
    for row in compare_accounts(reports):
        cells = [
            "" if row.requirement[a] is None else format_requirement(float(row.requirement[a] or 0))
            for a in types
        ]
        nav = row.nav[types[0]]
        t.add_row(
            row.firm,
            row.account if row.level == "account" else "firm total",
            *cells,
            "" if nav is None else format_whole(nav),
            style="bold" if row.level == "firm" else None,
        )
    buf = io.StringIO()
    console = Console(file=buf, width=NARROW_WIDTH, color_system=None, force_terminal=False)
    console.print(t)
    for a in types:
        c = reports[a].counts
        console.print(
            f"{TYPE_NAMES.get(a, a)}: {c.accepted} accepted, {c.rejected} rejected, "
            f"{c.invalid_series} invalid series (no instrument for that type), {c.warnings} "
            "warnings"
        )
    return buf.getvalue()
