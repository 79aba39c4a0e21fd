"""The ledger: WAL + synchronous=FULL, schema version and migrations, refusal of newer ledgers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.ledger import Ledger, database


def test_new_ledger_is_wal_full_sync_at_current_version(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite3")
    conn = ledger.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger.schema_version() == database.schema_version() == len(database.MIGRATIONS)
    ledger.close()


def test_reopening_applies_only_missing_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    applied: list[int] = []
    extra = len(database.MIGRATIONS) + 1

    def migration_2(db: object) -> None:
        applied.append(extra)
        db.execute("CREATE TABLE IF NOT EXISTS extra (x INTEGER)")  # type: ignore[attr-defined]

    monkeypatch.setattr(database, "MIGRATIONS", [*database.MIGRATIONS, migration_2])
    ledger = Ledger(path)
    assert applied == [extra] and ledger.schema_version() == extra
    ledger.close()
    Ledger(path).close()
    assert applied == [extra]  # not applied twice


def test_a_ledger_from_a_newer_posgate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        Ledger(path)


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    import threading

    ledger = Ledger(tmp_path / "l.sqlite3")
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(id(ledger.connect())))
    thread.start()
    thread.join()
    assert seen and seen[0] != id(ledger.connect())
    ledger.close()


def test_commits_leave_checkpointing_to_the_background(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    import datetime as dt

    for i in range(50):
        ledger.record_file(
            flow="dpl",
            firm="00005",
            account="00005",
            name=f"f{i}",
            sha256="x",
            size=1,
            received_at=dt.datetime.now(dt.UTC),
            cycle=None,
            work_path="w",
            source="s",
        )
    wal = tmp_path / "l.sqlite3-wal"
    assert wal.stat().st_size > 0
    busy, pages, done = ledger.checkpoint("TRUNCATE")
    assert busy == 0 and done == pages
    assert wal.stat().st_size == 0
    ledger.close()
