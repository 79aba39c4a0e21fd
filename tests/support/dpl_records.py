"""Builders of DPL FIXML lines for tests."""

from __future__ import annotations

from pathlib import Path

FIXML_NS = "http://www.fixprotocol.org/FIXML-5-0-SP2"


def posrpt(
    biz_dt: str,
    *,
    firm: str = "00005",
    role: str = "4",
    unit: str = "AU1",
    crd: str = "361",
    name: str = "Goldman Sachs",
    sym: str = "GOOG",
    sub: str = "ETO",
    qty: str = 'Long="100"',
    model: str = "1",
) -> bytes:
    return (
        f'<FIXML><PosRpt BizDt="{biz_dt}" ReqTyp="6" ModelTyp="{model}">'
        f'<Pty ID="{firm}" R="{role}"/><Pty ID="{unit}" R="38"/>'
        f'<Pty ID="{crd}" R="82"><Sub ID="{name}" Typ="5"/></Pty>'
        f'<Instrmt Sym="{sym}" SubTyp="{sub}"/><Qty Typ="DLT" {qty}/></PosRpt></FIXML>'
    ).encode()


def write_batch(path: Path, size_bytes: int, biz_dt: str, *, firm: str = "00005") -> int:
    """Write a Batch document of at least ``size_bytes`` (one PosRpt per line); its record count.

    Written in blocks, so building a document of hundreds of megabytes costs little memory.
    """
    children = [
        (
            f'  <PosRpt RptID="{{n}}" BizDt="{biz_dt}" ReqTyp="6" ModelTyp="1">'
            f'<Pty ID="{firm}" R="4"/><Pty ID="AU{unit:03d}" R="38"/>'
            f'<Pty ID="361" R="82"><Sub ID="Goldman Sachs" Typ="5"/></Pty>'
            f'<Instrmt Sym="S{sym:04d}" SubTyp="ETO"/><Qty Typ="DLT" Long="{{n}}"/></PosRpt>\n'
        )
        for unit, sym in ((u, s) for u in range(1, 21) for s in range(1, 51))
    ]
    count = 0
    written = 0
    with open(path, "wb") as fh:
        head = f'<?xml version="1.0" encoding="UTF-8"?>\n<FIXML xmlns="{FIXML_NS}">\n<Batch>\n'
        written += fh.write(head.encode())
        while written < size_bytes:
            block = "".join(t.replace("{n}", str(count + i)) for i, t in enumerate(children))
            count += len(children)
            written += fh.write(block.encode())
        fh.write(b"</Batch>\n</FIXML>\n")
    return count
