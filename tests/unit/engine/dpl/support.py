"""Shared test data of the DPL tests: reference data like the shipped defaults, record builders."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.calendar import BusinessCalendar
from engine.dpl.records import DplReference
from engine.dpl.validate import DplValidator

# Like config/reference: 00005 active, 00418 inactive; IAN eligible, SMQ not eligible.
REFERENCE = DplReference(
    {"00005": True, "00161": True, "00352": True, "00792": True, "00418": False},
    {"IAN": True, "WLV": True, "SMQ": False},
)
CALENDAR = BusinessCalendar()
CYCLE = dt.date(2026, 3, 9)  # Monday; the allowed BizDt are 2026-03-06 and 2026-03-09

# The clearing-member sample of the README's File format (one line, clearing member 00005).
CM_LINE = (
    b'<FIXML><PosRpt BizDt="2007-07-19" DlvDt="2007-07-20" ReqTyp="6" ModelTyp="1">'
    b'<Pty ID="00005" R="4"/><Pty ID="123456789" R="38"/><Pty ID="123456" R="82">'
    b'<Sub ID="Goldman Sachs" Typ="5"/></Pty><Instrmt Sym="GOOG" SubTyp="ETO"/>'
    b'<Qty Typ="DLT" Long="100"/></PosRpt></FIXML>'
)


def validator(entitled: tuple[str, ...] = ("00005",), cycle: dt.date = CYCLE) -> DplValidator:
    return DplValidator(REFERENCE, cycle, CALENDAR, entitled)


def esc(value: str) -> str:
    return (
        value.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def posrpt(
    *,
    biz: str = "2026-03-09",
    firm: str = "00005",
    role: str = "4",
    agg: str = "AU-001",
    crd: str = "361",
    name: str = "Goldman Sachs",
    sym: str = "GOOG",
    sub: str = "ETO",
    long: str | None = "100",
    short: str | None = None,
    model: str = "1",
) -> str:
    quantity = (f' Long="{esc(long)}"' if long is not None else "") + (
        f' Short="{esc(short)}"' if short is not None else ""
    )
    return (
        f'<PosRpt BizDt="{esc(biz)}" ReqTyp="6" ModelTyp="{model}">'
        f'<Pty ID="{esc(firm)}" R="{role}"/><Pty ID="{esc(agg)}" R="38"/>'
        f'<Pty ID="{esc(crd)}" R="82"><Sub ID="{esc(name)}" Typ="5"/></Pty>'
        f'<Instrmt Sym="{esc(sym)}" SubTyp="{sub}"/><Qty Typ="DLT"{quantity}/></PosRpt>'
    )


def line(inner: str | None = None, **fields: Any) -> bytes:
    return f"<FIXML>{inner if inner is not None else posrpt(**fields)}</FIXML>".encode()
