"""The contrary-intention file for the exchanges: FIXML 5.0 SP2 ``ContIntRpt``.

One FIXML message per line, LF-terminated, UTF-8, like the DPL exchange file:
``<FIXML xmlns="http://www.fixprotocol.org/FIXML-5-0-SP2"><ContIntRpt …>…</ContIntRpt></FIXML>``,
one Contrary Intention Report (MsgType BO) per (firm, account, series) whose final exercise
differs from the automatic one, in the set's row order; a date without any gives an empty file.
Names are the FIX 5.0 SP2 repository's FIXML abbreviations, in the message layout's order:

* ``ContIntRpt``: ``RptID`` (ContIntRptID, 977), ``TxnTm`` (TransactTime, 60: the receipt time of
  the instruction that decided the row), ``BizDt`` (ClearingBusinessDate, 715: the expiration
  date);
* ``Pty`` (Parties): ``ID`` with ``R`` (PartyRole) ``4`` clearing firm and ``24`` customer
  account;
* ``Qty`` (ExpirationQty): ``ExpTyp`` (ExpirationQtyType, 982) with ``ExpQty`` (983): ``4``
  contrary intention and ``3`` final will be exercised;
* ``Instrmt`` (Instrument): ``Sym``, ``PutCall`` (1 call, 0 put), ``StrkPx``, ``MatDt``.

``contracts/fixml/contrary-intention-report.xsd`` is the schema of exactly this subset; the tests
validate every file they produce against it. The file is deterministic for the same inputs (the
generation instant is not in it), so a republication with unchanged content writes the same
bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from engine.ebe.day import KeptInstruction, effective_for
from engine.ebe.money import format_ticks
from engine.ebe.outcome import compute_outcomes
from engine.ebe.positions import ExpiringSet

FIXML_NS = "http://www.fixprotocol.org/FIXML-5-0-SP2"


def contrary_intention_file(
    positions: ExpiringSet,
    kept: Sequence[KeptInstruction],
    thresholds: Mapping[str, int],
    *,
    generated_at: dt.datetime | None = None,
) -> tuple[bytes, int]:
    """(file bytes, number of reports). ``generated_at`` is accepted for symmetry with the DPL
    publication but not written, to keep the bytes a function of the decisions only."""
    del generated_at
    effective, _ = effective_for(positions, kept)
    outcomes = compute_outcomes(positions, thresholds, effective)
    decided_at: dict[int, dt.datetime] = {}
    for ins in kept:
        row = positions.index.get(ins.key)
        if row is not None:
            decided_at[row] = ins.received_at
    day = positions.expiration_date
    biz = day.isoformat()
    compact = day.strftime("%Y%m%d")
    lines: list[str] = []
    rows = np.flatnonzero(outcomes.contrary_action != 0).tolist()
    for n, i in enumerate(rows, start=1):
        received = decided_at.get(i)
        txn = (
            f' TxnTm="{received.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")}Z"'
            if received is not None
            else ""
        )
        put_call = "1" if positions.put_call[i] == "C" else "0"
        lines.append(
            f'<FIXML xmlns="{FIXML_NS}">'
            f'<ContIntRpt RptID="CIR-{compact}-{n:07d}"{txn} BizDt="{biz}">'
            f'<Pty ID={quoteattr(str(positions.firm[i]))} R="4"/>'
            f'<Pty ID={quoteattr(str(positions.account[i]))} R="24"/>'
            f'<Qty ExpTyp="4" ExpQty="{int(outcomes.contrary_qty[i])}"/>'
            f'<Qty ExpTyp="3" ExpQty="{int(outcomes.final_exercise_qty[i])}"/>'
            f'<Instrmt Sym={quoteattr(str(positions.symbol[i]))} PutCall="{put_call}"'
            f' StrkPx="{format_ticks(int(positions.strike[i]))}" MatDt="{biz}"/>'
            "</ContIntRpt></FIXML>\n"
        )
    return "".join(lines).encode("utf-8"), len(rows)
