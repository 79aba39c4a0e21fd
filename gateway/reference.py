"""Reference data and accounts -> the engine objects of the DPL flow.

Owns the translation from configuration (``gateway.config.ReferenceData`` and ``Account``) to
``engine.calendar.BusinessCalendar``, ``engine.dpl.records.DplReference`` and the set of firm ids
an account may submit for. Kept apart from ``gateway.config`` so that the config module stays free
of engine imports and so that SIGHUP reloads can rebuild these objects in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from engine.calendar import BusinessCalendar
from engine.dpl.records import DplReference, id_key
from gateway.config import Account, ReferenceData

log = logging.getLogger(__name__)


def business_calendar(reference: ReferenceData) -> BusinessCalendar:
    """NYSE holidays plus the OCC closures and re-openings of ``occ_holidays.csv``.

    Raises ValueError for overrides the calendar refuses (an ``open`` on a weekend).
    """
    closes = [h.date for h in reference.occ_holidays if h.action == "close"]
    opens = [h.date for h in reference.occ_holidays if h.action == "open"]
    notes = {h.date: h.description for h in reference.occ_holidays if h.description}
    return BusinessCalendar(closes, opens, notes=notes)


def dpl_reference(reference: ReferenceData) -> DplReference:
    """Clearing members (number -> active) and NCOs (id -> eligible for DPL)."""
    return DplReference(
        {cm.cm_number: cm.active for cm in reference.clearing_members},
        {nco.nco_id: nco.dpl_eligible for nco in reference.ncos},
    )


def entitled_firms(account: Account) -> frozenset[str]:
    """Firm ids the account may submit DPL records for: its ``submits_for`` plus its own id.

    The account's own firm is always included: a firm submitting its own records is never
    "not entitled", whatever else it was allowed to submit for.
    """
    return frozenset((account.entity_id, *account.submits_for))


def accounts_of_firm(accounts: Iterable[Account], firm_id: str) -> list[Account]:
    """The firm accounts whose firm id is ``firm_id`` (numeric ids compare by value)."""
    key = id_key(firm_id)
    return [a for a in accounts if a.kind == "firm" and id_key(a.entity_id) == key]


def firm_entitlements(accounts: Iterable[Account], firm_id: str) -> frozenset[str]:
    """What the firm ``firm_id`` may submit for: the union over its accounts, else itself only."""
    found = accounts_of_firm(accounts, firm_id)
    if not found:
        log.debug("no firm account for %s; it may submit for itself only", firm_id)
        return frozenset({firm_id})
    entitled: set[str] = {firm_id}
    for account in found:
        entitled |= entitled_firms(account)
    return frozenset(entitled)
