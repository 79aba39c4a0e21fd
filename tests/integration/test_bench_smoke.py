"""Tiny runs of the benchmarks that have no smoke test elsewhere, so they keep working."""

from __future__ import annotations

import shutil

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
