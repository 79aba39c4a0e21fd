"""Kept instructions applied to a newer set of the same date: those that no longer fit are left
out and named, in receipt order; the rest apply to the rows of the new set."""

from __future__ import annotations

import datetime as dt

import numpy as np

from engine.ebe.day import KeptInstruction, effective_for
from engine.ebe.money import parse_ticks
from tests.unit.engine.ebe.corpus import DATA, load_set

AT = dt.datetime(2026, 12, 18, 21, 0, tzinfo=dt.UTC)


def kept(account, symbol, pc, strike, action, qty, line):
    key = ("00123", account, symbol, pc, parse_ticks(strike))
    return KeptInstruction(key, action, qty, AT, f"dec18.csv line {line}")


def test_instructions_that_no_longer_fit_are_named_in_order_and_left_out():
    positions = load_set(DATA / "sets" / "base")
    instructions = [
        kept("ACC1", "XYZ", "C", "45.66", "DO_NOT_EXERCISE", 4, 2),
        kept("ACC9", "XYZ", "C", "45.66", "EXERCISE", 1, 3),  # position gone
        kept("ACC2", "ABC", "P", "20", "EXERCISE", 8, 4),  # long is 7 now
        kept("ACC2", "ABC", "P", "20", "EXERCISE", 3, 5),
    ]
    effective, problems = effective_for(positions, instructions)
    assert problems == [
        "dec18.csv line 3: EXERCISE 1 ACC9 XYZ C 45.66 no longer matches an expiring position "
        "of the current set; not applied",
        "dec18.csv line 4: EXERCISE 8 ACC2 ABC P 20.00 exceeds the long quantity 7 of the "
        "current set; not applied",
    ]
    acc1 = positions.index[("00123", "ACC1", "XYZ", "C", 456600)]
    acc2 = positions.index[("00123", "ACC2", "ABC", "P", 200000)]
    assert effective.row.tolist() == [acc1, acc2]
    assert effective.action.tolist() == [1, 0]
    assert effective.quantity.tolist() == [4, 3]
    assert effective.row.dtype == np.int64 and effective.action.dtype == np.int8


def test_no_kept_instructions():
    effective, problems = effective_for(load_set(DATA / "sets" / "base"), [])
    assert problems == [] and effective.row.shape == (0,)
