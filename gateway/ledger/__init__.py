"""The SQLite ledger: ``Ledger`` is the one object callers use, assembled from one part per flow.

``database`` owns the file, its schema and migrations and the per-thread connections; ``files``
the lifecycle of input files; ``dpl_store`` how a DPL file's records are stored (staged in
chunks, visible with the file's state change); ``dpl`` DPL queries and publications; ``runs``
PMC results and scheduler runs; ``ebe`` exercise-by-exception sets, instructions and publications.
"""

from __future__ import annotations

from gateway.ledger.database import schema_version
from gateway.ledger.dpl import DplLedger
from gateway.ledger.dpl_store import (
    ABSENT,
    FIELD_SEP,
    STAGE_ROWS,
    DplRows,
    StoreRejected,
    dpl_sort_key,
    pack_fields,
    unpack_fields,
    valid_row,
)
from gateway.ledger.ebe import EbeLedger
from gateway.ledger.files import TERMINAL_STATES, FileRow
from gateway.ledger.runs import RunLedger


class Ledger(DplLedger, RunLedger, EbeLedger):
    """Thread-safe access to the ledger file: one sqlite3 connection per thread."""


__all__ = [
    "ABSENT",
    "FIELD_SEP",
    "STAGE_ROWS",
    "TERMINAL_STATES",
    "DplRows",
    "FileRow",
    "Ledger",
    "dpl_sort_key",
    "pack_fields",
    "StoreRejected",
    "schema_version",
    "unpack_fields",
    "valid_row",
]
