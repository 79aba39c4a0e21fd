"""What an SFTP session leaves behind and what it may send, through real clients.

* The audit trail: one ``sftp transfer`` line per file a session uploaded or read (login, file,
  bytes, seconds, outcome) and one ``sftp session ended`` line per session (login, peer,
  seconds, what went in and out, outcome), read as the structured fields the daemon's log
  formatter writes.
* A write request with bytes after its data (Go's ``pkg/sftp``, rclone's last write) is served
  by this server and only by it: asyncssh's own SFTP server in the same process still refuses it.
"""

# ruff: noqa: F811 - the fixtures of test_sftp are imported by name and taken as parameters
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest
from paramiko.sftp import CMD_WRITE
from paramiko.sftp_client import int64

from gateway.logs import split_fields
from gateway.sftp.server import ENCRYPTION_ALGS
from tests.integration.test_sftp import (  # noqa: F401 - fixtures
    MakeServer,
    Running,
    _require_tools,
    connect,
    hidden_files,
    keys,
    make_server,
    running,
    sftp_command,
    spool,
    wait_until,
)


class AuditLines(logging.Handler):
    """The ``sftp ...`` log records of the server, as (event, fields) like the daemon writes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, dict[str, object]]] = []
        self._lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        event, fields = split_fields(record)
        if event.startswith("sftp "):
            with self._lock_:
                self.lines.append((event, fields))

    def of(self, event: str) -> list[dict[str, object]]:
        with self._lock_:
            return [fields for name, fields in self.lines if name == event]


@pytest.fixture
def audit() -> Iterator[AuditLines]:
    handler = AuditLines()
    logger = logging.getLogger("gateway.sftp")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _sftp(running: Running, tmp_path: Path, commands: str) -> subprocess.CompletedProcess[str]:
    _require_tools("sftp")
    batch = tmp_path / "batch"
    batch.write_text(commands)
    return subprocess.run(
        sftp_command(running, "fa", "fa", batch),
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the audit trail


def test_a_session_of_openssh_sftp_leaves_one_line_per_file_and_one_for_the_session(
    running: Running, audit: AuditLines, tmp_path: Path
) -> None:
    payload = os.urandom(20_480)
    (tmp_path / "pos.fixml").write_bytes(payload)
    (tmp_path / "big.fixml").write_bytes(os.urandom(9 * 1024 * 1024))  # over the 8 MiB limit
    result = _sftp(
        running,
        tmp_path,
        "put -f pos.fixml inbound/dpl/\n"
        "get outbound/dpl/s1.receipt.json got.json\n"
        "-put big.fixml inbound/pmc/\n"
        "-put pos.fixml outbound/dpl/\n",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "got.json").read_text() == '{"ok": 1}'
    assert wait_until(lambda: len(audit.of("sftp session ended")) == 1)

    (login,) = audit.of("sftp login")
    assert login["login"] == "fa" and login["method"] == "publickey"
    assert str(login["peer"]).startswith("127.0.0.1")
    transfers = {(t["op"], t["path"]): t for t in audit.of("sftp transfer")}
    assert set(transfers) == {
        ("upload", "/inbound/dpl/pos.fixml"),
        ("download", "/outbound/dpl/s1.receipt.json"),
        ("upload", "/inbound/pmc/big.fixml"),
    }
    put = transfers[("upload", "/inbound/dpl/pos.fixml")]
    assert (put["login"], put["bytes"], put["outcome"]) == ("fa", 20_480, "complete")
    got = transfers[("download", "/outbound/dpl/s1.receipt.json")]
    assert (got["bytes"], got["outcome"]) == (9, "complete")
    big = transfers[("upload", "/inbound/pmc/big.fixml")]
    assert big["outcome"] == "failed" and int(str(big["bytes"])) <= 8 * 1024 * 1024
    for line in transfers.values():
        assert 0 <= float(str(line["seconds"])) < 60
    (refused,) = audit.of("sftp refused")
    assert (refused["op"], refused["path"]) == ("write", "'/outbound/dpl/pos.fixml'")  # repr

    (ended,) = audit.of("sftp session ended")
    assert ended["login"] == "fa" and ended["peer"] == login["peer"]
    counts = {k: ended[k] for k in ("uploads", "bytes_in", "downloads", "bytes_out", "failed",
                                    "interrupted", "dropped", "refused", "outcome")}  # fmt: skip
    assert counts == {
        "uploads": 1, "bytes_in": 20_480, "downloads": 1, "bytes_out": 9, "failed": 1,
        "interrupted": 0, "dropped": 0, "refused": 1, "outcome": "failed",
    }  # fmt: skip
    assert 0 <= float(str(ended["seconds"])) < 60  # to 0.1 s: a quick session shows 0.0
    # the session line comes after the lines of its files
    events = [name for name, _ in audit.lines]
    assert events.index("sftp session ended") > max(
        i for i, name in enumerate(events) if name == "sftp transfer"
    )


def test_a_killed_client_leaves_an_interrupted_transfer_and_session(
    running: Running, audit: AuditLines, tmp_path: Path
) -> None:
    _require_tools("sftp")
    (tmp_path / "big.fixml").write_bytes(os.urandom(2_000_000))
    batch = tmp_path / "batch"
    batch.write_text("put big.fixml inbound/dpl/big.fixml\n")
    folder = running.inbound()
    client = subprocess.Popen(
        sftp_command(running, "fa", "fa", batch, "-l", "800"),  # ~20 s: cut off halfway
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(lambda: any(p.stat().st_size > 0 for p in hidden_files(folder)))
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
    assert wait_until(lambda: len(audit.of("sftp session ended")) == 1)
    (transfer,) = audit.of("sftp transfer")
    assert (transfer["op"], transfer["path"], transfer["outcome"]) == (
        "upload", "/inbound/dpl/big.fixml", "interrupted"
    )  # fmt: skip
    kept = (folder / ".big.fixml.partial").stat().st_size
    assert 0 < kept < 2_000_000 and transfer["bytes"] == kept
    (ended,) = audit.of("sftp session ended")
    assert (ended["uploads"], ended["interrupted"], ended["outcome"]) == (0, 1, "interrupted")


# ---------------------------------------------------------------------------------------------
# a write with trailing bytes, served here and nowhere else


def _write_with_trailing_bytes(sftp: paramiko.SFTPClient, path: str) -> None:
    """Open ``path``, send one write whose packet goes on after its data, close."""
    with sftp.open(path, "wb") as remote:
        # paramiko packs each argument: handle, offset, data, then one more string; a status
        # other than OK raises
        sftp._request(CMD_WRITE, remote.handle, int64(0), b"payload", b"trailing")


@pytest.fixture
def stock_asyncssh_server(tmp_path: Path, keys: Any) -> Iterator[int]:
    """asyncssh's own SFTP server (no subclass of ours) on a thread of its own."""
    root = tmp_path / "stock"
    root.mkdir()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def listen() -> Any:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
            authorized_client_keys=asyncssh.import_authorized_keys(keys.public("fa")),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root)),
        )

    async def shutdown() -> None:
        acceptor.close()
        await acceptor.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(20)
    try:
        yield int(acceptor.get_port())
    finally:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_write_with_trailing_bytes_is_served_here_and_refused_by_stock_asyncssh(
    running: Running, stock_asyncssh_server: int
) -> None:
    with connect(running, "fa") as sftp:
        _write_with_trailing_bytes(sftp, "/inbound/dpl/go.fixml")
    assert (running.inbound() / "go.fixml").read_bytes() == b"payload"

    transport = paramiko.Transport(("127.0.0.1", stock_asyncssh_server))
    try:
        pkey = paramiko.Ed25519Key(filename=str(running.keys.private("fa")))
        transport.connect(username="fa", pkey=pkey)
        stock = paramiko.SFTPClient.from_transport(transport)
        assert stock is not None
        with stock.open("/plain.fixml", "wb") as remote:
            remote.write(b"plain")  # an ordinary write is fine there
        assert stock.stat("/plain.fixml").st_size == 5
        with pytest.raises((OSError, EOFError, paramiko.SSHException)):
            _write_with_trailing_bytes(stock, "/go.fixml")
    finally:
        transport.close()


# ---------------------------------------------------------------------------------------------
# no padding packets


def _ignore_packets_received(port: int, private_key: Path) -> int:
    """The SSH_MSG_IGNORE packets an asyncssh client receives from the server at ``port`` during
    a short SFTP session."""

    async def go() -> int:
        async with asyncssh.connect(
            "127.0.0.1", port, username="fa", known_hosts=None, client_keys=[str(private_key)]
        ) as conn:
            seen: list[int] = []
            process = conn.process_packet

            def counting(pkttype: int, pktid: int, packet: Any) -> Any:
                seen.append(pkttype)
                return process(pkttype, pktid, packet)

            conn.process_packet = counting  # this client connection only
            async with conn.start_sftp_client() as sftp:
                for _ in range(3):
                    await sftp.listdir("/")
        return seen.count(asyncssh.constants.MSG_IGNORE)

    return asyncio.run(go())


def test_the_server_pads_no_packet_with_an_ignore_message_and_offers_no_cbc_cipher(
    running: Running, stock_asyncssh_server: int
) -> None:
    key = running.keys.private("fa")
    # asyncssh on its own sends one before every packet (a CBC countermeasure)
    assert _ignore_packets_received(stock_asyncssh_server, key) >= 6
    assert _ignore_packets_received(running.port, key) == 0
    assert not [alg for alg in ENCRYPTION_ALGS if "cbc" in alg]

    async def cbc_only() -> None:
        async with asyncssh.connect(
            "127.0.0.1", running.port, username="fa", known_hosts=None,
            client_keys=[str(key)], encryption_algs=["aes128-cbc", "aes256-cbc"],
        ):  # fmt: skip
            pass

    with pytest.raises(asyncssh.DisconnectError):  # no common cipher (or the server hung up)
        asyncio.run(cbc_only())
