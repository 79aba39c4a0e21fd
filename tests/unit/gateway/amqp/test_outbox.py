"""The SQLite outbox and processed-request record."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.amqp.outbox import (
    EVENTS_EXCHANGE,
    MemoryProcessedStore,
    Outbox,
    SqliteProcessedStore,
    create_tables,
)
from gateway.errors import TransientError


def test_messages_come_out_in_order_until_marked_sent(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "state" / "ledger.db")
    ids = [
        box.add(EVENTS_EXCHANGE, f"ops.alert.n{i}", b"%d" % i, "text/plain", {}) for i in range(5)
    ]
    assert ids == sorted(ids) and box.depth() == 5
    page = box.pending(3)
    assert [m.routing_key for m in page] == ["ops.alert.n0", "ops.alert.n1", "ops.alert.n2"]
    assert [m.body for m in box.pending(10, after=page[-1].id)] == [b"3", b"4"]
    box.mark_sent([ids[0], ids[2]])
    assert [m.id for m in box.pending(10)] == [ids[1], ids[3], ids[4]]
    assert box.depth() == 3


def test_rows_survive_reopening_and_ids_never_go_back(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    box = Outbox(path)
    first = box.add("", "reply.q", b"x", None, {"k": 1}, correlation_id="c-9", message_id="m-9")
    box.mark_sent([first])
    kept = box.add(EVENTS_EXCHANGE, "firm.00005.dpl.receipt", b"{}", "application/json")
    box.close()
    again = Outbox(path)
    (row,) = again.pending(10)
    assert row.id == kept and row.routing_key == "firm.00005.dpl.receipt"
    later = again.add(EVENTS_EXCHANGE, "a", b"", None)
    assert later > kept > first  # AUTOINCREMENT: a deleted id is never reused
    replies = [m for m in again.pending(10) if m.exchange == ""]
    assert replies == []


def test_message_properties_are_kept(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "db")
    box.add(
        "",
        "reply.q",
        b"\x00\x01",
        "application/octet-stream",
        {"h": "v", "n": 2},
        correlation_id="c-1",
        message_id="m-1",
    )
    (row,) = box.pending(1)
    assert (row.exchange, row.routing_key, row.body, row.content_type) == (
        "",
        "reply.q",
        b"\x00\x01",
        "application/octet-stream",
    )
    assert dict(row.headers) == {"h": "v", "n": 2}
    assert (row.correlation_id, row.message_id) == ("c-1", "m-1")


def test_emit_writes_versioned_json_to_the_events_exchange_with_a_stable_id(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "db")
    box.emit("firm.00005.dpl.rejected", {"line": 7, "reasons": ["LAYOUT"]})
    box.emit("ops.alert.quarantine", {"schema_version": 2, "file": "x"})
    first, second = box.pending(10)
    assert first.exchange == EVENTS_EXCHANGE and first.content_type == "application/json"
    assert json.loads(first.body) == {"schema_version": 1, "line": 7, "reasons": ["LAYOUT"]}
    assert json.loads(second.body)["schema_version"] == 2
    assert len(first.message_id) == 32 and first.message_id != second.message_id
    assert box.pending(10)[0].message_id == first.message_id


def test_unknown_exchanges_and_bad_values_are_refused(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "db")
    with pytest.raises(ValueError, match="not one of"):
        box.add("amq.topic", "x", b"", None)
    with pytest.raises(ValueError, match="JSON values"):
        box.add(EVENTS_EXCHANGE, "x", b"", None, {"bad": object()})
    with pytest.raises(TypeError):
        box.add(EVENTS_EXCHANGE, "x", "text", None)  # type: ignore[arg-type]
    assert box.depth() == 0


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "db")
    box.add(EVENTS_EXCHANGE, "x", b"", None)
    conn = box._db.connection()  # noqa: SLF001
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_listeners_hear_every_add_and_can_leave(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "db")
    heard: list[int] = []

    def listener() -> None:
        heard.append(box.depth())

    box.subscribe(listener)
    box.add(EVENTS_EXCHANGE, "x", b"", None)
    box.add(EVENTS_EXCHANGE, "x", b"", None)
    box.unsubscribe(listener)
    box.add(EVENTS_EXCHANGE, "x", b"", None)
    assert heard == [1, 2]


def test_many_threads_add_without_losing_a_row(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "db")

    def writer(n: int) -> None:
        for i in range(50):
            box.add(EVENTS_EXCHANGE, f"t{n}", b"%d" % i, None)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = box.pending(1000)
    assert len(rows) == 200
    for n in range(4):  # each writer's rows keep its order
        assert [r.body for r in rows if r.routing_key == f"t{n}"] == [b"%d" % i for i in range(50)]


def test_sqlite_errors_become_transient(tmp_path: Path) -> None:
    path = tmp_path / "db"
    box = Outbox(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        box._db.connection().execute("PRAGMA busy_timeout=50")  # noqa: SLF001
        with pytest.raises(TransientError, match="outbox write failed"):
            box.add(EVENTS_EXCHANGE, "x", b"", None)
    finally:
        other.execute("ROLLBACK")
        other.close()
    box.add(EVENTS_EXCHANGE, "x", b"", None)
    assert box.depth() == 1


def test_create_tables_is_idempotent_on_a_shared_connection() -> None:
    conn = sqlite3.connect(":memory:")
    create_tables(conn)
    create_tables(conn)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"amqp_outbox", "amqp_processed"} <= names
    assert all(n.startswith(("amqp_", "sqlite_")) for n in names)


def test_sqlite_processed_store_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = SqliteProcessedStore(path)
    assert store.get("k") is None
    store.put("k", b"reply\x00bytes")
    store.put("k", b"newer")
    store.close()
    assert SqliteProcessedStore(path).get("k") == b"newer"


def test_sqlite_processed_store_is_bounded_by_count_and_age(tmp_path: Path) -> None:
    store = SqliteProcessedStore(tmp_path / "db", max_entries=10, prune_every=5)
    for i in range(23):
        store.put(f"k{i}", b"r")
    assert len(store) <= 13  # pruned back to 10 at every 5th put
    assert store.get("k22") == b"r" and store.get("k0") is None
    aged = SqliteProcessedStore(tmp_path / "db2", max_age_s=-1.0, prune_every=10**9)
    aged.put("old", b"r")
    assert aged.prune() == 1 and aged.get("old") is None


def test_concurrent_puts_are_all_committed(tmp_path: Path) -> None:
    store = SqliteProcessedStore(tmp_path / "db")

    def writer(n: int) -> None:
        for i in range(50):
            store.put(f"k{n}-{i}", b"%d" % i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reopened = SqliteProcessedStore(tmp_path / "db")
    assert len(reopened) == 400
    assert reopened.get("k7-49") == b"49" and reopened.get("k0-0") == b"0"


def test_a_failed_commit_fails_every_put_in_it_and_the_next_ones_work(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = SqliteProcessedStore(path)
    store.put("warm", b"x")
    store._db.connection().execute("PRAGMA busy_timeout=50")  # noqa: SLF001
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TransientError, match="write failed"):
            store.put("k", b"r")
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.put("k", b"r")
    assert store.get("k") == b"r"


def test_memory_processed_store_drops_the_oldest() -> None:
    store = MemoryProcessedStore(max_entries=3)
    for key in "abcd":
        store.put(key, key.encode())
    assert store.get("a") is None and store.get("d") == b"d" and len(store) == 3
