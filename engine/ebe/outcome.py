"""Outcomes per (firm, account, series), vectorised over a whole expiring set.

Shapes: every array is ``(n,)`` over the rows of the ``ExpiringSet``; amounts are int64 ticks of
1/10,000 USD, so ``itm_amount >= threshold`` is an exact integer comparison (a call struck at
45.66 with a close of 45.67 is in the money by exactly 100 ticks = 0.01 and is auto-exercised at
the default threshold). ``dollar_extension`` is exact too: computed in int64 when the set's
largest product fits, otherwise in Python integers (object arrays) rather than overflowing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.ebe.instructions import Effective, latest_per_row
from engine.ebe.positions import ACCOUNT_TYPES, ExpiringSet

MONEYNESS = ("OTM", "ATM", "ITM")
"""Index = sign(itm_amount) + 1."""
CONTRARY = ("", "EXERCISE", "DO_NOT_EXERCISE")
"""Index 0 none, 1 final > auto, 2 final < auto."""
_INT64_SAFE = 2**62


@dataclass(frozen=True)
class Outcomes:
    """The outcome of every row of one set; see the module doc for units."""

    itm_amount: npt.NDArray[np.int64]
    moneyness: npt.NDArray[np.int8]
    """index into ``MONEYNESS``"""
    auto_exercise_qty: npt.NDArray[np.int64]
    final_exercise_qty: npt.NDArray[np.int64]
    contrary_qty: npt.NDArray[np.int64]
    contrary_action: npt.NDArray[np.int8]
    """index into ``CONTRARY``"""
    dollar_extension: npt.NDArray[np.int64] | npt.NDArray[np.object_]
    instructed: npt.NDArray[np.bool_]
    """a live instruction decides the row"""


def compute_outcomes(
    positions: ExpiringSet, thresholds: Mapping[str, int], instructions: Effective
) -> Outcomes:
    """Outcomes of ``positions`` with ``thresholds`` (account type -> ticks) and the accepted
    ``instructions`` (receipt order; the latest per row counts, quantity 0 withdraws)."""
    n = len(positions)
    diff_call = positions.close - positions.strike
    itm = np.where(positions.is_call, diff_call, -diff_call)
    moneyness = (np.sign(itm) + 1).astype(np.int8)

    per_type = np.asarray([thresholds[t] for t in ACCOUNT_TYPES], dtype=np.int64)
    threshold = per_type[positions.type_code]
    auto = np.where((itm >= threshold) & ~positions.removed, positions.long_qty, 0)

    rows, action, quantity = latest_per_row(instructions)
    final = auto.copy()
    instructed = np.zeros(n, dtype=np.bool_)
    if rows.shape[0]:
        final[rows] = np.where(action == 0, quantity, positions.long_qty[rows] - quantity)
        instructed[rows] = True
    diff = final - auto
    contrary = np.where(diff > 0, 1, np.where(diff < 0, 2, 0)).astype(np.int8)

    bound = (
        int(np.abs(final).max(initial=0))
        * int(np.abs(itm).max(initial=0))
        * int(positions.multiplier.max(initial=0))
    )
    dollars: npt.NDArray[np.int64] | npt.NDArray[np.object_]
    if bound < _INT64_SAFE:
        dollars = final * itm * positions.multiplier
    else:
        dollars = final.astype(object) * itm.astype(object) * positions.multiplier.astype(object)
    return Outcomes(
        itm_amount=itm.astype(np.int64),
        moneyness=moneyness,
        auto_exercise_qty=auto.astype(np.int64),
        final_exercise_qty=final.astype(np.int64),
        contrary_qty=np.abs(diff).astype(np.int64),
        contrary_action=contrary,
        dollar_extension=dollars,
        instructed=instructed,
    )
