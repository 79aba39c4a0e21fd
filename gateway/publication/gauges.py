"""The publication gauges, read back from the ledger so that they are right after a restart and
include publications made with ``posgate dpl publish``: when each exchange last got a file, the
latest published cycle, and the firms that submitted recently but sent nothing for a cycle.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Set

from engine.calendar import BusinessCalendar
from gateway import metrics
from gateway.ledger import Ledger
from gateway.outputs.reports import missing_submitters

log = logging.getLogger(__name__)


def refresh_delivery_gauges(ledger: Ledger, published: Set[dt.date]) -> None:
    """``posgate_dpl_last_publication{exchange}`` from the ledger's deliveries and the latest
    published cycle among ``published``."""
    for exchange, at in ledger.last_deliveries().items():
        metrics.DPL_LAST_PUBLICATION.labels(exchange=exchange).set(at.timestamp())
    if published:
        latest = max(published)
        metrics.DPL_LAST_PUBLISHED_CYCLE.set(
            dt.datetime.combine(latest, dt.time(0), tzinfo=dt.UTC).timestamp()
        )


def refresh_missing_submitters(
    ledger: Ledger, calendar: BusinessCalendar, cycle: dt.date, lookback_cycles: int
) -> int:
    """Set ``posgate_dpl_missing_submitters`` (and the per-firm gauge) for ``cycle``; returns
    the count (0 when the query fails: logged, the gauges keep their values)."""
    try:
        rows = missing_submitters(ledger, calendar, cycle, lookback_cycles)
    except Exception:
        log.exception("missing-submitters refresh for %s failed", cycle)
        return 0
    metrics.DPL_FIRMS_MISSING.set(len(rows))
    metrics.DPL_FIRM_MISSING.clear()
    for row in rows:
        metrics.DPL_FIRM_MISSING.labels(firm=str(row["firm"])).set(1)
    if rows:
        log.info(
            "dpl cycle %s: %d firm(s) that submitted recently sent nothing: %s",
            cycle,
            len(rows),
            ", ".join(r["firm"] for r in rows),
        )
    return len(rows)
