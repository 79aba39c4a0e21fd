"""The file operations of an SFTP session, driven directly (no network): confinement, rights,
uploads."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from paramiko import SFTPAttributes
from paramiko.sftp import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
)

from gateway.sftp.handles import (
    STALE_UPLOAD_RE,
    UploadFailed,
    UploadHandle,
    remove_stale_uploads,
    upload_temp_name,
)
from gateway.sftp.paths import Refused, split_virtual, upload_name_problem
from tests.unit.gateway.sftp.views import WRITE_NEW, hidden, names, session, upload

# -- names and paths


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/", []),
        ("", []),
        (".", []),
        ("..", []),
        ("/../../state", ["state"]),
        ("inbound/dpl/../../..//outbound/./dpl", ["outbound", "dpl"]),
        ("//etc/passwd", ["etc", "passwd"]),
        ("/inbound/dpl/pos ü 1.fixml", ["inbound", "dpl", "pos ü 1.fixml"]),
    ],
)
def test_client_paths_resolve_like_a_chroot(path: str, parts: list[str]) -> None:
    assert split_virtual(path) == parts


@pytest.mark.parametrize("name", ["pos 1.fixml", "positions-ü-€.fixml", "名前.csv", "a" * 200])
def test_ordinary_and_odd_upload_names_are_accepted(name: str) -> None:
    assert upload_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "", ".hidden", "..", "a\x00b", "line\nbreak", "tab\there", "é" * 128,
        "a" * 201,  # room is kept for the names derived from it (work/, rejects, reasons)
        "invoice\u202eLMXIF.csv",  # RTL override: shown as "invoice.fixml..." in a listing
        "pos\u2066x\u2069.fixml", "zero\u200bwidth.fixml", "c1\x85.fixml",
    ],
)  # fmt: skip
def test_bad_upload_names_are_refused(name: str) -> None:
    assert upload_name_problem(name) is not None


def test_temporary_names_are_hidden_recognisable_and_short_enough() -> None:
    for name in ("x.fixml", "é" * 127):
        temp = upload_temp_name(name)
        assert temp.startswith(".") and temp.endswith(".upload")
        assert STALE_UPLOAD_RE.match(temp)
        assert len(temp.encode("utf-8")) <= 255
    assert upload_temp_name("x") != upload_temp_name("x")


# -- uploads


def test_upload_is_hidden_until_closed_then_renamed_into_place(spool: Path) -> None:
    iface, uploads = session(spool)
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    handle = iface.open("/inbound/dpl/pos 1.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    assert handle.write(0, b"hello ") == SFTP_OK
    assert handle.write(6, b"world\n") == SFTP_OK
    assert not (folder / "pos 1.fixml").exists()
    assert len(hidden(folder)) == 1
    assert names(iface.list_folder("/inbound/dpl")) == []
    handle.close()
    assert (folder / "pos 1.fixml").read_bytes() == b"hello world\n"
    assert hidden(folder) == []
    assert uploads == [("fa", folder / "pos 1.fixml")]
    assert (folder / "pos 1.fixml").stat().st_mode & 0o777 == 0o640


def test_uploading_an_existing_name_replaces_it(spool: Path) -> None:
    iface, _ = session(spool)
    upload(iface, "/inbound/dpl/a.fixml", b"first version, longer")
    upload(iface, "/inbound/dpl/a.fixml", b"second")
    assert (spool / "firms/fa/inbound/dpl/a.fixml").read_bytes() == b"second"


def test_exclusive_create_of_an_existing_name_fails(spool: Path) -> None:
    iface, _ = session(spool)
    upload(iface, "/inbound/dpl/a.fixml", b"one")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    assert iface.open("/inbound/dpl/a.fixml", flags, SFTPAttributes()) == SFTP_FAILURE


def test_opening_without_truncation_resumes_from_the_current_content(spool: Path) -> None:
    iface, _ = session(spool)
    upload(iface, "/inbound/dpl/a.fixml", b"line 1\n")
    handle = iface.open("/inbound/dpl/a.fixml", os.O_WRONLY, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    assert handle.write(7, b"line 2\n") == SFTP_OK
    handle.close()
    assert (spool / "firms/fa/inbound/dpl/a.fixml").read_bytes() == b"line 1\nline 2\n"


def test_writing_past_the_size_limit_fails_and_discards_the_upload(spool: Path) -> None:
    iface, uploads = session(spool, max_bytes=10)
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    handle = iface.open("/inbound/dpl/big.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    assert handle.write(0, b"0123456789") == SFTP_OK  # exactly the limit is fine
    assert handle.write(10, b"X") == SFTP_FAILURE
    assert list(folder.iterdir()) == []
    assert handle.write(11, b"more") == SFTP_FAILURE
    with pytest.raises(UploadFailed):
        handle.close()
    iface.session_ended()
    handle.close()
    assert list(folder.iterdir()) == [] and uploads == []


def test_a_sparse_write_far_past_the_limit_fails(spool: Path) -> None:
    iface, _ = session(spool, max_bytes=1000)
    handle = iface.open("/inbound/dpl/sparse.fixml", WRITE_NEW, SFTPAttributes())
    assert isinstance(handle, UploadHandle)
    assert handle.write(10**12, b"x") == SFTP_FAILURE


# -- rights


@pytest.mark.parametrize(
    "path",
    [
        "/x.fixml",
        "/inbound/x.fixml",
        "/outbound/dpl/x.fixml",
        "/outbound/x.fixml",
        "/inbound/dpl/.hidden.fixml",
        "/inbound/dpl/..",
    ],
)
def test_firms_cannot_write_outside_inbound_flow_folders(spool: Path, path: str) -> None:
    iface, _ = session(spool)
    result = iface.open(path, WRITE_NEW, SFTPAttributes())
    assert result in (SFTP_PERMISSION_DENIED, SFTP_FAILURE)
    assert sorted(p.name for p in (spool / "firms" / "fa").rglob("*") if p.is_file()) == [
        "a.receipt.json"
    ]


def test_firms_read_and_delete_outbound_files_but_never_folders(spool: Path) -> None:
    iface, _ = session(spool)
    handle = iface.open("/outbound/dpl/a.receipt.json", os.O_RDONLY, SFTPAttributes())
    assert handle.read(0, 100) == b"{}"  # type: ignore[union-attr]
    handle.close()  # type: ignore[union-attr]
    assert iface.remove("/outbound/dpl/a.receipt.json") == SFTP_OK
    assert not (spool / "firms/fa/outbound/dpl/a.receipt.json").exists()
    assert iface.remove("/outbound/dpl") == SFTP_FAILURE
    assert iface.rmdir("/outbound/dpl") == SFTP_PERMISSION_DENIED
    assert iface.mkdir("/inbound/dpl/new", SFTPAttributes()) == SFTP_PERMISSION_DENIED
    assert (spool / "firms/fa/outbound/dpl").is_dir()


def test_exchanges_only_read(spool: Path) -> None:
    iface, _ = session(spool, login="xch", kind="exchange")
    assert names(iface.list_folder("/outbound/dpl")) == ["DPL_20260105.fixml"]
    handle = iface.open("/outbound/dpl/DPL_20260105.fixml", os.O_RDONLY, SFTPAttributes())
    assert handle.read(0, 10) == b"x"  # type: ignore[union-attr]
    assert iface.open("/outbound/dpl/n.fixml", WRITE_NEW, SFTPAttributes()) == (
        SFTP_PERMISSION_DENIED
    )
    assert iface.open("/outbound/dpl/DPL_20260105.fixml", os.O_RDWR, SFTPAttributes()) == (
        SFTP_PERMISSION_DENIED
    )
    assert iface.remove("/outbound/dpl/DPL_20260105.fixml") == SFTP_PERMISSION_DENIED
    assert iface.rename("/outbound/dpl/DPL_20260105.fixml", "/outbound/dpl/y") == (
        SFTP_PERMISSION_DENIED
    )
    assert (spool / "exchanges/xch/outbound/dpl/DPL_20260105.fixml").read_text() == "x"


def test_renames_stay_inside_inbound_and_never_clobber(spool: Path) -> None:
    iface, uploads = session(spool)
    folder = spool / "firms" / "fa" / "inbound"
    upload(iface, "/inbound/dpl/a.filepart", b"A")
    upload(iface, "/inbound/dpl/b.fixml", b"B")
    assert iface.rename("/inbound/dpl/a.filepart", "/inbound/dpl/b.fixml") == SFTP_FAILURE
    assert iface.rename("/inbound/dpl/a.filepart", "/inbound/pmc/a.csv") == SFTP_OK
    assert (folder / "pmc" / "a.csv").read_bytes() == b"A"
    assert uploads[-1] == ("fa", folder / "pmc" / "a.csv")
    assert iface.posix_rename("/inbound/pmc/a.csv", "/inbound/dpl/b.fixml") == SFTP_OK
    assert (folder / "dpl" / "b.fixml").read_bytes() == b"A"
    assert iface.rename("/inbound/dpl/b.fixml", "/outbound/dpl/b.fixml") == (SFTP_PERMISSION_DENIED)
    assert iface.rename("/inbound/dpl/b.fixml", "/inbound/dpl/.b") == SFTP_PERMISSION_DENIED
    assert iface.rename("/outbound/dpl/a.receipt.json", "/inbound/dpl/r.json") == (
        SFTP_PERMISSION_DENIED
    )


def test_symlinks_can_neither_be_made_nor_read(spool: Path) -> None:
    iface, _ = session(spool)
    assert iface.symlink("/inbound/dpl", "/inbound/dpl/link") == SFTP_PERMISSION_DENIED
    assert iface.readlink("/inbound") == SFTP_PERMISSION_DENIED
    assert not (spool / "firms/fa/inbound/dpl/link").exists()


def test_setstat_of_times_is_answered_but_never_applied(spool: Path) -> None:
    iface, _ = session(spool)
    upload(iface, "/inbound/dpl/a.fixml", b"A")
    before = (spool / "firms/fa/inbound/dpl/a.fixml").stat().st_mtime_ns
    attr = SFTPAttributes()
    attr.st_atime, attr.st_mtime = 4_000_000_000, 4_000_000_000  # 2096
    attr._flags = SFTPAttributes.FLAG_AMTIME
    assert iface.chattr("/inbound/dpl/a.fixml", attr) == SFTP_OK
    assert (spool / "firms/fa/inbound/dpl/a.fixml").stat().st_mtime_ns == before
    assert iface.chattr("/outbound/dpl/a.receipt.json", attr) == SFTP_PERMISSION_DENIED
    owner = SFTPAttributes()
    owner.st_uid, owner.st_gid = 0, 0
    owner._flags = SFTPAttributes.FLAG_UIDGID
    assert iface.chattr("/inbound/dpl/a.fixml", owner) == SFTP_PERMISSION_DENIED


# -- confinement


def test_nothing_outside_the_root_is_reachable(spool: Path) -> None:
    iface, _ = session(spool)
    assert names(iface.list_folder("/")) == ["inbound", "outbound"]
    assert names(iface.list_folder("/../../..")) == ["inbound", "outbound"]
    assert iface.canonicalize("../../state") == "/state"
    for path in ("/state", "/../../state/ledger.sqlite3", str(spool / "state"), "/firms/fb"):
        assert iface.stat(path) == SFTP_NO_SUCH_FILE
        assert iface.open(path, os.O_RDONLY, SFTPAttributes()) == SFTP_NO_SUCH_FILE
    assert iface.open("/../fb/inbound/dpl/b.fixml", os.O_RDONLY, SFTPAttributes()) == (
        SFTP_NO_SUCH_FILE
    )


def test_symlinks_pointing_out_of_the_root_are_invisible(spool: Path) -> None:
    root = spool / "firms" / "fa"
    os.symlink(spool / "state", root / "inbound" / "dpl" / "escape")
    os.symlink(spool / "firms" / "fb", root / "neighbour")
    os.symlink("/", root / "inbound" / "top")
    iface, _ = session(spool)
    assert names(iface.list_folder("/")) == ["inbound", "outbound"]
    assert names(iface.list_folder("/inbound")) == ["dpl", "pmc"]
    assert names(iface.list_folder("/inbound/dpl")) == []
    for path in (
        "/inbound/dpl/escape",
        "/inbound/dpl/escape/ledger.sqlite3",
        "/neighbour",
        "/neighbour/inbound/dpl/b.fixml",
        "/inbound/top/etc/passwd",
    ):
        assert iface.stat(path) == SFTP_NO_SUCH_FILE
        assert iface.lstat(path) == SFTP_NO_SUCH_FILE
        assert iface.open(path, os.O_RDONLY, SFTPAttributes()) == SFTP_NO_SUCH_FILE
    assert iface.open("/inbound/dpl/escape/x", WRITE_NEW, SFTPAttributes()) == SFTP_NO_SUCH_FILE
    assert iface.list_folder("/inbound/dpl/escape") == SFTP_NO_SUCH_FILE
    assert iface.remove("/inbound/dpl/escape") == SFTP_PERMISSION_DENIED
    assert (spool / "state" / "ledger.sqlite3").read_bytes() == b"ledger"
    assert sorted(p.name for p in (spool / "state").iterdir()) == ["ledger.sqlite3"]


def test_rights_follow_where_a_symlink_really_points(spool: Path) -> None:
    # A link inside the root lends no rights: inbound/dpl/out -> outbound/dpl is read-only.
    root = spool / "firms" / "fa"
    os.symlink(root / "outbound" / "dpl", root / "inbound" / "dpl" / "out")
    iface, _ = session(spool)
    assert names(iface.list_folder("/inbound/dpl/out")) == ["a.receipt.json"]
    result = iface.open("/inbound/dpl/out/x.fixml", WRITE_NEW, SFTPAttributes())
    assert result == SFTP_PERMISSION_DENIED
    assert sorted(p.name for p in (root / "outbound" / "dpl").iterdir()) == ["a.receipt.json"]


def test_hidden_and_unrepresentable_names_are_never_listed_or_opened(spool: Path) -> None:
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    (folder / ".other.0123456789ab.upload").write_bytes(b"someone's half upload")
    (folder / "visible.fixml").write_bytes(b"v")
    with open(os.path.join(os.fsencode(folder), b"latin1-\xe9.fixml"), "wb") as fh:
        fh.write(b"l")
    iface, _ = session(spool)
    assert names(iface.list_folder("/inbound/dpl")) == ["visible.fixml"]
    assert iface.stat("/inbound/dpl/.other.0123456789ab.upload") == SFTP_NO_SUCH_FILE
    flags = os.O_RDONLY
    assert iface.open("/inbound/dpl/.other.0123456789ab.upload", flags, SFTPAttributes()) == (
        SFTP_NO_SUCH_FILE
    )
    assert iface.remove("/inbound/dpl/.other.0123456789ab.upload") == SFTP_NO_SUCH_FILE


def test_stale_uploads_of_a_killed_run_are_removed_and_nothing_else(spool: Path) -> None:
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    (folder / ".pos.fixml.0123456789ab.upload").write_bytes(b"half")
    (folder / ".keep").write_bytes(b"")
    (folder / "done.fixml").write_bytes(b"done")
    (folder / "x.upload").write_bytes(b"a firm's file")
    assert remove_stale_uploads(spool / "firms" / "fa") == 1
    assert sorted(p.name for p in folder.iterdir()) == [".keep", "done.fixml", "x.upload"]


def test_resolution_walks_from_the_root_and_agrees_with_realpath(spool: Path) -> None:
    # Every path of up to three parts over folders, files, missing names and symlinks (inside,
    # outside, to a file, dangling, chained) resolves as realpath does, or is refused as hidden
    # or outside the root.
    root = spool / "firms" / "fa"
    (root / "inbound" / "dpl" / "f.fixml").write_bytes(b"f")
    os.symlink(root / "outbound", root / "inbound" / "to_out")
    os.symlink(spool / "state", root / "inbound" / "dpl" / "to_state")
    os.symlink("f.fixml", root / "inbound" / "dpl" / "to_file")
    os.symlink("nowhere", root / "inbound" / "dpl" / "dangling")
    os.symlink("../inbound/to_out", root / "outbound" / "chain")
    os.symlink(root, root / "inbound" / "pmc" / "to_root")
    iface, _ = session(spool)
    real_root = os.path.realpath(root)
    names_ = ["inbound", "outbound", "dpl", "pmc", "f.fixml", "to_out", "to_state", "to_file",
              "dangling", "chain", "to_root", "missing"]  # fmt: skip
    checked = 0
    for parts in itertools.chain(
        ([a] for a in names_),
        ([a, b] for a in names_ for b in names_),
        ([a, b, c] for a in ("inbound", "outbound") for b in names_ for c in names_),
    ):
        expected = os.path.realpath(os.path.join(real_root, *parts))
        rel = os.path.relpath(expected, real_root).split(os.sep)
        outside = expected != real_root and not expected.startswith(real_root + os.sep)
        try:
            got = iface._resolve(parts)
        except Refused:
            assert outside or any(p.startswith(".") for p in rel), parts
            continue
        assert not outside and got == expected, parts
        checked += 1
    assert checked > 400  # of 444
