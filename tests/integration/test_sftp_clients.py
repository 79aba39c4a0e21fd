"""The embedded SFTP server against the SFTP clients firms use, operation by operation.

Each client (OpenSSH ``sftp``, ``lftp``, ``rclone``, ``curl`` with libssh2, paramiko, asyncssh)
goes through the same operations on a fresh server; what each did is compared with the client x
operation table of the README (between the ``sftp-clients`` markers), so that the table says what
these tests saw. A cell is ``yes`` (worked as the user expects), ``no`` (did not) or ``n/a`` (the
client has no such command). Clients that are not installed skip (and fail when ``CI=true``).
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncssh
import paramiko
import pytest

from tests.integration.test_sftp import (  # noqa: F401 - fixtures
    MakeServer,
    Running,
    _cut_upload,
    connect,
    hidden_files,
    keys,
    make_server,
    spool,
    wait_until,
)

README = Path(__file__).resolve().parents[2] / "README.md"
OPERATIONS = ("login", "ls", "put", "get", "resume", "rename", "mkdir existing", "df", "refused")
START, END = "<!-- sftp-clients:start -->", "<!-- sftp-clients:end -->"
PAYLOAD = os.urandom(200_000)

Outcome = dict[str, str]


def _need(tool: str) -> None:
    if shutil.which(tool) is not None:
        return
    reason = f"{tool} not installed (apt install {tool}; scripts/test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " -- required when CI=true")
    pytest.skip(reason)


def readme_rows() -> dict[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(START) + len(START) : text.index(END)]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def yes(ok: bool) -> str:
    return "yes" if ok else "no"


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> bool:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done.returncode == 0


def prepare(run_: Running, tmp_path: Path) -> None:
    (tmp_path / "up.fixml").write_bytes(PAYLOAD)
    (tmp_path / "big.fixml").write_bytes(PAYLOAD)
    (run_.spool / "firms" / "fa" / "outbound" / "dpl" / "s1.receipt.json").write_text('{"ok": 1}')
    _cut_upload(run_, "big.fixml", PAYLOAD[:50_000])  # left for the resume


def check_files(run_: Running, outcome: Outcome, renamed: str) -> Outcome:
    folder = run_.inbound()
    if outcome["put"] == "yes":
        outcome["put"] = yes((folder / renamed).read_bytes() == PAYLOAD)
    if outcome["resume"] == "yes":
        outcome["resume"] = yes(
            (folder / "big.fixml").read_bytes() == PAYLOAD and hidden_files(folder) == []
        )
    outcome["refused"] = yes(
        outcome["refused"] == "yes"
        and not (run_.spool / "firms" / "fa" / "outbound" / "dpl" / "x.fixml").exists()
    )
    return outcome


# ---------------------------------------------------------------------------------------------
# the clients


def openssh(run_: Running, tmp_path: Path) -> Outcome:
    _need("sftp")
    base = [
        "sftp", "-b", "-", "-i", str(run_.keys.private("fa")), "-P", str(run_.port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        "fa@127.0.0.1",
    ]  # fmt: skip

    def batch(commands: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            base, input=commands, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    out: Outcome = {"login": yes(batch("pwd\n").returncode == 0)}
    listing = batch("ls outbound/dpl\n")
    out["ls"] = yes("s1.receipt.json" in listing.stdout)
    out["put"] = yes(batch("put up.fixml inbound/dpl/up.fixml\n").returncode == 0)
    got = batch("get outbound/dpl/s1.receipt.json got.json\n")
    out["get"] = yes(got.returncode == 0 and (tmp_path / "got.json").exists())
    out["resume"] = yes(batch("reput big.fixml inbound/dpl/big.fixml\n").returncode == 0)
    renamed = batch("rename inbound/dpl/up.fixml inbound/dpl/up2.fixml\n")
    out["rename"] = yes(renamed.returncode == 0)
    out["mkdir existing"] = yes(batch("mkdir inbound/dpl\n").returncode == 0)
    df = batch("df /\n")
    out["df"] = yes(df.returncode == 0 and "Avail" in df.stdout)
    out["refused"] = yes(batch("put up.fixml outbound/dpl/x.fixml\n").returncode != 0)
    return check_files(run_, out, "up2.fixml")


def lftp(run_: Running, tmp_path: Path) -> Outcome:
    _need("lftp")
    connect_program = (
        f"ssh -a -x -i {run_.keys.private('fa')} -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes"
    )

    def cmd(commands: str) -> subprocess.CompletedProcess[str]:
        script = (
            f"set sftp:connect-program '{connect_program}'; set net:max-retries 1; "
            f"set cmd:fail-exit yes; {commands}; bye"
        )
        return subprocess.run(
            ["lftp", "-e", script, f"sftp://fa:@127.0.0.1:{run_.port}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    out: Outcome = {"login": yes(cmd("pwd").returncode == 0)}
    out["ls"] = yes("s1.receipt.json" in cmd("ls outbound/dpl").stdout)
    out["put"] = yes(cmd("put up.fixml -o inbound/dpl/up.fixml").returncode == 0)
    out["get"] = yes(cmd("get outbound/dpl/s1.receipt.json -o got.json").returncode == 0)
    out["resume"] = yes(cmd("put -c big.fixml -o inbound/dpl/big.fixml").returncode == 0)
    out["rename"] = yes(cmd("mv inbound/dpl/up.fixml inbound/dpl/up2.fixml").returncode == 0)
    out["mkdir existing"] = yes(cmd("mkdir -p inbound/dpl").returncode == 0)
    out["df"] = "n/a"
    out["refused"] = yes(cmd("put up.fixml -o outbound/dpl/x.fixml").returncode != 0)
    return check_files(run_, out, "up2.fixml")


def rclone(run_: Running, tmp_path: Path) -> Outcome:
    _need("rclone")
    env = {
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_P_TYPE": "sftp",
        "RCLONE_CONFIG_P_HOST": "127.0.0.1",
        "RCLONE_CONFIG_P_PORT": str(run_.port),
        "RCLONE_CONFIG_P_USER": "fa",
        "RCLONE_CONFIG_P_KEY_FILE": str(run_.keys.private("fa")),
        "RCLONE_CONFIG_P_SHELL_TYPE": "none",  # no remote commands: the server offers none
        "RCLONE_CONFIG_P_DISABLE_HASHCHECK": "true",
    }
    (tmp_path / "rclone.conf").write_text("")

    def rc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["rclone", "--retries", "1", "--low-level-retries", "1", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**os.environ, **env},
        )  # fmt: skip

    out: Outcome = {"login": yes(rc("lsf", "p:").returncode == 0)}
    out["ls"] = yes("s1.receipt.json" in rc("lsf", "p:outbound/dpl").stdout)
    out["put"] = yes(rc("copyto", "up.fixml", "p:inbound/dpl/up.fixml").returncode == 0)
    out["get"] = yes('"ok"' in rc("cat", "p:outbound/dpl/s1.receipt.json").stdout)
    out["resume"] = "n/a"  # rclone uploads whole files again
    out["rename"] = yes(
        rc("moveto", "p:inbound/dpl/up.fixml", "p:inbound/dpl/up2.fixml").returncode == 0
    )
    out["mkdir existing"] = yes(rc("mkdir", "p:inbound/dpl").returncode == 0)
    about = rc("about", "p:")
    out["df"] = yes(about.returncode == 0 and "Free" in about.stdout)
    out["refused"] = yes(rc("copyto", "up.fixml", "p:outbound/dpl/x.fixml").returncode != 0)
    out = check_files(run_, out, "up2.fixml")
    return out


def curl(run_: Running, tmp_path: Path) -> Outcome:
    _need("curl")
    key = run_.keys.private("fa")
    url = f"sftp://127.0.0.1:{run_.port}"
    base = ["curl", "-sS", "-k", "--key", str(key), "--pubkey", f"{key}.pub", "-u", "fa:"]

    def c(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )

    listing = c(f"{url}/outbound/dpl/")
    out: Outcome = {"login": yes(listing.returncode == 0)}
    out["ls"] = yes("s1.receipt.json" in listing.stdout)
    out["put"] = yes(c("-T", "up.fixml", f"{url}/inbound/dpl/up.fixml").returncode == 0)
    out["get"] = yes('"ok"' in c(f"{url}/outbound/dpl/s1.receipt.json").stdout)
    resumed = c("-C", "-", "-T", "big.fixml", f"{url}/inbound/dpl/big.fixml")
    out["resume"] = yes(resumed.returncode == 0)
    renamed = c("-Q", "rename /inbound/dpl/up.fixml /inbound/dpl/up2.fixml", f"{url}/inbound/dpl/")
    out["rename"] = yes(renamed.returncode == 0)
    created = c("--ftp-create-dirs", "-T", "up.fixml", f"{url}/inbound/dpl/made.fixml")
    out["mkdir existing"] = yes(created.returncode == 0)
    out["df"] = "n/a"  # no statvfs quote command in this curl
    out["refused"] = yes(c("-T", "up.fixml", f"{url}/outbound/dpl/x.fixml").returncode != 0)
    return check_files(run_, out, "up2.fixml")


def paramiko_client(run_: Running, tmp_path: Path) -> Outcome:
    out: Outcome = {}
    with connect(run_, "fa") as sftp:
        out["login"] = "yes"
        out["ls"] = yes("s1.receipt.json" in sftp.listdir("/outbound/dpl"))
        sftp.put(str(tmp_path / "up.fixml"), "/inbound/dpl/up.fixml")
        out["put"] = "yes"
        out["get"] = yes(sftp.open("/outbound/dpl/s1.receipt.json").read() == b'{"ok": 1}')
        offset = sftp.stat("/inbound/dpl/big.fixml").st_size or 0
        with sftp.open("/inbound/dpl/big.fixml", "a") as remote:  # append from the partial
            remote.write(PAYLOAD[offset:])
        out["resume"] = "yes"
        sftp.posix_rename("/inbound/dpl/up.fixml", "/inbound/dpl/up2.fixml")
        out["rename"] = "yes"
        try:
            sftp.mkdir("/inbound/dpl")
            out["mkdir existing"] = "yes"
        except OSError as exc:
            out["mkdir existing"] = yes("exists" in str(exc))
        out["df"] = "n/a"  # paramiko's client has no statvfs
        try:
            sftp.putfo(io.BytesIO(b"no"), "/outbound/dpl/x.fixml")
            out["refused"] = "no"
        except PermissionError:
            out["refused"] = "yes"
    return check_files(run_, out, "up2.fixml")


def asyncssh_client(run_: Running, tmp_path: Path) -> Outcome:
    async def go() -> Outcome:
        out: Outcome = {}
        async with asyncssh.connect(
            "127.0.0.1", run_.port, username="fa", known_hosts=None,
            client_keys=[str(run_.keys.private("fa"))],
        ) as conn:  # fmt: skip
            out["login"] = "yes"
            async with conn.start_sftp_client() as sftp:
                out["ls"] = yes("s1.receipt.json" in await sftp.listdir("/outbound/dpl"))
                await sftp.put(str(tmp_path / "up.fixml"), "/inbound/dpl/up.fixml")
                out["put"] = "yes"
                await sftp.get("/outbound/dpl/s1.receipt.json", str(tmp_path / "got.json"))
                out["get"] = yes((tmp_path / "got.json").exists())
                offset = (await sftp.stat("/inbound/dpl/big.fixml")).size or 0
                async with sftp.open("/inbound/dpl/big.fixml", "ab") as remote:
                    await remote.write(PAYLOAD[offset:])
                out["resume"] = "yes"
                await sftp.posix_rename("/inbound/dpl/up.fixml", "/inbound/dpl/up2.fixml")
                out["rename"] = "yes"
                await sftp.makedirs("/inbound/dpl", exist_ok=True)
                out["mkdir existing"] = "yes"
                out["df"] = yes((await sftp.statvfs("/")).bavail > 0)
                try:
                    await sftp.put(str(tmp_path / "up.fixml"), "/outbound/dpl/x.fixml")
                    out["refused"] = "no"
                except asyncssh.SFTPPermissionDenied:
                    out["refused"] = "yes"
        return out

    return check_files(run_, asyncio.run(go()), "up2.fixml")


CLIENTS: dict[str, Callable[[Running, Path], Outcome]] = {
    "sftp (OpenSSH)": openssh,
    "lftp": lftp,
    "rclone": rclone,
    "curl (libssh2)": curl,
    "paramiko": paramiko_client,
    "asyncssh": asyncssh_client,
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_operations_match_the_readme_table(
    client: str,
    make_server: MakeServer,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    running = make_server()
    prepare(running, tmp_path)
    try:
        outcome = CLIENTS[client](running, tmp_path)
    except (OSError, paramiko.SSHException, asyncssh.Error) as exc:
        pytest.fail(f"{client}: {exc!r}")
    row = [outcome[op] for op in OPERATIONS]
    print(f"| `{client}` | " + " | ".join(row) + " |")
    assert readme_rows().get(client) == row, (client, dict(zip(OPERATIONS, row, strict=True)))
