"""The README's curl examples of the HTTP API, run as written with real curl against a real
``posgate web`` process, so the README cannot drift from what the API answers.

The commands are read from the README's section on the calculator in a browser and over HTTP
(every ``curl`` line of its ``sh`` blocks, backslash continuations joined); only the address is
changed to the test's server. Each answer is checked for its status and its content; a curl
command the test has no check for fails it, so a new example gets a check too.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.pmc.positions.read import parse_position_file
from tests.support.web import REPO, SAMPLE_THEO, WebProcess

README = REPO / "README.md"
SECTION = "### The calculator in a browser and over HTTP"
README_ADDRESS = "http://127.0.0.1:8080"
SAMPLE_FILE = REPO / "config" / "samples" / "pmc" / "positions.csv"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def readme_curl_commands() -> list[str]:
    """Every curl command of the section's ``sh`` blocks, one string each."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n### ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        joined = block.replace("\\\n", " ")
        commands += [
            line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")
        ]
    return commands


def test_the_readme_has_curl_examples_of_every_route() -> None:
    commands = readme_curl_commands()
    routes = {re.search(r"127\.0\.0\.1:8080(/[\w/.-]*)", c).group(1) for c in commands}  # type: ignore[union-attr]
    assert routes >= {
        "/healthz",
        "/api/v1/theo-sets",
        "/api/v1/contracts",
        "/api/v1/margin",
        "/api/v1/positions/convert",
        "/api/v1/margin/export",
    }


def _run(command: str, base: str, cwd: Path) -> tuple[int, str, bytes]:
    """The README command against ``base``: HTTP status, content type and body (the body is
    the file the command writes with ``-o`` when it has one)."""
    argv = shlex.split(command.replace(README_ADDRESS, base))
    argv += ["--write-out", "\n%{http_code} %{content_type}"]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=60, check=True)
    body, _, tail = done.stdout.rpartition(b"\n")
    status, _, kind = tail.decode().partition(" ")
    if "-o" in argv:
        body = (cwd / argv[argv.index("-o") + 1]).read_bytes()
    return int(status), kind, body


def _cli_margin_json() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(REPO / "no-such-config.toml")]
        + ["margin", "--theo", str(SAMPLE_THEO / "2026-11-20"), "--positions", str(SAMPLE_FILE)]
        + ["--format", "json"],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=True,
    )
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def test_every_readme_curl_example_answers_as_the_readme_says(tmp_path: Path) -> None:
    (tmp_path / "config").symlink_to(REPO / "config")  # the examples name files from the repo
    web = WebProcess(SAMPLE_THEO)
    try:
        web.wait_ready()
        checked = 0
        for command in readme_curl_commands():
            status, kind, body = _run(command, web.url, tmp_path)
            assert status == 200, f"{command}\n-> {status} {body[:300]!r}"
            if "/healthz" in command:
                assert json.loads(body) == {"status": "ok", "theo_date": "2026-11-20"}
            elif "/api/v1/theo-sets" in command:
                doc = json.loads(body)
                assert doc["latest"] == "2026-11-20"
                assert [s["date"] for s in doc["theo_sets"]] == ["2026-11-20"]
            elif "/api/v1/contracts" in command:
                doc = json.loads(body)
                assert doc["total"] == len(doc["contracts"]) > 0
                assert {c["underlying"] for c in doc["contracts"]} == {"SPX"}
                assert {c["account_type"] for c in doc["contracts"]} == {"C"}
            elif "/api/v1/margin/export" in command:
                assert kind == "application/pdf" and body.startswith(b"%PDF")
                text = "".join(
                    page.extract_text() for page in PdfReader(tmp_path / "summary.pdf").pages
                )
                assert "2026-11-20" in text and "BD1" in text
            elif "/api/v1/margin" in command:
                assert kind.startswith("application/json")
                assert json.loads(body) == _cli_margin_json()  # the numbers of posgate margin
            elif "/api/v1/positions/convert?to=ascii" in command:
                assert kind.startswith("text/plain")
                ascii_file = parse_position_file(body)
                csv_file = parse_position_file(SAMPLE_FILE.read_bytes())
                assert ascii_file.format == "ascii"
                assert ascii_file.positions.symbol.tolist() == csv_file.positions.symbol.tolist()
                assert (
                    ascii_file.positions.quantity.tolist() == csv_file.positions.quantity.tolist()
                )
            else:
                pytest.fail(f"no check for the README example: {command}")
            checked += 1
        assert checked >= 6
    finally:
        web.stop()
