"""Upload throughput of the embedded SFTP server against OpenSSH's ``internal-sftp``, side by side.

    python -m tests.benchmarks.bench_sftp [--large-mb 100,1024] [--small 500] [--small-kb 20]
                                          [--rounds 3]

Both servers get the same uploads from the same OpenSSH ``sftp`` client (``put -f``: the client
asks for an fsync of every file before closing it; the embedded server fsyncs every upload before
it renames it into place, with or without that request, so durability is equal): one large file
per size given, then ``--small`` files of ``--small-kb`` KiB in one session. Rounds alternate
between the servers (and which goes first); each starts after an ``os.sync()``, so that none pays
for the writeback of the one before. The peer is a private
``sshd -D -f CONF`` on its own port with its own host key and ``Subsystem sftp internal-sftp``
(Debian's ``openssh-server``; ``scripts/test`` installs it). The embedded server runs in a child
process of its own, so the CPU it uses (user + system, all threads) is read from ``/proc``; the
sshd's CPU is what its reaped session processes used (``cutime + cstime`` of the listener).

The embedded server logs as the daemon does (INFO, key=value lines, to a file), so that its audit
lines are part of its cost. Printed as a markdown table: MB/s (or files/s), the ratio embedded /
OpenSSH, CPU ms per MB and per file, after the load average of the machine.
Target (issue): ratio >= 0.9 for large files, >= 0.8 for the small ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_s(pid: int, *, children: bool) -> float:
    """CPU seconds of ``pid`` (user + system); with ``children`` those of its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")" field 0 is the state (stat field 3): utime=14, stime=15, cutime=16, cstime=17
    index = (13, 14) if children else (11, 12)
    return sum(int(fields[i]) for i in index) / _TICK


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class Peer:
    name: str
    port: int
    login: str
    target: str  # remote folder uploads go to
    process: subprocess.Popen[bytes]
    children_cpu: bool  # sshd: CPU of its reaped session processes

    def cpu(self) -> float:
        return cpu_s(self.process.pid, children=self.children_cpu)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )


def start_sshd(work: Path, client_key: Path) -> Peer:
    if not os.access(SSHD, os.X_OK):
        raise SystemExit(f"{SSHD} missing: apt install openssh-server (scripts/test does)")
    port = free_port()
    keygen(work / "sshd_host_key")
    authorized = work / "authorized_keys"
    shutil.copy(client_key.with_name(client_key.name + ".pub"), authorized)
    authorized.chmod(0o600)
    target = work / "openssh-target"
    target.mkdir()
    conf = work / "sshd_config"
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'sshd_host_key'}\n"
        f"PidFile {work / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nForceCommand internal-sftp\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation folder sshd insists on
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stderr=subprocess.DEVNULL)
    wait_port(port)
    return Peer("OpenSSH internal-sftp", port, user, str(target), process, children_cpu=True)


def start_embedded(work: Path, client_key: Path) -> Peer:
    port = free_port()
    root = work / "spool" / "firms" / "00005"
    (root / "inbound" / "dpl").mkdir(parents=True)
    key_line = client_key.with_name(client_key.name + ".pub").read_text().strip()
    with (work / "embedded.log").open("ab") as log_file:  # its log, as the daemon writes it
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.bench_sftp", "--serve", str(port),
             str(root), str(work / "host_key"), key_line],
            stderr=log_file,
        )  # fmt: skip
    wait_port(port)
    return Peer("posgate embedded", port, "00005", "/inbound/dpl", process, children_cpu=False)


def serve(port: int, root: Path, host_key: Path, key_line: str) -> None:
    """The child process: the embedded server over one firm account until terminated."""
    import signal
    import threading

    from gateway.logs import configure_logging
    from gateway.sftp import SftpAccount, SftpServer

    configure_logging("INFO", "kv")  # every audit line costs what it costs in the daemon
    account = SftpAccount("00005", "firm", root, (key_line,))
    server = SftpServer(
        host="127.0.0.1",
        port=port,
        host_key_path=host_key,
        accounts=lambda: {"00005": account},
        max_file_bytes=4 << 30,
        failed_login_delay_s=0.1,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop()


def upload(peer: Peer, key: Path, commands: list[str]) -> float:
    batch = "\n".join(commands) + "\n"
    started = time.perf_counter()
    subprocess.run(
        ["sftp", "-q", "-b", "-", "-i", str(key), "-P", str(peer.port),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", f"{peer.login}@127.0.0.1"],
        input=batch.encode(), check=True, timeout=3600,
    )  # fmt: skip
    return time.perf_counter() - started


def clear(peer: Peer, work: Path) -> None:
    folder = Path(peer.target) if peer.children_cpu else work / "spool/firms/00005/inbound/dpl"
    for entry in folder.iterdir():
        entry.unlink()


def measure(
    peer: Peer, key: Path, work: Path, commands: list[str], mb: float
) -> tuple[float, float]:
    """(seconds, daemon CPU seconds) of one batch."""
    clear(peer, work)
    os.sync()  # the previous round's data is on disk: no round pays for another's writeback
    before = peer.cpu()
    seconds = upload(peer, key, commands)
    time.sleep(0.3)  # let sshd reap the session process, whose CPU counts from then on
    return seconds, peer.cpu() - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-mb", default="100,1024")
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--small-kb", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        port, root, host_key, key_line = args.serve
        serve(int(port), Path(root), Path(host_key), key_line)
        return 0
    sizes = [int(x) for x in args.large_mb.split(",") if x]
    with tempfile.TemporaryDirectory(prefix="bench-sftp-") as tmp:
        work = Path(tmp)
        key = work / "client_key"
        keygen(key)
        sources = work / "src"
        sources.mkdir()
        cases: list[tuple[str, list[str], float, int]] = []  # label, batch, MB, files
        for mb in sizes:
            big = sources / f"large-{mb}.bin"
            with big.open("wb") as out:
                for _ in range(mb):
                    out.write(os.urandom(1 << 20))
            cases.append((f"1 x {mb} MB", [f"put -f {big} {{target}}/"], float(mb), 1))
        small = sources / "small"
        small.mkdir()
        for i in range(args.small):
            (small / f"f{i:04d}.fixml").write_bytes(os.urandom(args.small_kb << 10))
        if args.small:
            cases.append((
                f"{args.small} x {args.small_kb} KB",
                [f"put -f {small}/* {{target}}/"],
                args.small * args.small_kb / 1024,
                args.small,
            ))  # fmt: skip
        load_before = f"{os.getloadavg()[0]:.2f}"
        peers = [start_sshd(work, key), start_embedded(work, key)]
        results: dict[tuple[str, str], tuple[float, float]] = {}
        try:
            # Rounds alternate between the two servers, so that a busy moment of the machine
            # does not land on one of them only, and which goes first alternates too; the best
            # round of each is kept.
            for label, batch, mb, _files in cases:
                for round_ in range(args.rounds):
                    for peer in peers if round_ % 2 == 0 else peers[::-1]:
                        commands = [c.replace("{target}", peer.target) for c in batch]
                        seconds, cpu = measure(peer, key, work, commands, mb)
                        best = results.get((label, peer.name))
                        if best is None or seconds < best[0]:
                            results[(label, peer.name)] = (seconds, cpu)
        finally:
            for peer in peers:
                peer.stop()
        print(
            f"load average before: {load_before}, after: {os.getloadavg()[0]:.2f} "
            f"(1 min; {os.cpu_count()} CPUs)\n"
        )
        print(f"| upload (`put -f`, best of {args.rounds}) | OpenSSH | embedded | ratio "
              "| CPU ms/MB OpenSSH | CPU ms/MB embedded | CPU ms/file OpenSSH "
              "| CPU ms/file embedded |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for label, _batch, mb, files in cases:
            o_s, o_cpu = results[(label, peers[0].name)]
            e_s, e_cpu = results[(label, peers[1].name)]
            if files > 1:
                o_rate, e_rate, unit = files / o_s, files / e_s, "files/s"
            else:
                o_rate, e_rate, unit = mb / o_s, mb / e_s, "MB/s"
            print(
                f"| {label} | {o_rate:,.0f} {unit} | {e_rate:,.0f} {unit} | {e_rate / o_rate:.2f} "
                f"| {1000 * o_cpu / mb:.1f} | {1000 * e_cpu / mb:.1f} "
                f"| {1000 * o_cpu / files:.2f} | {1000 * e_cpu / files:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
