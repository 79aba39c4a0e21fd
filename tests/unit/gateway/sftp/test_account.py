"""The bookkeeping of an SFTP session, driven directly (no network): its registration and audit
line, the quota, and the hand-over of closed uploads to the intake."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path

import pytest
from paramiko import SFTPAttributes
from paramiko.sftp import SFTP_FAILURE, SFTP_OK

from gateway.sftp import account as account_module
from gateway.sftp.account import FolderSynced, HandOverThread, SessionSettings, SftpAccount
from gateway.sftp.filesystem import SpoolSftpInterface
from gateway.sftp.handles import UploadFailed, UploadHandle
from tests.unit.gateway.sftp.views import WRITE_NEW, Connection, session, upload

# -- lifecycle and audit


def test_a_session_is_registered_while_it_lasts_and_its_audit_line_counts_what_it_did(
    spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    iface, _ = session(spool, max_bytes=100)
    ended: list[bool] = []
    iface._on_end = lambda: ended.append(True)
    assert iface.settings.sessions == {iface}
    with caplog.at_level(logging.INFO, logger="gateway.sftp.account"):
        upload(iface, "/inbound/dpl/a.fixml", b"12345")
        upload(iface, "/inbound/pmc/b.csv", b"123")
        reader = iface.open("/outbound/dpl/a.receipt.json", os.O_RDONLY, SFTPAttributes())
        assert reader.read(0, 100) == b"{}"  # type: ignore[union-attr]
        reader.close()  # type: ignore[union-attr]
        assert iface.mkdir("/inbound/dpl/new", SFTPAttributes()) != SFTP_OK
        big = iface.open("/inbound/dpl/big.fixml", WRITE_NEW, SFTPAttributes())
        assert isinstance(big, UploadHandle) and big.write(0, b"x" * 101) == SFTP_FAILURE
        cut = iface.open("/inbound/dpl/cut.fixml", WRITE_NEW, SFTPAttributes())
        assert isinstance(cut, UploadHandle) and cut.write(0, b"half") == SFTP_OK
        iface.session_ended()
    assert iface.settings.sessions == set() and ended == [True] and iface.ended.is_set()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sftp ")]
    transfers = sorted(line.split(" seconds=")[0] for line in lines if "sftp transfer" in line)
    assert transfers == [
        "sftp transfer login=fa op=download path=/outbound/dpl/a.receipt.json bytes=2",
        "sftp transfer login=fa op=upload path=/inbound/dpl/a.fixml bytes=5",
        "sftp transfer login=fa op=upload path=/inbound/dpl/big.fixml bytes=0",
        "sftp transfer login=fa op=upload path=/inbound/dpl/cut.fixml bytes=4",
        "sftp transfer login=fa op=upload path=/inbound/pmc/b.csv bytes=3",
    ]
    outcomes = sorted(line.rsplit(" outcome=")[1] for line in lines if "sftp transfer" in line)
    assert outcomes == ["complete", "complete", "complete", "dropped", "failed"]
    assert lines[-1].startswith("sftp session ended login=fa peer=192.0.2.1 seconds=")
    assert lines[-1].endswith(
        " uploads=2 bytes_in=8 downloads=1 bytes_out=2 failed=1 interrupted=0 dropped=1"
        " refused=1 outcome=interrupted"
    )


def test_session_end_with_an_open_upload_leaves_nothing(spool: Path) -> None:
    iface, uploads = session(spool)
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    handle = iface.open("/inbound/dpl/cut.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    assert handle.write(0, b"half a file") == SFTP_OK
    iface.session_ended()
    handle.close()  # leftover handles are closed after the session ended: must not commit
    assert list(folder.iterdir()) == []
    assert uploads == []


def test_with_a_keep_time_an_interrupted_upload_waits_hidden_for_a_resume(spool: Path) -> None:
    iface, uploads = session(spool)
    iface.settings.resume_keep_s = 3600
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    handle = iface.open("/inbound/dpl/cut.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle) and handle.write(0, b"first half") == SFTP_OK
    iface.session_ended()
    assert [p.name for p in folder.iterdir()] == [".cut.fixml.partial"]
    assert uploads == []
    again, uploads = session(spool)
    again.settings.resume_keep_s = 3600
    assert again.stat("/inbound/dpl/cut.fixml").st_size == 10  # type: ignore[union-attr]
    resumed = again.open("/inbound/dpl/cut.fixml", os.O_WRONLY, SFTPAttributes())
    assert isinstance(resumed, UploadHandle) and resumed.write(10, b", second") == SFTP_OK
    resumed.close()
    assert (folder / "cut.fixml").read_bytes() == b"first half, second"
    assert [p.name for p in folder.iterdir()] == ["cut.fixml"]
    assert uploads == [("fa", folder / "cut.fixml")]


# -- hand-over to the intake


def test_upload_times_set_on_the_handle_are_ignored_and_the_close_instant_is_passed(
    spool: Path,
) -> None:
    closed_at = dt.datetime(2026, 11, 21, 5, 59, 59, 500_000, tzinfo=dt.UTC)  # 23:59:59.5 CT
    received: list[dt.datetime] = []
    settings = SessionSettings(
        max_file_bytes=1000,
        on_upload=lambda a, p, at: received.append(at),
        clock=lambda: closed_at,
    )
    account = SftpAccount("fa", "firm", spool / "firms/fa", ())
    iface = SpoolSftpInterface(Connection(account), settings)
    handle = iface.open("/inbound/dpl/t.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    attr = SFTPAttributes()
    attr.st_atime, attr.st_mtime = 1_000_000_000, 1_000_000_000  # 2001: a long-closed cycle
    attr._flags = SFTPAttributes.FLAG_AMTIME
    assert handle.chattr(attr) == SFTP_OK
    assert handle.write(0, b"data") == SFTP_OK
    handle.close()
    assert received == [closed_at]
    assert (spool / "firms/fa/inbound/dpl/t.fixml").stat().st_mtime > 1_600_000_000


def test_a_deferred_hand_over_tells_the_intake_after_the_file_is_in_place(spool: Path) -> None:
    iface, uploads = session(spool)
    deferred: list[tuple[str, FolderSynced]] = []
    iface.settings.after_folder_sync = lambda folder, work: deferred.append((folder, work))
    upload(iface, "/inbound/dpl/a.fixml", b"A")
    final = spool / "firms/fa/inbound/dpl/a.fixml"
    assert final.read_bytes() == b"A" and uploads == [] and len(deferred) == 1
    folder, work = deferred.pop()
    assert folder == str(final.parent)
    work(None)
    assert uploads == [("fa", final)]
    assert iface.files_in == 1 and iface.bytes_in == 1


def test_the_hand_over_thread_fsyncs_each_folder_of_a_batch_once_and_keeps_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []

    def fsync_folder(folder: str) -> None:
        synced.append(folder)
        if folder.endswith("broken"):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(account_module, "fsync_folder", fsync_folder)
    ran: list[tuple[str, object]] = []
    busy, release = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(5)

    worker = HandOverThread("test-hand-over")
    try:
        worker.submit(hold)
        assert busy.wait(5)  # the thread is held while the rest queues up: one batch
        for name in ("a", "b", "c"):
            worker.after_folder_sync("/in/dpl", lambda error, n=name: ran.append((n, error)))
        worker.submit(lambda: ran.append(("audit", None)))
        worker.after_folder_sync("/in/broken", lambda error: ran.append(("d", error)))
        worker.after_folder_sync("/in/pmc", lambda error: ran.append(("e", error)))
        release.set()
    finally:
        worker.shutdown()  # runs what is queued
    assert sorted(synced) == ["/in/broken", "/in/dpl", "/in/pmc"]  # one fsync per folder
    assert [name for name, _ in ran] == ["a", "b", "c", "audit", "d", "e"]
    errors = dict(ran)
    assert errors["a"] is None and errors["e"] is None
    assert isinstance(errors["d"], OSError) and errors["d"].errno == 5
    late: list[object] = []
    worker.after_folder_sync("/in/dpl", late.append)  # shut down: at once, in the caller
    assert late == [None] and synced[-1] == "/in/dpl"


def test_a_failing_intake_hook_never_fails_the_upload(
    spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(account: SftpAccount, path: Path, at: dt.datetime) -> None:
        raise RuntimeError("intake down")

    iface, _ = session(spool)
    iface.settings.on_upload = broken
    with caplog.at_level(logging.ERROR, logger="gateway.sftp.account"):
        upload(iface, "/inbound/dpl/a.fixml", b"A")
    assert (spool / "firms/fa/inbound/dpl/a.fixml").read_bytes() == b"A"
    assert any("upload hook failed" in r.getMessage() for r in caplog.records)


# -- where an fsync waits


def test_only_a_small_fsync_while_no_other_upload_is_open_may_wait_on_the_loop(
    spool: Path,
) -> None:
    first, _ = session(spool)
    settings = first.settings
    settings.inline_sync_bytes = 1000
    second = SpoolSftpInterface(Connection(first.account), settings)
    small = first.open("/inbound/dpl/small.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(small, UploadHandle) and small.write(0, b"s" * 1000) == SFTP_OK
    assert first.may_sync_inline(small)
    assert small.write(1000, b"s") == SFTP_OK
    assert not first.may_sync_inline(small)  # 1001 bytes to flush
    small.sync()
    assert small.unsynced == 0 and first.may_sync_inline(small)
    other = second.open("/inbound/pmc/other.csv", WRITE_NEW, SFTPAttributes())
    assert isinstance(other, UploadHandle)
    assert not first.may_sync_inline(small)  # another upload is open: its writes must not wait
    other.close()
    assert first.may_sync_inline(small)
    settings.inline_sync_bytes = 0
    assert small.write(1001, b"s") == SFTP_OK and not first.may_sync_inline(small)


def test_every_ending_of_an_upload_gives_its_slot_back(spool: Path) -> None:
    iface, _ = session(spool, max_bytes=10)
    iface.settings.resume_keep_s = 60
    settings = iface.settings

    def opened(name: str) -> UploadHandle:
        handle = iface.open(f"/inbound/dpl/{name}", WRITE_NEW, SFTPAttributes())
        assert isinstance(handle, UploadHandle)
        return handle

    done = opened("done.fixml")
    done.write(0, b"ok")
    done.close()  # committed
    too_big = opened("big.fixml")
    assert too_big.write(0, b"x" * 11) == SFTP_FAILURE
    assert settings.open_uploads == 1  # a failed upload holds its slot until its close
    with pytest.raises(UploadFailed):
        too_big.close()
    kept, failed = opened("kept.fixml"), opened("f.fixml")
    opened("empty.fixml")  # nothing written: dropped at the end
    kept.write(0, b"half")
    failed.write(0, b"x" * 11)
    assert settings.open_uploads == 3
    iface.session_ended()  # kept for a resume, dropped (nothing written), failed
    assert settings.open_uploads == 0
    assert (spool / "firms/fa/inbound/dpl/.kept.fixml.partial").read_bytes() == b"half"


# -- quota


def test_the_quota_counts_every_inbound_byte_and_refuses_the_write_that_passes_it(
    spool: Path,
) -> None:
    iface, uploads = session(spool, quota_bytes=8192)
    upload(iface, "/inbound/dpl/a.fixml", b"a" * 4096)
    (spool / "firms/fa/inbound/pmc/.b.csv.partial").write_bytes(b"b" * 1024)
    assert iface.inbound_bytes() == 5120
    space = iface.space()
    assert space.blocks * space.frsize <= 8192
    assert space.bavail * space.frsize <= 8192 - 5120
    handle = iface.open("/inbound/dpl/c.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    assert handle.write(0, b"c" * 3072) == SFTP_OK  # exactly the room left
    assert handle.write(3072, b"c") == SFTP_FAILURE
    assert iface.take_reason() == "quota exceeded: 8192 bytes in inbound/"
    assert not (spool / "firms/fa/inbound/dpl/c.fixml").exists()
    assert len(uploads) == 1 and iface.refusals == 1


def test_without_a_quota_df_shows_the_file_system(spool: Path) -> None:
    iface, _ = session(spool)
    space, disk = iface.space(), os.statvfs(spool)
    assert (space.blocks, space.frsize) == (disk.f_blocks, disk.f_frsize)
