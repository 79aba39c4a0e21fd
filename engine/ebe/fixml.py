"""The contrary-intention file for the exchanges: FIXML 5.0 SP2 ``ContIntRpt``.

One ``ContIntRpt`` (MsgType BO) per (firm, account, series) whose final exercise differs from the
automatic one, inside a ``Batch``, in the set's row order. Attributes use the FIXML
abbreviations: ``RptID`` (ContIntRptID, 977), ``BizDt`` (ClearingBusinessDate, 715, the
expiration date), ``TxnTm`` (TransactTime, 60, the receipt time of the instruction that decided
the row); parties ``Pty`` with ``R="4"`` (clearing firm) and ``R="24"`` (customer account);
``Instrmt`` with ``Sym``, ``PutCall`` (1 call, 0 put), ``StrkPx`` and ``MatDt``; and two
``ExpQty`` groups (``Typ`` ExpirationQtyType 982, ``Qty`` ExpQty 983): ``4`` contrary intention
and ``3`` final will be exercised. The file is deterministic for the same inputs (the generation
instant is not in it), so a republication with unchanged content writes the same bytes.
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
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<FIXML xmlns="{FIXML_NS}" v="5.0" xv="SP2">',
        "<Batch>",
    ]
    rows = np.flatnonzero(outcomes.contrary_action != 0).tolist()
    for n, i in enumerate(rows, start=1):
        received = decided_at.get(i)
        txn = (
            received.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"
            if received is not None
            else ""
        )
        put_call = "1" if positions.put_call[i] == "C" else "0"
        report_id = f"CIR-{day.strftime('%Y%m%d')}-{n:07d}"
        lines.append(
            f'<ContIntRpt RptID="{report_id}" BizDt="{biz}"'
            + (f' TxnTm="{txn}"' if txn else "")
            + ">"
        )
        lines.append(f'<Pty ID={quoteattr(str(positions.firm[i]))} R="4"/>')
        lines.append(f'<Pty ID={quoteattr(str(positions.account[i]))} R="24"/>')
        lines.append(
            f'<Instrmt Sym={quoteattr(str(positions.symbol[i]))} PutCall="{put_call}"'
            f' StrkPx="{format_ticks(int(positions.strike[i]))}" MatDt="{biz}"/>'
        )
        lines.append(f'<ExpQty Typ="4" Qty="{int(outcomes.contrary_qty[i])}"/>')
        lines.append(f'<ExpQty Typ="3" Qty="{int(outcomes.final_exercise_qty[i])}"/>')
        lines.append("</ContIntRpt>")
    lines += ["</Batch>", "</FIXML>", ""]
    return "\n".join(lines).encode("utf-8"), len(rows)
