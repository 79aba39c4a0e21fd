"""CLI behaviour people build scripts on: exit codes, where output may go, option placement."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import hoist_global_options
from tests.support.daemon import REPO, make_test_config

SAMPLES = REPO / "config" / "samples" / "pmc"
THEO = SAMPLES / "theo" / "2026-11-20"
POSITIONS = SAMPLES / "positions.csv"


def posgate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_config(tmp_path_factory.mktemp("cli")).path


def test_version_names_the_commit() -> None:
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    result = posgate("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"posgate 0.1.0 (commit {head})"


def test_config_may_come_after_the_verb(config: Path) -> None:
    assert posgate("check-config", "--config", str(config)).returncode == 0
    assert posgate("check-config", f"--config={config}").returncode == 0
    assert posgate("--config", str(config), "check-config").returncode == 0
    assert hoist_global_options(["a", "--", "--config", "x"]) == ["a", "--", "--config", "x"]


def test_a_missing_input_file_exits_66(config: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.fixml"
    result = posgate("--config", str(config), "dpl", "validate", str(missing), "--firm", "00005")
    assert result.returncode == 66, result.stderr
    assert str(missing) in result.stderr
    result = posgate("margin", "--theo", str(THEO), "--positions", str(missing))
    assert result.returncode == 66, result.stderr


def test_output_only_to_regular_files_or_new_files_in_existing_folders(tmp_path: Path) -> None:
    if os.path.exists("/dev/null"):
        result = posgate(
            "margin", "--theo", str(THEO), "--positions", str(POSITIONS), "--out", "/dev/null"
        )
        assert result.returncode == 73, result.stderr
        assert "not a regular file" in result.stderr
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device
    nowhere = tmp_path / "no" / "such" / "folder" / "x.csv"
    args = ["margin", "--theo", str(THEO), "--positions", str(POSITIONS), "--format", "csv"]
    result = posgate(*args, "--out", str(nowhere))
    assert result.returncode == 73, result.stderr
    assert not (tmp_path / "no").exists()
    fresh = tmp_path / "x.csv"
    assert posgate(*args, "--out", str(fresh)).returncode == 0
    assert fresh.read_text().strip()
    assert posgate(*args, "--out", str(fresh)).returncode == 0  # a regular file is replaced


def test_human_output_carries_no_structured_log_lines(config: Path) -> None:
    result = posgate("margin", "--theo", str(THEO), "--positions", str(POSITIONS))
    assert result.returncode == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert "ts=" not in stream and "level=INFO" not in stream


def test_dpl_sample_at_yesterday_and_a_bad_at(config: Path) -> None:
    sample = ["--config", str(config), "dpl", "sample", "--firm", "00005"]
    result = posgate(*sample, "--at", "yesterday")
    assert result.returncode == 0, result.stderr
    assert "<FIXML" in result.stdout or "<Batch" in result.stdout
    bad = posgate(*sample, "--at", "someday")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "someday" in bad.stderr
