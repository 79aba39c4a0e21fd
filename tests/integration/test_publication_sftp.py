"""Pushing the aggregated file to an ``sftp://`` exchange, with the embedded SFTP server as remote.

The embedded server makes exchange roots read-only, so the remote here is a *firm-kind* account
(``xdrop``) of a separate server instance whose ``inbound/dpl/`` plays the exchange's drop folder:
it accepts uploads and renames, exactly what a production exchange's SFTP server must allow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from gateway.commands.dpl_publish import CliRuntime
from gateway.config import Config, load_config
from gateway.ledger import Ledger
from gateway.publication.publish import publish_cycle
from gateway.publication.push import push_public_key
from tests.benchmarks.bench_dpl_publish import add_dpl_file, ledger_row, valid_fields
from tests.support.daemon import REPO, TestConfig, free_port, make_test_config
from tests.support.firm import RemoteExchange, remote_exchange

CYCLE = dt.date(2026, 3, 9)
NAME = "DPL_20260309.fixml"
AFTER_CUTOFF = dt.datetime(2026, 3, 10, 5, 5, tzinfo=dt.UTC)
REFERENCE_EXCHANGES = "exchange_id,name,receives_dpl,delivery\nXCBO,Cboe Options Exchange,Y,spool\n"


@dataclass
class Setup:
    cfg: TestConfig
    remote: RemoteExchange

    def config(self) -> Config:
        return load_config(self.cfg.path)

    def exchanges(self, *lines: str) -> None:
        path = self.cfg.root / "config" / "reference" / "exchanges.csv"
        path.write_text(REFERENCE_EXCHANGES + "".join(f"{line}\n" for line in lines))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    cfg = make_test_config(tmp_path / "local")
    with remote_exchange(tmp_path, max_file_bytes=1 << 30) as remote:
        yield Setup(cfg, remote)


def seed(ledger: Ledger, count: int = 3000) -> None:
    add_dpl_file(
        ledger,
        submitter="00005",
        cycle=CYCLE,
        rows=(
            ledger_row(n, valid_fields("00005", f"AU{n % 7}", f"S{n:05d}"))
            for n in range(1, count + 1)
        ),
    )


def publish(config: Config, **options: object):  # type: ignore[no-untyped-def]
    ledger = Ledger(config.spool.ledger_path)
    try:
        return publish_cycle(CliRuntime(config, ledger, lambda: AFTER_CUTOFF), CYCLE, **options)  # type: ignore[arg-type]
    finally:
        ledger.close()


def test_push_to_an_sftp_exchange_gives_the_same_bytes_and_sidecar(setup: Setup) -> None:
    remote = setup.remote
    config = setup.config()
    _, key_line = push_public_key(config)
    assert key_line.startswith("ssh-ed25519 ") and key_line.endswith(" posgate-push")
    assert (config.spool.state_dir / "push_key").stat().st_mode & 0o077 == 0
    remote.keys.append(key_line)
    setup.exchanges(f"XREM,Remote Exchange,Y,{remote.url}")
    config = setup.config()
    ledger = Ledger(config.spool.ledger_path)
    seed(ledger)
    ledger.close()
    # A temporary left by an earlier killed push is cleaned up.
    (remote.drop / f"{NAME}.0123abcd.part").write_bytes(b"half")

    result = publish(config)
    assert result.complete, result.failures
    local = (config.spool.root / "exchanges" / "XCBO" / "outbound" / "dpl" / NAME).read_bytes()
    pushed = (remote.drop / NAME).read_bytes()
    assert pushed == local and len(pushed.splitlines()) == 3000
    sha = hashlib.sha256(local).hexdigest()
    assert (remote.drop / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert sorted(p.name for p in remote.drop.iterdir()) == [NAME, f"{NAME}.sha256"]
    xrem = next(d for d in result.delivered if d.exchange == "XREM")
    assert xrem.target == remote.url
    known = (config.spool.state_dir / "push_known_hosts").read_text()
    assert f"[127.0.0.1]:{remote.server.port}" in known  # trusted on first use

    again = publish(config)
    assert again.skipped
    inode = (remote.drop / NAME).stat().st_ino
    forced = publish(config, force=True)
    assert forced.complete and (remote.drop / NAME).stat().st_ino != inode
    assert (remote.drop / NAME).read_bytes() == local


def test_unreachable_refused_and_impostor_exchanges_fail_without_stopping_the_others(
    setup: Setup,
) -> None:
    remote = setup.remote
    config = setup.config()
    dead = free_port()
    setup.exchanges(
        f"XDED,Dead Exchange,Y,sftp://xdrop@127.0.0.1:{dead}/inbound/dpl",
        f"XREM,Remote Exchange,Y,{remote.url}",  # our key is not authorized there
    )
    result = publish(setup.config(), sftp_attempts=2, sftp_backoff_s=0.01)
    failures = {f.exchange: f for f in result.failures}
    assert failures["XDED"].unreachable and not failures["XREM"].unreachable
    assert "push key" in failures["XREM"].error
    assert [d.exchange for d in result.delivered] == ["XCBO"]
    assert not (remote.drop / NAME).exists()

    # Authorized now, but the host key recorded for the remote differs: refused as an impostor.
    remote.keys.append(push_public_key(config)[1])
    other = paramiko.Ed25519Key.from_private_key_file(str(_keygen(setup.cfg.root)))
    known = config.spool.state_dir / "push_known_hosts"
    known.write_text(f"[127.0.0.1]:{remote.server.port} ssh-ed25519 {other.get_base64()}\n")
    setup.exchanges(f"XREM,Remote Exchange,Y,{remote.url}")
    result = publish(setup.config())
    (failure,) = result.failures
    assert failure.exchange == "XREM" and not failure.unreachable
    assert "host key" in failure.error and not (remote.drop / NAME).exists()


def _keygen(folder: Path) -> Path:
    key = folder / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_cli_exits_69_when_an_sftp_exchange_stays_unreachable(setup: Setup) -> None:
    setup.exchanges(f"XDED,Dead Exchange,Y,sftp://xdrop@127.0.0.1:{free_port()}/in")
    env = {**os.environ, "POSGATE_CLOCK_START": "2026-03-10T01:00:00-05:00"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(setup.cfg.path),
            "dpl",
            "publish",
            "--date",
            "2026-03-09",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 69, done.stderr
    assert "UNREACHABLE XDED" in done.stdout and "delivered to XCBO" in done.stdout
