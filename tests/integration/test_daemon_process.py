"""The real ``posgate serve`` process: readiness, metrics over HTTP, signals, exit codes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.daemon import REPO, DaemonProcess, make_test_config, wait_for


def test_serves_metrics_and_stops_cleanly_on_sigterm(daemon: DaemonProcess) -> None:
    text = daemon.scrape()
    assert 'posgate_build_info{python="' in text
    assert "process_resident_memory_bytes" in text
    assert daemon.metric("posgate_up") == 1.0
    assert "posgate_amqp_up" not in text  # AMQP is off in this config: no broker gauge at all
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    assert "stopped cleanly" in daemon.log()


def test_sighup_with_broken_config_keeps_the_old_one(daemon: DaemonProcess) -> None:
    cfg = daemon.cfg
    good = cfg.path.read_text()
    cfg.path.write_text(good + '\n[sftp]\nport = "not a port"\n')
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.metric("posgate_config_reloads_total", {"outcome": "rejected"}) == 1,
        what="rejected reload counted",
    )
    assert daemon.proc.poll() is None
    assert "reload rejected" in daemon.log()
    assert daemon.metric("posgate_up") == 1.0
    # A valid change is taken: a new firm account appears in the spool tree after SIGHUP.
    cfg.path.write_text(good)
    (cfg.root / "config" / "accounts" / "00352.toml").write_text(
        '[[account]]\nname = "00352"\nkind = "firm"\nid = "00352"\n'
    )
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.metric("posgate_config_reloads_total", {"outcome": "ok"}) == 1,
        what="accepted reload counted",
    )
    assert (cfg.spool / "firms" / "00352" / "inbound" / "dpl").is_dir()
    assert daemon.stop() == 0


def test_bad_config_at_start_exits_78(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    cfg.path.write_text(cfg.path.read_text() + "\n[bogus]\nx = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(cfg.path), "serve"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 78
    assert "bogus" in result.stderr


def test_metrics_port_taken_exits_with_failure(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", cfg.metrics_port))
        blocker.listen()
        result = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--config", str(cfg.path), "serve"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert result.returncode != 0
    assert "metrics failed to start" in result.stderr


def test_a_second_daemon_on_the_same_spool_exits_69_before_touching_it(
    daemon: DaemonProcess,
) -> None:
    ledger = daemon.cfg.spool / "state" / "ledger.sqlite3"
    before = ledger.stat().st_mtime_ns
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(daemon.cfg.path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 69, result.stderr
    assert f"pid {daemon.proc.pid}" in result.stderr
    assert "already runs on this spool" in result.stderr
    assert "metrics" not in result.stderr  # failed before starting anything
    assert ledger.stat().st_mtime_ns == before
    assert daemon.metric("posgate_up") == 1.0  # the first one is unharmed


SLOW_DAEMON = """
import sys, time
from gateway.daemon import Daemon

class Slow:
    name = "slow"
    def start(self): pass
    def stop(self, timeout): time.sleep(30)
    def healthy(self): return True

print("ready", flush=True)
sys.exit(Daemon([Slow()], shutdown_grace_s=%s, reload=lambda: True, tick_s=0.05).run())
"""


def _slow_daemon(grace: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_DAEMON % grace],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    return proc


def test_second_signal_forces_exit() -> None:
    proc = _slow_daemon(grace=60)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 1
    assert time.monotonic() - started < 5
    assert "exiting now" in proc.stderr.read()  # type: ignore[union-attr]


def test_grace_deadline_forces_exit() -> None:
    proc = _slow_daemon(grace=1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 1
    assert time.monotonic() - started < 5


def test_sd_notify_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC) the daemon says READY=1, pings WATCHDOG=1 at
    half the interval while healthy, and says STOPPING=1 on SIGTERM."""
    cfg = make_test_config(tmp_path)
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    received: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                return received

    proc = DaemonProcess(cfg, env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "2000000"})
    try:
        proc.wait_ready()
        wait_for(lambda: any(m.startswith("READY=1") for m in drain()), what="READY=1")
        wait_for(
            lambda: sum("WATCHDOG=1" in m for m in drain()) >= 2,
            timeout=10,
            what="two watchdog pings",
        )
        proc.signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=15) == 0
        assert any("STOPPING=1" in m for m in drain())
    finally:
        proc.stop()
        sock.close()


def test_watchdog_pings_can_be_turned_off(tmp_path: Path) -> None:
    """With ``[daemon] watchdog = false`` the daemon never pings, even when systemd asks."""
    cfg = make_test_config(tmp_path, daemon={"shutdown_grace_s": 10.0, "watchdog": False})
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    received: list[str] = []
    proc = DaemonProcess(cfg, env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "1000000"})
    try:
        proc.wait_ready()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
        assert any(m.startswith("READY=1") for m in received)
        assert not any("WATCHDOG=1" in m for m in received)
    finally:
        proc.stop()
        sock.close()
