"""Test support: a throwaway config folder and the real ``posgate serve`` process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_keypair(folder: Path, name: str = "id_ed25519") -> tuple[Path, str]:
    """An ed25519 key pair made by ssh-keygen; returns (private key path, public key line)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key, key.with_suffix(".pub").read_text().strip()


@dataclass
class TestConfig:
    """A copy of the shipped config in a temp folder with its own spool and free ports."""

    root: Path
    sftp_port: int
    metrics_port: int
    firm_key: Path
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)
    __test__ = False  # not a test class, despite its name

    @property
    def path(self) -> Path:
        return self.root / "config" / "posgate.toml"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def write(self) -> None:
        tables: dict[str, dict[str, object]] = {
            "spool": {"root": "../spool"},
            "sftp": {"port": self.sftp_port, "failed_login_delay_s": 0.1},
            "metrics": {"port": self.metrics_port},
            "intake": {"stable_interval_s": 0.5, "sweep_interval_s": 2.0},
            "amqp": {"enabled": False},
            "daemon": {"shutdown_grace_s": 10.0},
        }
        for table, values in self.overrides.items():
            tables.setdefault(table, {}).update(values)
        lines = []
        for table, values in tables.items():
            lines.append(f"[{table}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml(value)}")
            lines.append("")
        self.path.write_text("\n".join(lines))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_test_config(tmp: Path, **overrides: dict[str, object]) -> TestConfig:
    (tmp / "config").mkdir(parents=True)
    shutil.copytree(REPO / "config" / "reference", tmp / "config" / "reference")
    (tmp / "config" / "accounts").mkdir()
    key, pub = make_keypair(tmp / "keys", "firm00005")
    (tmp / "config" / "accounts" / "00005.toml").write_text(
        '[[account]]\nname = "00005"\nkind = "firm"\nid = "00005"\n'
        f'public_keys = ["{pub}"]\namqp_user = "posgate-test-00005"\n'
    )
    cfg = TestConfig(
        root=tmp,
        sftp_port=free_port(),
        metrics_port=free_port(),
        firm_key=key,
        overrides=dict(overrides),
    )
    cfg.write()
    return cfg


class DaemonProcess:
    """The real ``posgate serve`` as a child process."""

    def __init__(self, cfg: TestConfig, env: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.log_path = cfg.root / "daemon.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
        }
        full_env = {**inherited, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(cfg.path), "serve"],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.cfg.metrics_port}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if "posgate running" in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return response.read().decode()

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """Value of one sample in the scraped metrics (None when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
        for line in self.scrape().splitlines():
            if line.startswith("#") or " " not in line:
                continue
            series, value = line.rsplit(" ", 1)
            sname, _, rest = series.partition("{")
            if sname != name:
                continue
            got = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
            if labels is None or got == want:
                return float(value)
        return None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()


@contextmanager
def running(
    cfg: TestConfig,
    *,
    clock_start: str | None = None,
    amqp_password: str | None = None,
    clean_exit: bool = True,
) -> Iterator[DaemonProcess]:
    """``posgate serve`` on ``cfg``, ready (and, given the broker password, connected to it),
    stopped on exit; ``clean_exit`` asserts it then exits 0. ``clock_start`` is the instant its
    clock starts at (``POSGATE_CLOCK_START``)."""
    env: dict[str, str] = {}
    if clock_start is not None:
        env["POSGATE_CLOCK_START"] = clock_start
    if amqp_password is not None:
        env["POSGATE_AMQP_PASSWORD"] = amqp_password
    proc = DaemonProcess(cfg, env=env)
    try:
        proc.wait_ready()
        if amqp_password is not None:
            wait_for(lambda: proc.metric("posgate_amqp_up") == 1.0, timeout=30, what="AMQP up")
        yield proc
    finally:
        code = proc.stop()
        if clean_exit:
            assert code == 0


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
