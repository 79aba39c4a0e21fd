"""The publication benchmark at a smoke size, so ``scripts/bench dpl-publish`` keeps working."""

from __future__ import annotations

import pytest

from tests.benchmarks.bench_dpl_publish import main


def test_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--records", "3000", "--small", "1000"]) == 0
    out = capsys.readouterr().out
    assert "| 1,000 |" in out and "| 3,000 |" in out and "Peak RSS" in out
