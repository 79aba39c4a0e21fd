"""The machine-readable renderings of a margin report: ``<name>.results.csv`` (every level with
its Gains/Losses/Total rows), ``<name>.summary.csv``, ``<name>.errors.csv`` and the JSON document
of ``--format json``.
Amounts are positive and rounded to cents; the parent -> children lists are the result's own
(``MarginResult.children``, each made when first read), as in the table.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from engine.pmc.margin import (
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
)
from engine.pmc.positions.model import PositionProblem
from engine.pmc.report import MarginReport
from engine.pmc.theo.model import PNL_COLUMNS

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
    "expiration_date",
    "underlying",
    "exchange",
    "exercise_style",
    "settlement_style",
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
JSON_INDENT_LIMIT = 10_000  # positions up to which the JSON is indented


def _money(value: float) -> str:
    return f"{value:.2f}"


def _vec(values: np.ndarray) -> list[str]:
    return [f"{v:.2f}" for v in values.tolist()]


def _opt(value: float) -> str:
    return "" if np.isnan(value) else f"{value:g}"


def results_rows(report: MarginReport) -> Iterator[list[str]]:
    """Rows of ``<name>.results.csv`` (without the header), account by account, firms last."""
    r = report.result
    tree = r.children
    b = r.resolved.batch
    theo = r.resolved.theo
    theo_row = r.resolved.theo_row
    has_exchange = theo.exchange.shape[0] == theo.size
    blank_vec = [""] * len(PNL_COLUMNS)
    n_contract_columns = RESULT_COLUMNS.index("offset_pct") - RESULT_COLUMNS.index("symbol")

    def contract_cells(i: int) -> list[str]:
        t = int(theo_row[i])
        in_set = t >= 0
        return [
            str(b.symbol[i]),
            str(b.security_type[i]),
            str(b.put_call[i]),
            str(b.series_date[i]),
            f"{b.strike[i]:g}" if b.strike[i] else "",
            f"{b.quantity[i]:g}",
            str(theo.expiration_date[t]) if in_set else str(b.expiration_date[i]),
            str(theo.underlying[t]) if in_set else str(b.symbol[i]),
            str(theo.exchange[t]) if in_set and has_exchange else "",
            str(theo.exercise_style[t]) if in_set else str(b.exercise_style[i]),
            str(theo.settlement_style[t]) if in_set else str(b.settlement_style[i]),
        ]

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
            out += [""] * n_contract_columns
        else:
            out += contract_cells(contract)
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
        for i in tree.cg_contracts[g]:
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
        for g in tree.pg_class_groups[p]:
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
        for u in tree.account_units[a]:
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
                for p in tree.port_product_groups[ref]:
                    yield from pg_rows(a, p, port, -1)
            elif level == LEVEL_PRODUCT_GROUP:
                yield from pg_rows(a, ref, "", u)
        # product groups without offset: their class groups stand alone
        for p in tree.account_product_groups[a]:
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
            for g in tree.pg_class_groups[p]:
                yield from cg_rows(a, g, "", pg, int(r.cg_unit[g]))
    yield from firm_result_rows(report)


def firm_result_rows(report: MarginReport) -> Iterator[list[str]]:
    """The firm rows that end ``<name>.results.csv``."""
    r = report.result
    blank_vec = [""] * len(PNL_COLUMNS)
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


_FORMULA_START = re.compile(r"[=+@\t\r]|-(?![0-9.])")


def inert_cell(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``@``, a tab or CR, or a
    ``-`` not starting a number: text a sender chose, echoed in ``errors.csv``) gets a leading
    ``'``, so opening the file never evaluates it; numbers and other text are unchanged."""
    if isinstance(cell, str) and _FORMULA_START.match(cell):
        return "'" + cell
    return cell


def _csv(
    header: Sequence[str], rows: Iterator[Sequence[object]] | Sequence[Sequence[object]]
) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([inert_cell(cell) for cell in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def results_csv_chunks(
    report: MarginReport, progress: Callable[[int, int], None] | None = None
) -> Iterator[bytes]:
    """``<name>.results.csv`` a block of rows at a time (``detail_csv``: the bytes of
    ``results_rows`` through ``csv``, written in bulk); ``progress(rows done, rows)``."""
    from gateway.outputs.margin.detail_csv import results_csv_blocks

    return results_csv_blocks(report, _csv(RESULT_COLUMNS, []), progress)


def results_csv(report: MarginReport) -> bytes:
    """``<name>.results.csv``: every level, Gains/Losses/Total rows, positive requirements."""
    return b"".join(results_csv_chunks(report))


def summary_csv(report: MarginReport) -> bytes:
    """``<name>.summary.csv``: one row per account, then one per firm."""
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
    """``<name>.errors.csv``: one row per problem (header only when there is none)."""
    return _csv(
        ERROR_COLUMNS,
        [[p.line, p.kind, p.reason, p.field or "", p.value or "", p.message] for p in problems],
    )


def report_document(report: MarginReport, *, with_accounts: bool = True) -> dict[str, object]:
    """The JSON document of the margin result (the stable machine interface); without the
    accounts' entries when ``with_accounts`` is false."""
    r = report.result
    n_accounts = r.account_firm.shape[0] if with_accounts else 0
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
            for a in range(n_accounts)
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


def report_document_head_tail(report: MarginReport) -> tuple[bytes, bytes]:
    """The JSON text (no indentation) before and after the accounts' entries."""
    doc = report_document(report, with_accounts=False)
    text = json.dumps(doc)
    cut = text.index('"accounts": []') + len('"accounts": [')
    return text[:cut].encode("utf-8"), (text[cut:] + "\n").encode("utf-8")


def report_json_chunks(report: MarginReport) -> Iterator[bytes]:
    """``report_document`` as UTF-8 JSON with a trailing newline: indented for small files,
    written in bulk a group of accounts at a time (``detail_json``, the same bytes as
    ``json.dumps``) for large ones."""
    if len(report.result.resolved) <= JSON_INDENT_LIMIT:
        return iter([(json.dumps(report_document(report), indent=2) + "\n").encode("utf-8")])
    from gateway.outputs.margin.detail_json import report_json_chunks as chunks

    return chunks(report)


def report_json(report: MarginReport) -> bytes:
    """``report_json_chunks`` as one bytes object."""
    return b"".join(report_json_chunks(report))
