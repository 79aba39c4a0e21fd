"""The embedded SFTP server against real clients: the OpenSSH ``sftp`` command and paramiko.

Keys come from ``ssh-keygen``; the server listens on an ephemeral port over a temporary spool.
Without ``sftp``/``ssh-keygen`` these tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.sftp import SftpAccount, SftpServer

TOOLS = ("sftp", "ssh-keygen")
FAILED_LOGINS = "posgate_sftp_failed_logins_total"


def _require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    reason = (
        f"OpenSSH client tools not installed: {', '.join(missing)} (apt install openssh-client)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " -- required when CI=true")
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# fixtures


@dataclass
class Keys:
    folder: Path

    def private(self, name: str) -> Path:
        return self.folder / name

    def public(self, name: str) -> str:
        return (self.folder / f"{name}.pub").read_text()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    _require_tools("ssh-keygen")
    folder = tmp_path_factory.mktemp("keys")
    for name in ("fa", "fa2", "fb", "xch", "intruder"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test",
             "-f", str(folder / name)],
            check=True, timeout=30,
        )  # fmt: skip
    return Keys(folder)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    for firm in ("fa", "fb"):
        for side in ("inbound", "outbound"):
            for flow in ("dpl", "pmc", "ebe"):
                (root / "firms" / firm / side / flow).mkdir(parents=True)
    (root / "exchanges" / "xch" / "outbound" / "dpl").mkdir(parents=True)
    (root / "state").mkdir()
    (root / "state" / "ledger.sqlite3").write_bytes(b"the ledger")
    (root / "firms" / "fa" / "outbound" / "dpl" / "s1.receipt.json").write_text('{"ok": 1}')
    (root / "firms" / "fb" / "inbound" / "dpl" / "secret.fixml").write_text("fb only")
    (root / "exchanges" / "xch" / "outbound" / "dpl" / "DPL_20260105.fixml").write_text("dpl\n")
    return root


@dataclass
class Running:
    server: SftpServer
    spool: Path
    keys: Keys
    accounts: dict[str, SftpAccount]
    registry: CollectorRegistry
    uploads: list[tuple[str, Path]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    def failed_logins(self) -> float:
        return self.registry.get_sample_value(FAILED_LOGINS) or 0.0

    def inbound(self, firm: str = "fa", flow: str = "dpl") -> Path:
        return self.spool / "firms" / firm / "inbound" / flow


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.failed_logins = Counter(
            "posgate_sftp_failed_logins", "Rejected SFTP login attempts", registry=registry
        )


MakeServer = Callable[..., Running]


@pytest.fixture
def make_server(spool: Path, keys: Keys, tmp_path: Path) -> Iterator[MakeServer]:
    started: list[SftpServer] = []

    def make(**overrides: Any) -> Running:
        accounts = {
            "fa": SftpAccount("fa", "firm", spool / "firms" / "fa", (keys.public("fa"),)),
            "fb": SftpAccount("fb", "firm", spool / "firms" / "fb", (keys.public("fb"),)),
            "xch": SftpAccount("xch", "exchange", spool / "exchanges" / "xch",
                               (keys.public("xch"),)),
        }  # fmt: skip
        registry = CollectorRegistry()
        running = Running(None, spool, keys, accounts, registry)  # type: ignore[arg-type]
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "host_key_path": tmp_path / "hostkeys" / "sftp_host_ed25519",
            "accounts": lambda: running.accounts,
            "max_file_bytes": 8 * 1024 * 1024,
            "failed_login_delay_s": 0.0,
            "on_upload": lambda account, path, received_at: running.uploads.append(
                (account.login, path)
            ),
            "metrics": Metrics(registry),
        }
        options.update(overrides)
        server = SftpServer(**options)
        server.start()
        started.append(server)
        running.server = server
        return running

    yield make
    for server in started:
        server.stop(timeout=5)


@pytest.fixture
def running(make_server: MakeServer) -> Running:
    return make_server()


@contextlib.contextmanager
def connect(run: Running, login: str, key: str | None = None) -> Iterator[paramiko.SFTPClient]:
    transport = paramiko.Transport(("127.0.0.1", run.port))
    try:
        pkey = paramiko.Ed25519Key(filename=str(run.keys.private(key or login)))
        transport.connect(username=login, pkey=pkey)
        client = paramiko.SFTPClient.from_transport(transport)
        assert client is not None
        yield client
    finally:
        transport.close()


def sftp_command(run: Running, login: str, key: str, batch: Path, *extra: str) -> list[str]:
    return [
        "sftp", "-b", str(batch), "-i", str(run.keys.private(key)), "-P", str(run.port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        *extra, f"{login}@127.0.0.1",
    ]  # fmt: skip


def run_sftp(
    run: Running, login: str, commands: str, tmp_path: Path, key: str | None = None
) -> subprocess.CompletedProcess[str]:
    _require_tools("sftp")
    batch = tmp_path / "batch"
    batch.write_text(commands)
    return subprocess.run(
        sftp_command(run, login, key or login, batch),
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def hidden_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# ---------------------------------------------------------------------------------------------
# uploads that work


def test_openssh_sftp_upload_appears_complete_in_inbound(running: Running, tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    (tmp_path / "positions.fixml").write_bytes(payload)
    (tmp_path / "pos ü 1.fixml").write_bytes(b"odd name\n")
    (tmp_path / "dated.csv").write_bytes(b"kept times\n")
    os.utime(tmp_path / "dated.csv", (1_600_000_000, 1_600_000_000))
    (running.inbound() / ".planted.upload").write_bytes(b"never listed")
    result = run_sftp(
        running, "fa",
        'put positions.fixml inbound/dpl/\n'
        'put "pos ü 1.fixml" "inbound/dpl/pos ü 1.fixml"\n'
        "put -p dated.csv inbound/pmc/\n"
        "ls -la inbound/dpl\n",
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = running.inbound()
    assert (folder / "positions.fixml").read_bytes() == payload
    assert (folder / "pos ü 1.fixml").read_bytes() == b"odd name\n"
    assert visible_files(folder) == ["pos ü 1.fixml", "positions.fixml"]
    assert [p.name for p in hidden_files(folder)] == [".planted.upload"]
    assert ".planted" not in result.stdout and "positions.fixml" in result.stdout
    dated = running.inbound(flow="pmc") / "dated.csv"
    # put -p succeeds, but the client's times are not applied: the server dates uploads
    assert dated.read_bytes() == b"kept times\n" and dated.stat().st_mtime > 1_700_000_000
    assert running.uploads == [
        ("fa", folder / "positions.fixml"),
        ("fa", folder / "pos ü 1.fixml"),
        ("fa", dated),
    ]


def test_paramiko_upload_lists_reads_back_and_replaces(running: Running) -> None:
    with connect(running, "fa") as sftp:
        sftp.putfo(io.BytesIO(b"version 1, the longer one\n"), "/inbound/pmc/book.csv")
        sftp.putfo(io.BytesIO(b"version 2\n"), "inbound/pmc/book.csv")
        assert sftp.listdir("/inbound/pmc") == ["book.csv"]
        assert sftp.stat("/inbound/pmc/book.csv").st_size == len(b"version 2\n")
        got = io.BytesIO()
        sftp.getfo("/inbound/pmc/book.csv", got)
        assert got.getvalue() == b"version 2\n"
        assert sftp.normalize(".") == "/"
        assert sorted(sftp.listdir("/")) == ["inbound", "outbound"]
    assert (running.inbound(flow="pmc") / "book.csv").read_bytes() == b"version 2\n"
    assert hidden_files(running.inbound(flow="pmc")) == []


def test_firm_reads_and_cleans_up_its_outbound_files(running: Running) -> None:
    with connect(running, "fa") as sftp:
        got = io.BytesIO()
        sftp.getfo("/outbound/dpl/s1.receipt.json", got)
        assert got.getvalue() == b'{"ok": 1}'
        sftp.remove("/outbound/dpl/s1.receipt.json")
    assert visible_files(running.spool / "firms" / "fa" / "outbound" / "dpl") == []


def test_exchange_reads_its_file(running: Running) -> None:
    with connect(running, "xch") as sftp:
        assert sftp.listdir("/outbound/dpl") == ["DPL_20260105.fixml"]
        got = io.BytesIO()
        sftp.getfo("/outbound/dpl/DPL_20260105.fixml", got)
        assert got.getvalue() == b"dpl\n"


def test_a_reloaded_account_list_applies_to_the_next_login(running: Running) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        with connect(running, "fa", key="fa2"):
            pass
    old = running.accounts["fa"]
    running.accounts = {
        **running.accounts,
        "fa": SftpAccount("fa", "firm", old.root, (running.keys.public("fa2"),)),
    }
    with connect(running, "fa", key="fa2") as sftp:
        assert sorted(sftp.listdir("/")) == ["inbound", "outbound"]
    with pytest.raises(paramiko.AuthenticationException):
        with connect(running, "fa", key="fa"):
            pass


# ---------------------------------------------------------------------------------------------
# escapes and forbidden operations


def test_dotdot_and_absolute_paths_stay_in_the_firm_root(running: Running) -> None:
    with connect(running, "fa") as sftp:
        assert sorted(sftp.listdir("/../../..")) == ["inbound", "outbound"]
        assert sorted(sftp.listdir("../..")) == ["inbound", "outbound"]
        for path in (
            "../../state/ledger.sqlite3",
            "/../../state/ledger.sqlite3",
            str(running.spool / "state" / "ledger.sqlite3"),
            "/etc/passwd",
            "/../fb/inbound/dpl/secret.fixml",
            "/firms/fb/inbound/dpl/secret.fixml",
        ):
            with pytest.raises(FileNotFoundError):
                sftp.open(path, "rb")
        for folder in ("/state", "/firms", "/exchanges", "/../fb"):
            with pytest.raises(FileNotFoundError):
                sftp.listdir(folder)
        with pytest.raises(FileNotFoundError):
            sftp.putfo(io.BytesIO(b"x"), "/../../state/evil")
    assert sorted(p.name for p in (running.spool / "state").iterdir()) == ["ledger.sqlite3"]


def test_openssh_cd_dotdot_cannot_leave_the_root(running: Running, tmp_path: Path) -> None:
    result = run_sftp(running, "fa", "cd ../../..\npwd\nls\n-get ../state/ledger.sqlite3\n",
                      tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Remote working directory: /" in result.stdout
    assert "inbound" in result.stdout and "firms" not in result.stdout
    assert not (tmp_path / "ledger.sqlite3").exists()


def test_a_planted_symlink_pointing_outside_is_never_followed(running: Running) -> None:
    root = running.spool / "firms" / "fa"
    os.symlink(running.spool / "state", root / "inbound" / "dpl" / "ledger")
    os.symlink(running.spool / "firms" / "fb", root / "neighbour")
    with connect(running, "fa") as sftp:
        assert sorted(sftp.listdir("/")) == ["inbound", "outbound"]
        assert sftp.listdir("/inbound/dpl") == []
        for path in ("/inbound/dpl/ledger/ledger.sqlite3", "/neighbour/inbound/dpl/secret.fixml"):
            with pytest.raises(FileNotFoundError):
                sftp.open(path, "rb")
        with pytest.raises(FileNotFoundError):
            sftp.stat("/neighbour")
        with pytest.raises(OSError):
            sftp.putfo(io.BytesIO(b"x"), "/inbound/dpl/ledger/evil.fixml")
        with pytest.raises(OSError):
            sftp.remove("/inbound/dpl/ledger")
    assert sorted(p.name for p in (running.spool / "state").iterdir()) == ["ledger.sqlite3"]
    assert (root / "inbound" / "dpl" / "ledger").is_symlink()


def test_another_firms_files_are_out_of_reach(running: Running) -> None:
    with connect(running, "fb") as sftp:
        assert sftp.listdir("/inbound/dpl") == ["secret.fixml"]
    with connect(running, "fa") as sftp:
        assert sftp.listdir("/inbound/dpl") == []
        with pytest.raises(FileNotFoundError):
            sftp.stat("/../fb/inbound/dpl/secret.fixml")
    with pytest.raises(paramiko.AuthenticationException):
        with connect(running, "fb", key="fa"):
            pass


def test_firms_cannot_write_outbound_or_reshape_their_tree(running: Running) -> None:
    root = running.spool / "firms" / "fa"
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with connect(running, "fa") as sftp:
        with pytest.raises(PermissionError):
            sftp.putfo(io.BytesIO(b"x"), "/outbound/dpl/forged.receipt.json")
        with pytest.raises(PermissionError):
            sftp.open("/outbound/dpl/s1.receipt.json", "r+b")
        with pytest.raises(PermissionError):
            sftp.putfo(io.BytesIO(b"x"), "/top-level.fixml")
        with pytest.raises(PermissionError):
            sftp.putfo(io.BytesIO(b"x"), "/inbound/dpl/.hidden.fixml")
        with pytest.raises(PermissionError):
            sftp.mkdir("/inbound/dpl/sub")
        with pytest.raises(PermissionError):
            sftp.rmdir("/inbound/ebe")
        with pytest.raises(PermissionError):
            sftp.rename("/outbound/dpl/s1.receipt.json", "/inbound/dpl/s1.fixml")
        with pytest.raises(PermissionError):
            sftp.chmod("/outbound/dpl/s1.receipt.json", 0o777)
        with pytest.raises(PermissionError):
            sftp.symlink("/outbound/dpl/s1.receipt.json", "/inbound/dpl/link")
        with pytest.raises(PermissionError):
            sftp.symlink(str(running.spool / "state"), "/inbound/dpl/state")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_exchanges_cannot_write_anything(running: Running) -> None:
    root = running.spool / "exchanges" / "xch"
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with connect(running, "xch") as sftp:
        with pytest.raises(PermissionError):
            sftp.putfo(io.BytesIO(b"x"), "/outbound/dpl/mine.fixml")
        with pytest.raises(PermissionError):
            sftp.remove("/outbound/dpl/DPL_20260105.fixml")
        with pytest.raises(PermissionError):
            sftp.rename("/outbound/dpl/DPL_20260105.fixml", "/outbound/dpl/x")
        with pytest.raises(PermissionError):
            sftp.mkdir("/inbound")
        with pytest.raises(FileNotFoundError):
            sftp.listdir("/../../firms")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_wrong_key_unknown_login_and_passwords_are_refused_and_counted(
    make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = make_server(failed_login_delay_s=0.05)
    caplog.set_level(logging.INFO, logger="gateway")
    with pytest.raises(paramiko.AuthenticationException):
        with connect(running, "fa", key="intruder"):
            pass
    with pytest.raises(paramiko.AuthenticationException):
        with connect(running, "nosuchfirm", key="fa"):
            pass
    transport = paramiko.Transport(("127.0.0.1", running.port))
    try:
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            transport.connect(username="fa", password="hunter2")
        assert refused.value.allowed_types == ["publickey"]
    finally:
        transport.close()
    assert running.failed_logins() == 3

    result = run_sftp(running, "fa", "ls\n", tmp_path, key="intruder")
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
    assert running.failed_logins() == 4

    failures = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failures) == 4
    assert all("peer=127.0.0.1" in line for line in failures)
    assert sum("login=fa " in line for line in failures) == 3
    assert any("login=nosuchfirm " in line for line in failures)
    key_material = running.keys.public("intruder").split()[1]
    assert not any(key_material[:16] in r.getMessage() for r in caplog.records)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


def test_failed_logins_are_answered_slowly(make_server: MakeServer) -> None:
    running = make_server(failed_login_delay_s=0.3)
    started = time.monotonic()
    with pytest.raises(paramiko.AuthenticationException):
        with connect(running, "fa", key="intruder"):
            pass
    assert time.monotonic() - started >= 0.3
    with connect(running, "fa") as sftp:  # the right key still gets in at once
        assert sftp.listdir("/inbound/dpl") == []


# ---------------------------------------------------------------------------------------------
# interrupted and oversize uploads


def test_paramiko_upload_cut_off_midway_leaves_nothing(running: Running) -> None:
    folder = running.inbound()
    with connect(running, "fa") as sftp:
        remote = sftp.open("/inbound/dpl/cut.fixml", "wb")
        for _ in range(4):
            remote.write(b"x" * 65536)
        remote.flush()
        assert wait_until(lambda: any(p.stat().st_size > 0 for p in hidden_files(folder)))
        assert not (folder / "cut.fixml").exists()
        sftp.get_channel().get_transport().close()  # connection drops before close()
    assert wait_until(lambda: hidden_files(folder) == [])
    assert visible_files(folder) == []
    assert running.uploads == []


def test_killed_openssh_upload_is_never_visible(running: Running, tmp_path: Path) -> None:
    _require_tools("sftp")
    (tmp_path / "big.fixml").write_bytes(os.urandom(2_000_000))
    batch = tmp_path / "batch"
    batch.write_text("put big.fixml inbound/dpl/big.fixml\n")
    folder = running.inbound()
    # -l 800 kbit/s: the 2 MB upload takes ~20 s, so it is surely cut off halfway.
    client = subprocess.Popen(
        sftp_command(running, "fa", "fa", batch, "-l", "800"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(lambda: any(p.stat().st_size > 0 for p in hidden_files(folder)))
        assert not (folder / "big.fixml").exists()
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=10)
    assert wait_until(lambda: hidden_files(folder) == [])
    assert visible_files(folder) == []
    assert running.uploads == []


def test_max_file_size_is_enforced(make_server: MakeServer, tmp_path: Path) -> None:
    running = make_server(max_file_bytes=100_000)
    folder = running.inbound()
    with connect(running, "fa") as sftp:
        with pytest.raises(OSError):
            sftp.putfo(io.BytesIO(b"y" * 100_001), "/inbound/dpl/too-big.fixml")
        sftp.putfo(io.BytesIO(b"z" * 100_000), "/inbound/dpl/just-fits.fixml")
    assert visible_files(folder) == ["just-fits.fixml"]
    assert hidden_files(folder) == []

    (tmp_path / "huge.fixml").write_bytes(b"h" * 300_000)
    result = run_sftp(running, "fa", "put huge.fixml inbound/dpl/\n", tmp_path)
    assert result.returncode != 0
    assert wait_until(lambda: hidden_files(folder) == [])
    assert visible_files(folder) == ["just-fits.fixml"]


# ---------------------------------------------------------------------------------------------
# the server itself


def test_host_key_is_made_once_and_kept_across_restarts(
    make_server: MakeServer, tmp_path: Path
) -> None:
    first = make_server()
    key_path = tmp_path / "hostkeys" / "sftp_host_ed25519"
    assert key_path.stat().st_mode & 0o777 == 0o600

    def server_key(run: Running) -> bytes:
        transport = paramiko.Transport(("127.0.0.1", run.port))
        try:
            transport.start_client(timeout=10)
            key: bytes = transport.get_remote_server_key().asbytes()
            return key
        finally:
            transport.close()

    seen = server_key(first)
    assert seen == paramiko.PKey.from_path(key_path).asbytes()
    first.server.stop(timeout=5)
    assert not first.server.healthy()
    second = make_server()
    assert server_key(second) == seen


def test_connections_are_bounded(make_server: MakeServer) -> None:
    running = make_server(max_connections=1)
    with connect(running, "fa") as sftp:
        assert sftp.listdir("/inbound/dpl") == []
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            with connect(running, "fb"):
                pass
    assert wait_until(lambda: _can_log_in(running, "fb"), timeout=5)


def _can_log_in(run: Running, login: str) -> bool:
    try:
        with connect(run, login) as sftp:
            sftp.listdir("/")
        return True
    except (paramiko.SSHException, EOFError, OSError):
        return False


def test_a_connection_that_never_logs_in_is_closed(make_server: MakeServer) -> None:
    running = make_server(login_grace_s=0.5)
    transport = paramiko.Transport(("127.0.0.1", running.port))
    try:
        transport.start_client(timeout=10)
        assert wait_until(lambda: not transport.is_active(), timeout=5)
    finally:
        transport.close()


def test_stop_ends_sessions_and_drops_their_unfinished_uploads(make_server: MakeServer) -> None:
    running = make_server()
    folder = running.inbound()
    assert running.server.healthy()
    with connect(running, "fa") as sftp:
        remote = sftp.open("/inbound/dpl/inflight.fixml", "wb")
        remote.write(b"partial")
        remote.flush()
        assert wait_until(lambda: len(hidden_files(folder)) == 1)
        running.server.stop(timeout=5)
        assert not running.server.healthy()
        assert hidden_files(folder) == [] and visible_files(folder) == []
    port = running.port
    assert port > 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_sessions_per_connection_are_bounded_and_freed(make_server: MakeServer) -> None:
    running = make_server(max_sessions_per_connection=2)
    transport = paramiko.Transport(("127.0.0.1", running.port))
    try:
        pkey = paramiko.Ed25519Key(filename=str(running.keys.private("fa")))
        transport.connect(username="fa", pkey=pkey)
        first = paramiko.SFTPClient.from_transport(transport)
        second = paramiko.SFTPClient.from_transport(transport)
        assert first is not None and second is not None
        with pytest.raises(paramiko.SSHException):
            paramiko.SFTPClient.from_transport(transport)
        first.close()

        def third_opens() -> bool:
            try:
                client = paramiko.SFTPClient.from_transport(transport)
            except paramiko.SSHException:
                return False
            assert client is not None
            assert sorted(client.listdir("/inbound")) == ["dpl", "ebe", "pmc"]
            return True

        assert wait_until(third_opens, timeout=5)
    finally:
        transport.close()


def test_start_removes_uploads_a_killed_daemon_left_behind(
    spool: Path, make_server: MakeServer
) -> None:
    folder = spool / "firms" / "fa" / "inbound" / "dpl"
    (folder / ".pos.fixml.0123456789ab.upload").write_bytes(b"half of a file")
    (folder / "complete.fixml").write_bytes(b"a whole file")
    make_server()
    assert hidden_files(folder) == []
    assert visible_files(folder) == ["complete.fixml"]
