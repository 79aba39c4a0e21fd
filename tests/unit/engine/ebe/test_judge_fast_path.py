"""The judge's fast path (a clean line for a loaded date before the cutoff) answers exactly as
the full path: a line judged alone always takes the full path (its date is not known yet), so
judging a whole submission must give, line for line, what judging each line alone gives."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ebe.day import cutoff_instant
from engine.ebe.instructions import FIELDS, Instruction, judge
from engine.ebe.money import format_ticks
from tests.unit.engine.ebe.corpus import CUTOFF, DATA, load_set

BASE = load_set(DATA / "sets" / "base")
SETS = {"2026-12-18": BASE}.get
CT = dt.timezone(dt.timedelta(hours=-6))

VARIANTS = {
    "account": ["ACC1", "ACC2", "ACC4", "B1", "", "acc1"],
    "symbol": ["XYZ", "ABC", "XYZ1", "HLT", "", "xyz"],
    "put_call": ["C", "P", "c", "p", "", "X", "Call"],
    "strike": ["45.66", "45.6600", "45.665", "20", "33.3333", "0", "-1", "1e3", ""],
    "expiration_date": ["2026-12-18", "2026-12-19", "2026-13-01", "", "20261218"],
    "action": ["EXERCISE", "DO_NOT_EXERCISE", "exercise", "Exercise", "", "HOLD"],
    "quantity": ["0", "1", "4", "5", "7", "8", "10", "11", "007", "-1", "1.5", "", "\u0663"],
}
POSITIONS = [
    {
        "account": str(BASE.account[i]),
        "symbol": str(BASE.symbol[i]),
        "put_call": str(BASE.put_call[i]),
        "strike": format_ticks(int(BASE.strike[i])),
        "expiration_date": "2026-12-18",
    }
    for i in range(len(BASE))
]


@st.composite
def line(draw: st.DrawFn) -> dict[str, str]:
    """Mostly a real position of the set with a valid action and quantity around its long,
    each field now and then replaced by a variant (a typo, another case, an empty cell)."""
    values = dict(draw(st.sampled_from(POSITIONS)))
    values["action"] = draw(st.sampled_from(["EXERCISE", "DO_NOT_EXERCISE"]))
    values["quantity"] = str(draw(st.integers(0, 12)))
    for field in FIELDS:
        if draw(st.integers(0, 9)) == 0:
            values[field] = draw(st.sampled_from(VARIANTS[field]))
    return values


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(line(), min_size=1, max_size=25),
    firm=st.sampled_from(["00123", "00456"]),
    minute=st.sampled_from([0, 29, 30, 31]),
)
def test_a_submission_is_judged_as_each_line_alone(rows, firm, minute):
    received = dt.datetime(2026, 12, 18, 16, minute, tzinfo=CT)
    lines = [Instruction(n, {f: r[f].strip() for f in FIELDS}) for n, r in enumerate(rows, 2)]

    def run(batch):
        return judge(
            batch,
            firm=firm,
            received_at=received,
            sets=SETS,
            cutoff=lambda day: cutoff_instant(day, CUTOFF),
        )

    together = run(lines)
    alone = [run([one])[0] for one in lines]
    assert together == alone
