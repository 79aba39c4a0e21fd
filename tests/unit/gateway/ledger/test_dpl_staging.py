"""A DPL file's records are staged in short transactions, unseen until the file is processed;
a failure deletes them, a stop leaves them for the rerun, which deletes them first."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.dpl.records import DplFields, firm_sort_text
from gateway.errors import Interrupted
from gateway.ledger import Ledger, StoreRejected, dpl_store, pack_fields, valid_row
from gateway.spool.claims import SpoolFiles

CYCLE = "2026-03-09"
FIELDS = DplFields(None, CYCLE, None, "6", "1", "00005", "4", "AU", "361", "GS", "X", "ETO")
SORT = firm_sort_text("00005")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dpl_store, "STAGE_ROWS", 4)


def _file(ledger: Ledger, name: str, firm: str = "00005") -> int:
    return ledger.record_file(
        flow="dpl",
        firm=firm,
        account=firm,
        name=name,
        sha256=name * 8,
        size=1,
        received_at=dt.datetime(2026, 3, 9, 20, tzinfo=dt.UTC),
        cycle=None,
        work_path=f"work/{name}",
        source="test",
    )


def _rejected(line: int) -> bool:
    return line % 5 == 0 or 11 <= line <= 17  # scattered, and one run longer than a chunk


def _rows(lines: int, during: dict[int, object] | None = None):  # type: ignore[no-untyped-def]
    """``DplRows`` of ``lines`` records (some rejected); ``during[line]()`` runs before that
    line is produced."""

    def produce(store_rejected: StoreRejected) -> Iterator[tuple[int, bytes, str, str]]:
        for line in range(1, lines + 1):
            if during and line in during:
                during[line]()  # type: ignore[operator]
            raw = f"r{line}".encode()
            if _rejected(line):
                store_rejected(line, raw, "MALFORMED", None, pack_fields(FIELDS))
            else:
                yield valid_row(line, raw, FIELDS._replace(symbol=f"S{line:03d}"), SORT)

    return produce


def _store(ledger: Ledger, file_id: int, rows, firm: str = "00005") -> int | None:  # type: ignore[no-untyped-def]
    return ledger.replace_dpl_records(file_id, rows, cycle=CYCLE, submitter=firm, totals=(0, 0, 0))


def test_staged_rows_are_unseen_and_other_writers_get_in_until_the_file_is_processed(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    done = _file(ledger, "done", firm="00161")
    _store(ledger, done, _rows(3), firm="00161")
    file_id = _file(ledger, "big")
    seen: dict[str, object] = {}

    def look() -> None:  # mid-file, from another thread (its own connection)
        other = threading.Thread(target=lambda: seen.update(read(ledger, file_id)))
        other.start()
        other.join(10)

    _store(ledger, file_id, _rows(30, {21: look}))
    # lines 1-17 are committed (18 and 19 wait in the chunk being read), and nobody sees them
    assert seen["staged"] == 17 and seen["records"] == []
    assert seen["publishable"] == 3 and seen["report"] == {"00161"}
    assert seen["submitters"] == {CYCLE: {"00161"}} and seen["cycle"] is None
    assert float(seen["claim_s"]) < 1.0  # type: ignore[arg-type]
    stored = ledger.dpl_records_for_file(file_id)
    assert [r["line"] for r in stored] == list(range(1, 31))
    assert [r["line"] for r in stored if r["status"] == "rejected"] == [
        n for n in range(1, 31) if _rejected(n)
    ]
    assert [line for line, _ in ledger.rejected_dpl_lines(file_id)] == [
        n for n in range(1, 31) if _rejected(n)
    ]
    assert ledger.count_publishable_dpl(CYCLE) == 3 + sum(not _rejected(n) for n in range(1, 31))


def read(ledger: Ledger, file_id: int) -> dict[str, object]:
    started = time.monotonic()
    _file(ledger, "claim-beside", firm="00352")  # another firm's claim: a write, not blocked
    claim_s = time.monotonic() - started
    return {
        "claim_s": claim_s,
        "staged": ledger.staged_dpl_rows(file_id),
        "records": ledger.dpl_records_for_file(file_id),
        "publishable": ledger.count_publishable_dpl(CYCLE),
        "report": {r["submitter"] for r in ledger.iter_dpl_report(CYCLE)},
        "submitters": ledger.dpl_submitters([CYCLE]),
        "cycle": ledger.file(file_id).cycle,
    }


def test_a_failure_midway_deletes_the_staged_rows(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    file_id = _file(ledger, "a")

    def fail() -> None:
        assert ledger.staged_dpl_rows(file_id) > 0  # chunks were committed before the failure
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        _store(ledger, file_id, _rows(30, {25: fail}))
    assert ledger.staged_dpl_rows(file_id) == 0
    assert ledger.file(file_id).state == "received"


def test_a_stop_leaves_the_staged_rows_and_the_rerun_stores_the_file_once(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    file_id = _file(ledger, "a")

    def stop() -> None:
        raise Interrupted("stopping")

    with pytest.raises(Interrupted):
        _store(ledger, file_id, _rows(30, {25: stop}))
    assert ledger.staged_dpl_rows(file_id) == 22  # the chunks committed before the stop
    assert ledger.dpl_records_for_file(file_id) == []
    assert ledger.count_publishable_dpl(CYCLE) == 0
    _store(ledger, file_id, _rows(30))
    assert [r["line"] for r in ledger.dpl_records_for_file(file_id)] == list(range(1, 31))
    assert [s for s, _ in ledger.file_events(file_id)].count("processed") == 1


def test_storing_a_processed_file_again_replaces_its_records_at_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    file_id = _file(ledger, "a")
    _store(ledger, file_id, _rows(30))
    assert ledger.discard_dpl_records(file_id) == 0  # a processed file's records stay
    seen: list[int] = []

    def look() -> None:  # another connection sees the old records while the new ones are stored
        other = threading.Thread(target=lambda: seen.append(ledger.count_publishable_dpl(CYCLE)))
        other.start()
        other.join(10)

    _store(ledger, file_id, _rows(10, {9: look}))
    assert seen == [sum(not _rejected(n) for n in range(1, 31))]
    assert [r["line"] for r in ledger.dpl_records_for_file(file_id)] == list(range(1, 11))


def test_a_claimed_file_whose_work_file_is_gone_at_restart_loses_its_staged_rows(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    file_id = _file(ledger, "gone")
    ledger.set_file_state(file_id, "claimed", "test")

    def stop() -> None:
        raise Interrupted("stopping")

    with pytest.raises(Interrupted):
        _store(ledger, file_id, _rows(30, {25: stop}))
    assert ledger.staged_dpl_rows(file_id) == 22
    files = SpoolFiles(
        root=tmp_path / "spool",
        ledger=ledger,
        clock=lambda: dt.datetime.now(dt.UTC),
        alert=lambda name, message, details: None,
        technical_contact=lambda firm: "",
    )
    files.reconcile(lambda claimed: pytest.fail("nothing to process"))
    assert ledger.file(file_id).state == "vanished"
    assert ledger.staged_dpl_rows(file_id) == 0
