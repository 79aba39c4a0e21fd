"""Runs one case of ``tests/data/ebe/cases/`` through the engine (shared by the tests)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from engine.ebe.answer import answer, kept_from_verdicts
from engine.ebe.day import cutoff_instant
from engine.ebe.instructions import judge, read_instruction_csv
from engine.ebe.money import parse_ticks
from engine.ebe.positions import FILES, ExpiringSet, parse_expiring_set
from engine.ebe.query import Filters

DATA = Path(__file__).resolve().parents[3] / "data" / "ebe"
CUTOFF = dt.time(16, 30)
DEFAULT_THRESHOLDS = {"C": 100, "F": 100, "M": 100}


def load_set(folder: Path) -> ExpiringSet:
    return parse_expiring_set({name: (folder / name).read_bytes() for name in FILES})


def run_case(case: Path) -> dict[str, Any]:
    spec = json.loads((case / "case.json").read_text())
    positions = load_set(DATA / "sets" / spec["set"])
    sets = {positions.expiration_date.isoformat(): positions}
    thresholds = {k: parse_ticks(v) for k, v in spec.get("thresholds", {}).items()}
    thresholds = {**DEFAULT_THRESHOLDS, **thresholds}
    filters = Filters.parse(spec["filters"])
    verdicts = []
    kept = []
    instructions = case / "instructions.csv"
    if instructions.exists():
        received = dt.datetime.fromisoformat(spec["received_at"])
        verdicts = judge(
            read_instruction_csv(instructions.read_bytes(), "instructions.csv"),
            firm=spec["firm"],
            received_at=received,
            sets=sets.get,
            cutoff=lambda day: cutoff_instant(day, CUTOFF),
        )
        kept = kept_from_verdicts(verdicts, received, "instructions.csv")
    return answer(
        sets.get(filters.expiration_date),
        firm=spec["firm"],
        filters=filters,
        thresholds=thresholds,
        cutoff_at=CUTOFF,
        now=dt.datetime.fromisoformat(spec["at"]),
        kept=kept,
        verdicts=verdicts,
    )
