"""The intake with real watchdog, real files and the real ledger; flow handlers are small fakes."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.errors import UnreadableInput
from gateway.ledger import Ledger
from gateway.spool.claims import ClaimedFile
from gateway.spool.intake import SpoolIntake
from tests.support.daemon import wait_for


class RecordingHandler:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.seen: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, claimed: ClaimedFile) -> None:
        data = claimed.path.read_bytes()
        if data.startswith(b"\x00"):
            raise UnreadableInput("BINARY", "file starts with a NUL byte")
        with self.lock:
            self.seen.append((claimed.name, data))
        self.ledger.set_file_state(claimed.file_id, "processed", "test")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    for sub in ("inbound/dpl", "inbound/ebe", "outbound/dpl"):
        (root / "firms" / "00005" / sub).mkdir(parents=True)
    return root


@pytest.fixture
def ledger(spool: Path) -> Iterator[Ledger]:
    led = Ledger(spool / "state" / "ledger.sqlite3")
    yield led
    led.close()


def make_intake(
    spool: Path,
    ledger: Ledger,
    handler: RecordingHandler,
    stable: float = 0.6,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> SpoolIntake:
    return SpoolIntake(
        spool_root=spool,
        ledger=ledger,
        handlers={"dpl": handler},
        clock=clock,
        stable_interval_s=stable,
        sweep_interval_s=1.0,
        workers=2,
        technical_contact=lambda firm: "Ops <ops@example.com>",
    )


def test_temp_name_then_rename_is_taken_once_complete(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler)
    intake.start()
    try:
        inbound = spool / "firms" / "00005" / "inbound" / "dpl"
        tmp = inbound / "upload.fixml.part"
        payload = b"<FIXML/>\n" * 5000
        with open(tmp, "wb") as fh:
            fh.write(payload[:1000])
            fh.flush()
            time.sleep(1.0)  # longer than the stable interval: a .part file is never taken
            fh.write(payload[1000:])
        assert handler.seen == []
        os.rename(tmp, inbound / "upload.fixml")
        wait_for(lambda: len(handler.seen) == 1, what="file processed")
        wait_for(lambda: ledger.files(state="archived"), what="file archived")
        time.sleep(1.5)  # a sweep later, still exactly once
        assert handler.seen == [("upload.fixml", payload)]
        row = ledger.files()[0]
        assert row.state == "archived" and Path(row.archive_path or "").read_bytes() == payload
        states = [s for s, _ in ledger.file_events(row.id)]
        assert states == ["received", "claimed", "processed", "archived"]
        assert not list(inbound.iterdir())
    finally:
        intake.stop(5)


@pytest.mark.parametrize("mtime", [1_000_000_000, 4_000_000_000], ids=["past", "future"])
def test_a_file_of_another_writer_is_received_when_first_seen_whatever_its_mtime(
    spool: Path, ledger: Ledger, mtime: int
) -> None:
    # The daemon's clock says Friday 23:59:59 CT; the writer dated the file 2001 or 2096.
    start = dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    began = time.monotonic()
    clock = lambda: start + dt.timedelta(seconds=time.monotonic() - began)  # noqa: E731
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler, stable=0.6, clock=clock)
    intake.start()
    try:
        target = spool / "firms" / "00005" / "inbound" / "dpl" / "dated.fixml"
        target.write_bytes(b"<FIXML/>\n")
        os.utime(target, (mtime, mtime))
        wait_for(lambda: handler.seen, what="file processed")
        row = ledger.files()[0]
        # seen within a fraction of a second, processed after the stable wait: still Friday
        assert start <= row.received_at < start + dt.timedelta(seconds=0.9)
    finally:
        intake.stop(5)


def test_slow_writer_in_place_is_taken_only_when_stable(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler, stable=1.0)
    intake.start()
    try:
        target = spool / "firms" / "00005" / "inbound" / "dpl" / "slow.fixml"
        chunks = [b"x" * 4096 for _ in range(6)]
        with open(target, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(0.4)  # shorter than the stable interval
        wait_for(lambda: handler.seen, what="slow file processed")
        assert handler.seen == [("slow.fixml", b"".join(chunks))]
    finally:
        intake.stop(5)


def test_bytes_sent_again_are_a_new_submission_that_names_the_earlier_file(
    spool: Path, ledger: Ledger
) -> None:
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler)
    intake.start()
    try:
        inbound = spool / "firms" / "00005" / "inbound" / "dpl"
        for name in ("a.fixml", "b.fixml", "a.fixml"):
            count = len(handler.seen) + 1
            (inbound / name).write_bytes(b"same content")
            intake.nominate(inbound / name, complete=True)
            wait_for(lambda n=count: len(ledger.files(state="archived")) == n, what=f"{name} done")
        assert [name for name, _ in handler.seen] == ["a.fixml", "b.fixml", "a.fixml"]
        first, second, third = sorted(ledger.files(state="archived"), key=lambda r: r.id)
        assert (second.duplicate_of, third.duplicate_of) == (first.id, first.id)
        assert all(Path(r.archive_path or "").exists() for r in (first, second, third))
    finally:
        intake.stop(5)


def test_unreadable_file_is_quarantined_with_reason(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler)
    intake.start()
    try:
        inbound = spool / "firms" / "00005" / "inbound" / "dpl"
        (inbound / "junk.fixml").write_bytes(b"\x00\x01\x02")
        intake.nominate(inbound / "junk.fixml", complete=True)
        wait_for(lambda: ledger.files(state="quarantined"), what="quarantined")
        row = ledger.files(state="quarantined")[0]
        reason = json.loads(
            (spool / "quarantine" / f"{row.id}__junk.fixml.reason.json").read_text()
        )
        assert reason["reason"] == "BINARY" and reason["firm"] == "00005"
        assert reason["technical_contact"] == "Ops <ops@example.com>"
        assert (spool / "quarantine" / f"{row.id}__junk.fixml").read_bytes() == b"\x00\x01\x02"
    finally:
        intake.stop(5)


def test_folder_without_a_flow_handler_is_left_alone(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler)
    intake.start()
    try:
        waiting = spool / "firms" / "00005" / "inbound" / "ebe" / "instructions.csv"
        waiting.write_bytes(b"account,series\n")
        time.sleep(2.5)
        assert waiting.exists() and ledger.files() == []
    finally:
        intake.stop(5)


def test_restart_after_crash_between_claim_and_archive(spool: Path, ledger: Ledger) -> None:
    """Rows left 'received', 'claimed' and 'processed' by a crash are each finished once."""
    inbound = spool / "firms" / "00005" / "inbound" / "dpl"
    work = spool / "work" / "dpl" / "00005"
    work.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    # 1. intent recorded, rename not done yet
    (inbound / "one.fixml").write_bytes(b"one")
    ledger.record_file(
        flow="dpl",
        firm="00005",
        account="00005",
        name="one.fixml",
        sha256="",
        size=3,
        received_at=now,
        cycle=None,
        work_path=str(work / "x1__one.fixml"),
        source=str(inbound / "one.fixml"),
    )
    # 2. claimed, not processed
    (work / "x2__two.fixml").write_bytes(b"two")
    b = ledger.record_file(
        flow="dpl",
        firm="00005",
        account="00005",
        name="two.fixml",
        sha256="",
        size=3,
        received_at=now,
        cycle=None,
        work_path=str(work / "x2__two.fixml"),
        source="gone",
    )
    ledger.set_file_state(b, "claimed", "", sha256="abc")
    # 3. processed, not archived
    (work / "x3__three.fixml").write_bytes(b"three")
    c = ledger.record_file(
        flow="dpl",
        firm="00005",
        account="00005",
        name="three.fixml",
        sha256="",
        size=5,
        received_at=now,
        cycle=None,
        work_path=str(work / "x3__three.fixml"),
        source="gone",
    )
    ledger.set_file_state(c, "processed", "")
    handler = RecordingHandler(ledger)
    intake = make_intake(spool, ledger, handler)
    intake.start()
    try:
        wait_for(lambda: len(ledger.files(state="archived")) == 3, what="all archived")
        assert sorted(name for name, _ in handler.seen) == ["one.fixml", "two.fixml"]
        assert not list(work.iterdir())
    finally:
        intake.stop(5)


def test_disk_full_while_writing_outputs_keeps_the_input_for_retry(
    spool: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the flow writes its outputs: nothing half-written is visible, the input stays
    claimed (never a reject) and is processed once the disk has room again."""
    import errno

    from gateway.errors import TransientError
    from gateway.spool import fsio
    from gateway.spool.fsio import write_atomic

    outbound = spool / "firms" / "00005" / "outbound" / "dpl"
    attempts: list[str] = []
    real_fsync = os.fsync

    def handler(claimed: ClaimedFile) -> None:
        if not attempts:

            def full(fd: int) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(fsio.os, "fsync", full)
            try:
                write_atomic(outbound / "out.receipt.json", b"x" * 100_000)
            except TransientError:
                attempts.append("disk full")
                raise
            finally:
                monkeypatch.setattr(fsio.os, "fsync", real_fsync)
        attempts.append("ok")
        write_atomic(outbound / "out.receipt.json", b"complete")
        ledger.set_file_state(claimed.file_id, "processed", "test")

    intake = SpoolIntake(
        spool_root=spool,
        ledger=ledger,
        handlers={"dpl": handler},
        clock=lambda: dt.datetime.now(dt.UTC),
        stable_interval_s=0.2,
        sweep_interval_s=0.5,
        workers=1,
    )
    intake.start()
    try:
        inbound = spool / "firms" / "00005" / "inbound" / "dpl"
        (inbound / "in.fixml").write_bytes(b"payload")
        intake.nominate(inbound / "in.fixml", complete=True)
        wait_for(lambda: attempts == ["disk full"], what="first attempt failed")
        time.sleep(0.3)
        assert not list(outbound.iterdir())  # no half-written output, no temp file
        row = ledger.files()[0]
        assert row.state == "claimed" and Path(row.work_path or "").read_bytes() == b"payload"
        intake.retry_now()  # as when space was freed (the backoff would get there too)
        wait_for(lambda: ledger.files(state="archived"), timeout=30, what="processed after retry")
        assert attempts == ["disk full", "ok"]
        assert (outbound / "out.receipt.json").read_bytes() == b"complete"
        assert [p.name for p in outbound.iterdir()] == ["out.receipt.json"]
    finally:
        intake.stop(5)


def test_a_flood_of_tiny_files_is_taken_once_each(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    intake = SpoolIntake(
        spool_root=spool,
        ledger=ledger,
        handlers={"dpl": handler},
        clock=lambda: dt.datetime.now(dt.UTC),
        stable_interval_s=0.3,
        sweep_interval_s=1.0,
        workers=2,
    )
    intake.start()
    try:
        inbound = spool / "firms" / "00005" / "inbound" / "dpl"
        names = [f"tiny {i:04d} ü.fixml" for i in range(400)]
        for i, name in enumerate(names):
            (inbound / f".{name}.tmp").write_bytes(f"<FIXML/> {i}".encode())
            (inbound / f".{name}.tmp").rename(inbound / name)
        wait_for(
            lambda: len(ledger.files(state="archived")) == 400,
            timeout=90,
            what="400 files archived",
        )
        assert sorted(n for n, _ in handler.seen) == sorted(names)
        assert not list(inbound.iterdir())
    finally:
        intake.stop(5)
