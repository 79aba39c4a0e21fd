"""The intake with real watchdog, real files and the real ledger; flow handlers are small fakes."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def running_intake(
    spool: Path,
    ledger: Ledger,
    handler: Callable[[ClaimedFile], None],
    stable: float = 0.6,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    *,
    sweep: float = 1.0,
    workers: int = 2,
) -> Iterator[SpoolIntake]:
    """A started intake of the ``dpl`` folders handing files to ``handler``; stopped on exit."""
    intake = SpoolIntake(
        spool_root=spool,
        ledger=ledger,
        handlers={"dpl": handler},
        clock=clock,
        stable_interval_s=stable,
        sweep_interval_s=sweep,
        workers=workers,
        technical_contact=lambda firm: "Ops <ops@example.com>",
    )
    intake.start()
    try:
        yield intake
    finally:
        intake.stop(5)


def test_temp_name_then_rename_is_taken_once_complete(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler):
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


@pytest.mark.parametrize("mtime", [1_000_000_000, 4_000_000_000], ids=["past", "future"])
def test_a_file_of_another_writer_is_received_when_first_seen_whatever_its_mtime(
    spool: Path, ledger: Ledger, mtime: int
) -> None:
    # The daemon's clock says Friday 23:59:59 CT; the writer dated the file 2001 or 2096.
    start = dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    began = time.monotonic()
    clock = lambda: start + dt.timedelta(seconds=time.monotonic() - began)  # noqa: E731
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler, stable=0.6, clock=clock):
        target = spool / "firms" / "00005" / "inbound" / "dpl" / "dated.fixml"
        target.write_bytes(b"<FIXML/>\n")
        os.utime(target, (mtime, mtime))
        wait_for(lambda: handler.seen, what="file processed")
        row = ledger.files()[0]
        # seen within a fraction of a second, processed after the stable wait: still Friday
        assert start <= row.received_at < start + dt.timedelta(seconds=0.9)


def test_slow_writer_in_place_is_taken_only_when_stable(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler, stable=1.0):
        target = spool / "firms" / "00005" / "inbound" / "dpl" / "slow.fixml"
        chunks = [b"x" * 4096 for _ in range(6)]
        with open(target, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(0.4)  # shorter than the stable interval
        wait_for(lambda: handler.seen, what="slow file processed")
        assert handler.seen == [("slow.fixml", b"".join(chunks))]


def test_bytes_sent_again_are_a_new_submission_that_names_the_earlier_file(
    spool: Path, ledger: Ledger
) -> None:
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler) as intake:
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


def test_unreadable_file_is_quarantined_with_reason(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler) as intake:
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


def test_folder_without_a_flow_handler_is_left_alone(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler):
        waiting = spool / "firms" / "00005" / "inbound" / "ebe" / "instructions.csv"
        waiting.write_bytes(b"account,series\n")
        time.sleep(2.5)
        assert waiting.exists() and ledger.files() == []


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
    with running_intake(spool, ledger, handler):
        wait_for(lambda: len(ledger.files(state="archived")) == 3, what="all archived")
        assert sorted(name for name, _ in handler.seen) == ["one.fixml", "two.fixml"]
        assert not list(work.iterdir())


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

    with running_intake(spool, ledger, handler, stable=0.2, sweep=0.5, workers=1) as intake:
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


def test_a_flood_of_tiny_files_is_taken_once_each(spool: Path, ledger: Ledger) -> None:
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler, stable=0.3):
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


def test_half_written_hidden_outputs_of_a_killed_run_are_removed_at_start(
    spool: Path, ledger: Ledger
) -> None:
    outbound = spool / "firms" / "00005" / "outbound"
    reports = outbound / "dpl" / "reports"
    reports.mkdir(parents=True)
    stale = [
        outbound / "dpl" / ".a.fixml.rejects.fixml.0badc0de.tmp",
        outbound / "dpl" / ".a.fixml.receipt.json.1234abcd.tmp",
        reports / ".DPL_20261120.report.csv.deadbeef.tmp",
    ]
    kept = [
        outbound / "dpl" / "a.fixml.receipt.json",
        outbound / "dpl" / ".notes.tmp",  # not a name posgate makes
    ]
    for path in stale + kept:
        path.write_bytes(b"half")
    with running_intake(spool, ledger, RecordingHandler(ledger)):
        assert [p for p in stale if p.exists()] == []
        assert all(p.exists() for p in kept)


@pytest.mark.parametrize("length", [201, 238, 255])
def test_a_name_too_long_to_claim_is_quarantined_once_with_its_reason(
    spool: Path, ledger: Ledger, length: int
) -> None:
    inbound = spool / "firms" / "00005" / "inbound" / "dpl"
    name = "p" * (length - len(".fixml")) + ".fixml"
    (inbound / name).write_bytes(b"<FIXML/>\n")
    handler = RecordingHandler(ledger)
    with running_intake(spool, ledger, handler, stable=0.2):
        wait_for(lambda: ledger.files(state="quarantined"), timeout=15, what="quarantined")
        time.sleep(2.5)  # two more sweeps: no new row, nothing left waiting
        rows = ledger.files()
        assert [(r.name, r.state, r.reason) for r in rows] == [
            (name, "quarantined", "NAME_TOO_LONG")
        ]
        assert handler.seen == [] and not (inbound / name).exists()
        (reason_file,) = (spool / "quarantine").glob("*.reason.json")
        reason = json.loads(reason_file.read_text())
        assert reason["file"] == name and reason["reason"] == "NAME_TOO_LONG"
        assert f"{length} bytes" in reason["message"]
        kept = reason_file.with_name(reason_file.name.removesuffix(".reason.json"))
        assert kept.read_bytes() == b"<FIXML/>\n"
        outbound = spool / "firms" / "00005" / "outbound" / "dpl"
        notice = json.loads((outbound / f"NAME_TOO_LONG.{rows[0].id}.unreadable.json").read_text())
        assert notice["file"] == name and notice["processed"] is False


@pytest.mark.parametrize(
    "fault",
    [
        lambda: OSError(28, "No space left on device"),  # ENOSPC from a plain open()/write()
        lambda: OSError(5, "Input/output error"),  # EIO
        lambda: __import__("sqlite3").OperationalError("database or disk is full"),
    ],
    ids=["ENOSPC", "EIO", "sqlite-full"],
)
def test_a_full_disk_or_io_error_is_retried_without_a_restart_and_counted(
    spool: Path, ledger: Ledger, fault: Callable[[], Exception]
) -> None:
    """Injected in the flow (as the fsio layer or SQLite raise them): the file stays claimed,
    ``posgate_files_failed_total`` counts it, and the backoff retry processes it."""
    from gateway import metrics

    attempts: list[str] = []

    def handler(claimed: ClaimedFile) -> None:
        if len(attempts) < 2:
            attempts.append("fault")
            raise fault()
        attempts.append("ok")
        ledger.set_file_state(claimed.file_id, "processed", "test")

    failed = metrics.FILES_FAILED.labels(flow="dpl")
    before = failed._value.get()  # type: ignore[attr-defined]
    with running_intake(spool, ledger, handler, stable=0.2, sweep=0.5, workers=1) as intake:
        inbound = spool / "firms" / "00005" / "inbound" / "dpl"
        (inbound / "in.fixml").write_bytes(b"payload")
        intake.nominate(inbound / "in.fixml", complete=True)
        wait_for(lambda: attempts == ["fault"], what="first attempt failed")
        assert ledger.files()[0].state == "claimed"
        intake.retry_now()
        wait_for(lambda: len(attempts) == 2, what="second attempt")
        intake.retry_now()
        wait_for(lambda: ledger.files(state="archived"), timeout=30, what="processed at last")
        assert attempts == ["fault", "fault", "ok"]
        assert failed._value.get() - before == 2  # type: ignore[attr-defined]
