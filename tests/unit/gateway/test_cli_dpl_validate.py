"""``posgate dpl validate`` and ``posgate calendar`` run as real processes on corpus files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / "tests" / "data" / "dpl"
RECEIVED = "2026-03-09T21:15:00-05:00"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped config and reference data, with accounts of our own."""
    folder = tmp_path_factory.mktemp("cfg") / "config"
    folder.mkdir()
    shutil.copy(REPO / "config" / "posgate.toml", folder / "posgate.toml")
    shutil.copytree(REPO / "config" / "reference", folder / "reference")
    accounts = folder / "accounts"
    accounts.mkdir()
    (accounts / "bureau.toml").write_text(
        '[[account]]\nname = "bureau"\nkind = "firm"\nid = "00352"\n'
        'submits_for = ["00352", "IAN"]\n'
    )
    (accounts / "gs.toml").write_text('[[account]]\nname = "gs"\nkind = "firm"\nid = "00005"\n')
    (folder / "reference" / "occ_holidays.csv").write_text(
        "date,action,description\n2026-03-11,close,OCC systems upgrade\n"
    )
    return folder / "posgate.toml"


def posgate(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSGATE_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / f"{name}.expected.json").read_text())
    return data


@pytest.mark.parametrize(
    "name", ["valid/003_many_shapes", "invalid/107_bizdt_out_of_range", "invalid/101_malformed"]
)
def test_records_then_summary(config: Path, name: str) -> None:
    exp = expected(name)
    result = posgate(
        config,
        "dpl",
        "validate",
        str(CORPUS / f"{name}.fixml"),
        "--firm",
        exp["firm"],
        "--received-at",
        exp["received_at"],
    )
    assert result.returncode == 0, result.stderr
    *records, last = json_lines(result.stdout)
    assert records == exp["records"]
    summary = last["summary"]
    assert summary["file"].endswith(f"{name}.fixml")
    assert summary["cycle"] == exp["cycle"]
    assert summary["total"] == len(records)
    assert summary["valid"] == sum(r["status"] == "valid" for r in records)
    assert summary["rejected"] == summary["total"] - summary["valid"]
    counted: dict[str, int] = {}
    for record in records:
        for reason in record["reasons"]:
            counted[reason] = counted.get(reason, 0) + 1
    assert summary["by_reason"] == counted


def test_details_name_the_offending_value(config: Path) -> None:
    result = posgate(
        config,
        "dpl",
        "validate",
        str(CORPUS / "invalid" / "105_unknown_cm.fixml"),
        "--firm",
        "00005",
        "--received-at",
        RECEIVED,
        "--details",
    )
    assert result.returncode == 0
    first = json_lines(result.stdout)[0]
    assert first["reasons"] == ["UNKNOWN_CM", "NOT_ENTITLED"]
    assert first["details"][0]["value"] == "00999"


def test_entitlement_comes_from_the_firm_account(config: Path) -> None:
    path = CORPUS / "valid" / "010_service_bureau.fixml"  # records of 00005, IAN and 00161
    bureau = posgate(
        config, "dpl", "validate", str(path), "--firm", "352", "--received-at", RECEIVED
    )
    alone = posgate(
        config, "dpl", "validate", str(path), "--firm", "00161", "--received-at", RECEIVED
    )
    assert [r.get("reasons") for r in json_lines(bureau.stdout)[:-1]] == [
        ["NOT_ENTITLED"],
        [],
        ["NOT_ENTITLED"],
    ]
    assert [r.get("reasons") for r in json_lines(alone.stdout)[:-1]] == [
        ["NOT_ENTITLED"],
        ["NOT_ENTITLED"],
        [],
    ]


def test_an_unreadable_file_exits_65_with_a_json_error(config: Path) -> None:
    result = posgate(
        config,
        "dpl",
        "validate",
        str(CORPUS / "invalid" / "122_binary.fixml"),
        "--firm",
        "00005",
        "--received-at",
        RECEIVED,
    )
    assert result.returncode == 65
    (line,) = json_lines(result.stdout)
    assert line["error"]["reason"] == "BINARY"
    assert "NUL byte" in line["error"]["message"]
    assert "BINARY" in result.stderr


def test_received_at_defaults_to_now_and_must_carry_an_offset(config: Path) -> None:
    path = str(CORPUS / "valid" / "001_cm_sample.fixml")
    now = posgate(config, "dpl", "validate", path, "--firm", "00005")
    assert now.returncode == 0
    summary = json_lines(now.stdout)[-1]["summary"]
    assert json_lines(now.stdout)[0]["reasons"] == ["BIZDT_OUT_OF_RANGE"]  # a 2007 BizDt
    assert len(summary["cycle"]) == 10
    naive = posgate(
        config, "dpl", "validate", path, "--firm", "00005", "--received-at", "2026-03-09T10:00"
    )
    assert naive.returncode == 2 and "offset" in naive.stderr


def test_usage_and_config_errors(config: Path, tmp_path: Path) -> None:
    missing = posgate(config, "dpl", "validate", str(tmp_path / "nope.fixml"), "--firm", "5")
    assert missing.returncode == 66 and "cannot read" in missing.stderr
    no_firm = posgate(config, "dpl", "validate", str(tmp_path / "nope.fixml"))
    assert no_firm.returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[dpl]\npublish_time = 5\n")
    broken = posgate(
        bad, "dpl", "validate", str(CORPUS / "valid" / "001_cm_sample.fixml"), "--firm", "5"
    )
    assert broken.returncode == 78 and "publish_time" in broken.stderr
    group = posgate(config, "dpl")
    assert group.returncode == 2 and "validate" in group.stderr


def test_calendar_facts_of_a_date(config: Path) -> None:
    result = posgate(config, "calendar", "--date", "2026-11-27")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["business_day"] is True
    assert facts["cycle"] == "2026-11-27"
    assert facts["allowed_bizdt"] == ["2026-11-25", "2026-11-27"]
    assert facts["previous_business_day"] == "2026-11-25"
    assert facts["next_business_day"] == "2026-11-30"
    assert facts["cutoff"] == "2026-11-28T00:00:00-06:00"
    assert facts["publication"] == "2026-11-28T00:05:00-06:00"


def test_calendar_uses_the_occ_overrides_of_the_config(config: Path) -> None:
    facts = json.loads(posgate(config, "calendar", "--date", "2026-03-11").stdout)
    assert facts["business_day"] is False
    assert facts["why"] == "OCC holiday (OCC systems upgrade)"
    assert facts["cycle"] == "2026-03-12"
    assert facts["allowed_bizdt"] == ["2026-03-10", "2026-03-12"]


def test_calendar_facts_of_an_instant(config: Path) -> None:
    # Saturday evening in UTC is Saturday afternoon in Chicago: the cycle is Monday.
    result = posgate(config, "calendar", "--at", "2026-03-08T03:30:00Z")
    facts = json.loads(result.stdout)
    assert facts["date"] == "2026-03-07" and facts["weekday"] == "Saturday"
    assert facts["at_chicago"] == "2026-03-07T21:30:00-06:00"
    assert facts["cycle"] == "2026-03-09"
    assert facts["cutoff"] == "2026-03-10T00:00:00-05:00"
    both = posgate(config, "calendar", "--date", "2026-03-07", "--at", "2026-03-08T03:30:00Z")
    assert both.returncode == 2
    bad = posgate(config, "calendar", "--date", "2026-W10-1")
    assert bad.returncode == 2
