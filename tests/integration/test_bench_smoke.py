"""Tiny runs of the benchmarks that have no smoke test elsewhere, so they keep working."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.benchmarks import bench_dpl_intake, bench_upload_receipt


def test_dpl_intake_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    bench_dpl_intake.main(["--records", "2000"])
    out = capsys.readouterr().out
    assert "intake: parse + validate + ledger" in out and "2,000 records" in out


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")
def test_upload_receipt_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_upload_receipt.main(["--uploads", "2", "--records", "300"]) == 0
    assert "p99" in capsys.readouterr().out


def test_ebe_bench_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tests.benchmarks import bench_ebe
    from tests.support.cir import valid_reports

    cir = tmp_path / "CIR_20261218.fixml"
    args = ["--positions", "5000", "--instructions", "500", "--json", "--cir-out", str(cir)]
    assert bench_ebe.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["positions"] == 5000 and 0 < result["accepted"] < 500
    assert result["cir_reports"] > 0
    assert len(valid_reports(cir.read_bytes())) == result["cir_reports"]


def test_pmc_e2e_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pandas", reason="the pandas peer comes from the bench extra")
    from tests.benchmarks import bench_pmc_e2e

    assert bench_pmc_e2e.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| 5,000 |" in out and "agree" in out
