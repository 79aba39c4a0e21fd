"""Builders of DPL FIXML lines for tests."""

from __future__ import annotations


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
