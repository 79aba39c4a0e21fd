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
    # The receipt time of the latest kept instruction of each series decides TxnTm.
    decided_at = {ins.key: ins.received_at for ins in kept}
    day = positions.expiration_date
    biz = day.isoformat()
    compact = day.strftime("%Y%m%d")
    rows = np.flatnonzero(outcomes.contrary_action != 0)
    columns = zip(
        positions.firm[rows].tolist(),
        positions.account[rows].tolist(),
        positions.symbol[rows].tolist(),
        positions.put_call[rows].tolist(),
        positions.strike[rows].tolist(),
        outcomes.contrary_qty[rows].tolist(),
        outcomes.final_exercise_qty[rows].tolist(),
        strict=True,
    )
    quoted: dict[str, str] = {}
    strikes: dict[int, str] = {}
    times: dict[dt.datetime, str] = {}

    def quote(value: str) -> str:
        text = quoted.get(value)
        if text is None:
            text = quoted[value] = quoteattr(value)
        return text

    lines: list[str] = []
    for n, (firm, account, symbol, put_call, strike, contrary, final) in enumerate(columns, 1):
        received = decided_at.get((firm, account, symbol, put_call, strike))
        txn = ""
        if received is not None:
            txn = times.get(received, "")
            if not txn:
                stamp = received.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
                txn = times[received] = f' TxnTm="{stamp}Z"'
        strike_text = strikes.get(strike)
        if strike_text is None:
            strike_text = strikes[strike] = format_ticks(strike)
        lines.append(
            f'<FIXML xmlns="{FIXML_NS}">'
            f'<ContIntRpt RptID="CIR-{compact}-{n:07d}"{txn} BizDt="{biz}">'
            f'<Pty ID={quote(firm)} R="4"/>'
            f'<Pty ID={quote(account)} R="24"/>'
            f'<Qty ExpTyp="4" ExpQty="{contrary}"/>'
            f'<Qty ExpTyp="3" ExpQty="{final}"/>'
            f'<Instrmt Sym={quote(symbol)} PutCall="{"1" if put_call == "C" else "0"}"'
            f' StrkPx="{strike_text}" MatDt="{biz}"/>'
            "</ContIntRpt></FIXML>\n"
        )
    return "".join(lines).encode("utf-8"), len(lines)
