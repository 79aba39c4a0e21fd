"""One expiration day: its cutoff instant, the status of its outcomes, and the instructions kept
for it applied to whichever expiring set is current.

Instructions are kept by series key, not by row: a newer set for the same date may
order its rows differently or drop a position. ``effective_for`` maps each kept instruction onto
the current set's rows; one that no longer fits (position gone, quantity now above the long) is
left out and named in the problems of the answer instead of silently changing a decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.calendar import CHICAGO
from engine.ebe.instructions import ACTION_CODE, Effective
from engine.ebe.money import format_ticks
from engine.ebe.positions import ExpiringSet, SeriesKey

PROVISIONAL = "provisional"
FINAL = "final"


def cutoff_instant(day: dt.date, at: dt.time) -> dt.datetime:
    """The instruction cutoff of expiration date ``day``: ``at`` Chicago time on that day."""
    return dt.datetime.combine(day, at, tzinfo=CHICAGO)


def status_at(day: dt.date, at: dt.time, now: dt.datetime) -> str:
    """``provisional`` until the cutoff instant (inclusive), ``final`` after it."""
    return FINAL if now > cutoff_instant(day, at) else PROVISIONAL


@dataclass(frozen=True)
class KeptInstruction:
    """An accepted instruction as the ledger keeps it (receipt order is the list order)."""

    key: SeriesKey
    action: str
    quantity: int
    received_at: dt.datetime
    origin: str
    """where it came from, for problems: ``"instr.csv line 3"``"""


def effective_for(
    positions: ExpiringSet, kept: Sequence[KeptInstruction]
) -> tuple[Effective, list[str]]:
    """The kept instructions that apply to ``positions``, and a problem for each one that no
    longer does."""
    k = len(kept)
    if k == 0:
        return Effective.empty(), []
    index_get = positions.index.get
    found = [index_get(ins.key) for ins in kept]
    rows = np.fromiter((-1 if r is None else r for r in found), dtype=np.int64, count=k)
    quantity = np.fromiter((ins.quantity for ins in kept), dtype=np.int64, count=k)
    action = np.fromiter((ACTION_CODE[ins.action] for ins in kept), dtype=np.int8, count=k)
    missing = rows < 0
    longs = positions.long_qty[np.where(missing, 0, rows)]
    over = ~missing & (quantity > longs)
    problems: list[str] = []
    for i in np.flatnonzero(missing | over).tolist():
        ins = kept[i]
        series = f"{ins.key[1]} {ins.key[2]} {ins.key[3]} {format_ticks(ins.key[4])}"
        if missing[i]:
            problems.append(
                f"{ins.origin}: {ins.action} {ins.quantity} {series} no longer matches an "
                "expiring position of the current set; not applied"
            )
        else:
            problems.append(
                f"{ins.origin}: {ins.action} {ins.quantity} {series} exceeds the long quantity "
                f"{int(longs[i])} of the current set; not applied"
            )
    live = ~(missing | over)
    return Effective(rows[live], action[live], quantity[live]), problems
