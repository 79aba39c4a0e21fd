"""The same positions computed under several account types (CPM vs RBH side by side).

``margin_as(parsed, theo, account_types)`` recomputes a parsed position file once per account
type, every position taking that type (its contract looked up in the set for that type), and
``compare_accounts`` lines the requirements of each (firm, account) up side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from engine.pmc.positions.model import ACCOUNT_TYPES, PositionFile
from engine.pmc.report import MarginReport, margin_for_file
from engine.pmc.theo.model import TheoSet


def parse_account_types(text: str) -> list[str]:
    """'C,F,M' -> ['C', 'F', 'M']; raises ValueError naming a value that is not C, F or M."""
    out: list[str] = []
    for part in text.split(","):
        t = part.strip().upper()
        if t not in ACCOUNT_TYPES:
            raise ValueError(f"account type {part.strip()!r} is not C, F or M")
        if t not in out:
            out.append(t)
    return out


def margin_as(
    parsed: PositionFile, theo: TheoSet, account_types: Sequence[str]
) -> dict[str, MarginReport]:
    """One report per account type, every position of ``parsed`` taking that type."""
    out: dict[str, MarginReport] = {}
    for acct in account_types:
        p = parsed.positions
        retyped = replace(p, account_type=np.full(len(p), acct, dtype="<U1"))
        out[acct] = margin_for_file(replace(parsed, positions=retyped), theo)
    return out


@dataclass(frozen=True)
class ComparisonRow:
    """One (firm, account) with its requirement and NAV under each account type (None: no
    position of that account was accepted under that type); ``level`` is 'account' or 'firm'."""

    level: str
    firm: str
    account: str
    requirement: Mapping[str, float | None]
    nav: Mapping[str, float | None]


def compare_accounts(reports: Mapping[str, MarginReport]) -> list[ComparisonRow]:
    """Rows of every (firm, account) seen under any type, sorted by firm then account, then one
    'firm' row per firm with its total."""
    keys: set[tuple[str, str]] = set()
    req: dict[str, dict[tuple[str, str], float]] = {}
    nav: dict[str, dict[tuple[str, str], float]] = {}
    freq: dict[str, dict[str, float]] = {}
    fnav: dict[str, dict[str, float]] = {}
    for acct, rep in reports.items():
        r = rep.result
        req[acct], nav[acct] = {}, {}
        for i in range(r.account_firm.shape[0]):
            k = (str(r.account_firm[i]), str(r.account_id[i]))
            keys.add(k)
            req[acct][k] = float(r.account_requirement[i])
            nav[acct][k] = float(r.account_nav[i])
        freq[acct] = {str(f): float(v) for f, v in zip(r.firm_ids, r.firm_requirement, strict=True)}
        fnav[acct] = {str(f): float(v) for f, v in zip(r.firm_ids, r.firm_nav, strict=True)}
    rows = [
        ComparisonRow(
            "account",
            f,
            a,
            {t: req[t].get((f, a)) for t in reports},
            {t: nav[t].get((f, a)) for t in reports},
        )
        for f, a in sorted(keys)
    ]
    firms = sorted({f for f, _ in keys})
    rows.extend(
        ComparisonRow(
            "firm",
            f,
            "",
            {t: freq[t].get(f) for t in reports},
            {t: fnav[t].get(f) for t in reports},
        )
        for f in firms
    )
    return rows
