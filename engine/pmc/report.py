"""The margin report of a whole position file: counts, problems and the result.

``margin_for_file`` resolves a parsed 346 file against a theo set (``engine.pmc.resolve``),
computes its margin (``engine.pmc.margin``) and counts accepted, rejected and invalid-series
records.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.pmc.margin import MarginResult, compute_margin
from engine.pmc.positions.model import REJECTED, WARNING, PositionFile, PositionProblem
from engine.pmc.resolve import ResolvedPositions, resolve_positions
from engine.pmc.theo.model import TheoSet


@dataclass(frozen=True)
class PositionCounts:
    """Output counts; accepted + rejected + invalid_series == total."""

    accepted: int
    rejected: int
    invalid_series: int
    warnings: int
    total: int

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "invalid_series": self.invalid_series,
            "warnings": self.warnings,
            "total": self.total,
        }


@dataclass(frozen=True, eq=False)
class MarginReport:
    """A position file's margin: the set used, counts, problems (by line) and the result."""

    theo_date: str
    theo_name: str
    counts: PositionCounts
    problems: list[PositionProblem]
    result: MarginResult


def margin_for_file(parsed: PositionFile, theo: TheoSet) -> MarginReport:
    """Resolve and compute a parsed 346 file against a theo set."""
    res = resolve_positions(parsed.positions, theo)
    counts, problems = count_records(parsed, res)
    return MarginReport(theo.activity_date, theo.name, counts, problems, compute_margin(res))


def count_records(
    parsed: PositionFile, res: ResolvedPositions
) -> tuple[PositionCounts, list[PositionProblem]]:
    """The counts of a file resolved against a set, and its problems in line order."""
    problems = sorted(parsed.problems + res.problems, key=lambda p: p.line)
    rejected_lines = {p.line for p in parsed.problems if p.kind == REJECTED}
    rejected = len(rejected_lines) + res.rejected
    counts = PositionCounts(
        accepted=len(res),
        rejected=rejected,
        invalid_series=res.invalid_series,
        warnings=sum(1 for p in problems if p.kind == WARNING),
        total=parsed.records,
    )
    return counts, problems
