"""The tree walk of DPL validation: a parsed PosRpt read against the closed PosRpt record layout.

This is the reference reading of a record (:mod:`engine.dpl.fastpath` only short-cuts records it
reads identically). It walks the PosRpt element once, reading attributes as dicts and the few
children once (there is no XPath), collects the values as :class:`~engine.dpl.records.DplFields`
and reports every ``LAYOUT`` and ``MISSING_FIELD`` problem of the structure; the values are checked
against the cycle, the reference data and the entitlements by :mod:`engine.dpl.validate`.

Decisions (also in the README part of this flow):

* The record layout is closed: any other element or attribute,
  anywhere inside the PosRpt, is ``LAYOUT``; so is non-blank text content, a party role other than
  4, 7, 38 or 82, a ``Sub`` outside the ``R=82`` party, a ``Sub`` whose ``Typ`` is not 5, and a
  second party of the same role (``R=4`` and ``R=7`` together count as two firm parties).
  Attributes on the ``FIXML`` envelope are ignored (real FIXML carries version attributes there).
* Values are compared as sent: ``ReqTyp`` must be exactly ``6``, ``ModelTyp`` ``0`` or ``1``,
  ``SubTyp`` one of ``ETO OTC CMB``, ``Typ`` ``DLT``. A value of only blanks counts as empty.
* An optional attribute present but empty (``RptID``, ``DlvDt``, ``Long`` or ``Short``) counts as
  absent; a present ``DlvDt`` must still be a valid date.
"""

from __future__ import annotations

from typing import Any

from engine.dpl.fixml import FIXML_NS
from engine.dpl.records import (
    LAYOUT,
    MISSING_FIELD,
    MODEL_TYPES,
    ROLE_CLEARING_MEMBER,
    ROLE_CRD,
    ROLE_NCO,
    ROLE_POSITION_ACCOUNT,
    SUB_TYPES,
    DplFields,
    Problem,
    is_date,
)
from engine.dpl.safe_xml import has_text, local_name


def _tags(name: str) -> frozenset[str]:
    return frozenset({name, f"{{{FIXML_NS}}}{name}"})


_PTY = _tags("Pty")
_SUB = _tags("Sub")
_INSTRMT = _tags("Instrmt")
_QTY = _tags("Qty")
_POSRPT_ATTRS = frozenset({"RptID", "BizDt", "DlvDt", "ReqTyp", "ModelTyp"})
_PTY_ATTRS = frozenset({"ID", "R"})
_SUB_ATTRS = frozenset({"ID", "Typ"})
_INSTRMT_ATTRS = frozenset({"Sym", "SubTyp"})
_QTY_ATTRS = frozenset({"Typ", "Long", "Short"})


def read_fields(posrpt: Any) -> tuple[DplFields, list[Problem]]:
    """The tree walk alone, text checks included (the reference reading; for tests)."""
    problems: list[Problem] = []
    fields = read_tree(posrpt, problems)
    check_text(posrpt, problems)
    return fields, problems


def read_tree(posrpt: Any, problems: list[Problem]) -> DplFields:
    """Walk the PosRpt once: collect values, report LAYOUT and MISSING_FIELD problems.

    Attributes are read with ``get`` and their count compared with the known ones found, so
    the (rare) unknown attributes are looked for only when there are some.
    """
    add = problems.append
    attrib = posrpt.attrib
    get = attrib.get
    rpt_id = get("RptID")
    biz_dt = get("BizDt")
    dlv_dt = get("DlvDt")
    req_typ = get("ReqTyp")
    model_typ = get("ModelTyp")
    known = (
        (rpt_id is not None)
        + (biz_dt is not None)
        + (dlv_dt is not None)
        + (req_typ is not None)
        + (model_typ is not None)
    )
    if len(attrib) != known:
        _unknown_attributes(posrpt, "PosRpt", _POSRPT_ATTRS, add)

    firms: list[tuple[str, str | None]] = []
    agg_units: list[str | None] = []
    crds: list[str | None] = []
    names: list[str | None] = []
    instruments: list[Any] = []
    quantities: list[Any] = []
    for child in posrpt:
        tag = child.tag
        if tag in _PTY:
            _read_party(child, firms, agg_units, crds, names, add)
        elif tag in _INSTRMT:
            instruments.append(child)
            if len(child):
                _no_children(child, "Instrmt", add)
        elif tag in _QTY:
            quantities.append(child)
            if len(child):
                _no_children(child, "Qty", add)
        else:
            add(_unknown_element("PosRpt", tag))

    # PosRpt attributes
    rpt_id = rpt_id or None
    dlv_dt = dlv_dt or None
    if _blank(biz_dt):
        add(_missing("BizDt"))
        biz_dt = None
    if _blank(req_typ):
        add(_missing("ReqTyp"))
        req_typ = None
    elif req_typ != "6":
        add(Problem(LAYOUT, "ReqTyp", req_typ, f"ReqTyp={req_typ!r} must be 6"))
    if _blank(model_typ):
        add(_missing("ModelTyp"))
        model_typ = None
    elif model_typ not in MODEL_TYPES:
        add(Problem(LAYOUT, "ModelTyp", model_typ, f"ModelTyp={model_typ!r} must be 0 or 1"))
    if dlv_dt is not None and not is_date(dlv_dt):
        add(Problem(LAYOUT, "DlvDt", dlv_dt, f"DlvDt={dlv_dt!r} is not a date YYYY-MM-DD"))

    # parties
    firm_id: str | None = None
    firm_role: str | None = None
    if not firms:
        add(_missing("Pty[R=4|7]", "no firm party (R=4 clearing member or R=7 NCO)"))
    else:
        if len(firms) > 1:
            roles = ",".join(r for r, _ in firms)
            add(Problem(LAYOUT, "Pty[R=4|7]", roles, f"{len(firms)} firm parties (R={roles})"))
        firm_role, firm_id = firms[0]
        for role, pid in firms:
            if _blank(pid):
                add(_missing(f"Pty[R={role}]/@ID"))
        if _blank(firm_id):
            firm_id = None
    agg_unit = _single_party("38", agg_units, add)
    crd = _single_party("82", crds, add)
    firm_name: str | None = None
    if crds:
        if not names:
            add(_missing("Pty[R=82]/Sub[Typ=5]", "no Sub with Typ=5 (firm legal name)"))
        else:
            if len(names) > 1:
                add(Problem(LAYOUT, "Pty[R=82]/Sub[Typ=5]", None, "duplicated Sub Typ=5"))
            firm_name = names[0]
            if _blank(firm_name):
                add(_missing("Pty[R=82]/Sub[Typ=5]/@ID"))
                firm_name = None

    # instrument
    symbol: str | None = None
    sub_typ: str | None = None
    if not instruments:
        add(_missing("Instrmt"))
    else:
        if len(instruments) > 1:
            add(Problem(LAYOUT, "Instrmt", None, f"{len(instruments)} Instrmt elements"))
        instrument = instruments[0].attrib
        symbol = instrument.get("Sym")
        sub_typ = instrument.get("SubTyp")
        if len(instrument) != ((symbol is not None) + (sub_typ is not None)):
            _unknown_attributes(instruments[0], "Instrmt", _INSTRMT_ATTRS, add)
        if _blank(symbol):
            add(_missing("Instrmt/@Sym"))
            symbol = None
        if _blank(sub_typ):
            add(_missing("Instrmt/@SubTyp"))
            sub_typ = None
        elif sub_typ not in SUB_TYPES:
            add(
                Problem(
                    LAYOUT,
                    "Instrmt/@SubTyp",
                    sub_typ,
                    f"SubTyp={sub_typ!r} must be ETO, OTC or CMB",
                )
            )

    # quantity
    long: str | None = None
    short: str | None = None
    if not quantities:
        add(_missing("Qty"))
    else:
        if len(quantities) > 1:
            add(Problem(LAYOUT, "Qty", None, f"{len(quantities)} Qty elements"))
        quantity = quantities[0].attrib
        typ = quantity.get("Typ")
        long = quantity.get("Long")
        short = quantity.get("Short")
        if len(quantity) != ((typ is not None) + (long is not None) + (short is not None)):
            _unknown_attributes(quantities[0], "Qty", _QTY_ATTRS, add)
        long = long or None
        short = short or None
        if _blank(typ):
            add(_missing("Qty/@Typ"))
        elif typ != "DLT":
            add(Problem(LAYOUT, "Qty/@Typ", typ, f"Qty Typ={typ!r} must be DLT"))
        if long is None and short is None:
            add(_missing("Qty/@Long|Short", "neither Long nor Short is given"))
    return DplFields(
        rpt_id,
        biz_dt,
        dlv_dt,
        req_typ,
        model_typ,
        firm_id,
        firm_role,
        agg_unit,
        crd,
        firm_name,
        symbol,
        sub_typ,
        long,
        short,
    )


def _read_party(
    party: Any,
    firms: list[tuple[str, str | None]],
    agg_units: list[str | None],
    crds: list[str | None],
    names: list[str | None],
    add: Any,
) -> None:
    attrib = party.attrib
    role = attrib.get("R")
    pid = attrib.get("ID")
    if len(attrib) != ((role is not None) + (pid is not None)):
        _unknown_attributes(party, "Pty", _PTY_ATTRS, add)
    if role == ROLE_CLEARING_MEMBER or role == ROLE_NCO:
        firms.append((role, pid))
    elif role == ROLE_POSITION_ACCOUNT:
        agg_units.append(pid)
    elif role == ROLE_CRD:
        crds.append(pid)
    elif _blank(role):
        add(_missing("Pty/@R", f"a Pty without a role (ID={pid!r})"))
    else:
        add(Problem(LAYOUT, "Pty/@R", role, f"unknown party role R={role!r}"))
    if not len(party):
        return
    for sub in party:
        if sub.tag not in _SUB or role != ROLE_CRD:
            add(_unknown_element(f"Pty[R={role}]", sub.tag))
            continue
        sub_attrib = sub.attrib
        typ = sub_attrib.get("Typ")
        value = sub_attrib.get("ID")
        if len(sub_attrib) != ((typ is not None) + (value is not None)):
            _unknown_attributes(sub, "Sub", _SUB_ATTRS, add)
        if len(sub):
            _no_children(sub, "Sub", add)
        if _blank(typ):
            add(_missing("Pty[R=82]/Sub/@Typ"))
        elif typ != "5":
            add(Problem(LAYOUT, "Pty[R=82]/Sub/@Typ", typ, f"Sub Typ={typ!r} must be 5"))
        else:
            names.append(value)


def _blank(value: str | None) -> bool:
    return not value or value.isspace()


def may_hold_text(raw: bytes) -> bool:
    """False when ``raw`` certainly has no character data inside its elements.

    Character data can only follow a ``>``; when every ``>`` but the last is followed directly by
    ``<`` and there is no CDATA section, there is none (an attribute value holding ``>`` only
    makes this answer True, which costs a little time, never a wrong result).
    """
    return raw.count(b">") - raw.count(b"><") > 1 or b"<![CDATA[" in raw


def check_text(posrpt: Any, problems: list[Problem]) -> None:
    """LAYOUT for any non-blank text inside the PosRpt (the envelope is fixml's business)."""
    if has_text(posrpt.text):
        problems.append(_text_problem("PosRpt", posrpt.text))
    for element in posrpt.iterdescendants():
        name = local_name(element.tag)
        if has_text(element.text):
            problems.append(_text_problem(name, element.text))
        if has_text(element.tail):
            problems.append(_text_problem(f"after {name}", element.tail))


def _missing(field: str, message: str | None = None) -> Problem:
    return Problem(MISSING_FIELD, field, None, message or f"{field} is missing or empty")


def _unknown_attribute(element: str, name: str, value: str) -> Problem:
    shown = local_name(name) if name.startswith("{") else name
    return Problem(
        LAYOUT, f"{element}/@{shown}", value, f"unknown attribute {element} {shown}={value!r}"
    )


def _unknown_element(parent: str, tag: object) -> Problem:
    name = local_name(tag)
    return Problem(LAYOUT, f"{parent}/{name}", None, f"unknown element <{name}> in {parent}")


def _text_problem(where: str, text: str | None) -> Problem:
    shown = (text or "").strip()[:40]
    return Problem(LAYOUT, where, shown, f"unexpected text {shown!r} in {where}")


def _unknown_attributes(element: Any, name: str, known: frozenset[str], add: Any) -> None:
    for attribute, value in element.items():
        if attribute not in known:
            add(_unknown_attribute(name, attribute, value))


def _no_children(element: Any, name: str, add: Any) -> None:
    for child in element:
        add(_unknown_element(name, child.tag))


def _single_party(role: str, values: list[str | None], add: Any) -> str | None:
    if not values:
        add(_missing(f"Pty[R={role}]", f"no party with R={role}"))
        return None
    if len(values) > 1:
        add(Problem(LAYOUT, f"Pty[R={role}]", None, f"{len(values)} parties with R={role}"))
    value = values[0]
    if _blank(value):
        add(_missing(f"Pty[R={role}]/@ID"))
        return None
    return value
