"""On-demand DPL reports and the missing-submitters view, from a real ledger, and their CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.calendar import BusinessCalendar
from gateway.cli import main
from gateway.commands.dpl_publish import CliRuntime
from gateway.config import load_config
from gateway.ledger import Ledger
from gateway.outputs.reports import (
    RECORD_COLUMNS,
    CycleNotPublished,
    dpl_report_rows,
    missing_submitters,
    render_csv,
    render_json,
)
from gateway.publication.publish import publish_cycle
from tests.benchmarks.bench_dpl_publish import add_dpl_file, ledger_row, valid_fields
from tests.support.daemon import TestConfig, make_test_config

CYCLE = dt.date(2026, 3, 9)
PROBLEM = {
    "code": "UNKNOWN_CM",
    "field": "Pty[R=4]/@ID",
    "value": "99999",
    "message": "ID='99999' is not a clearing member",
}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestConfig, CliRuntime]]:
    cfg = make_test_config(tmp_path)
    config = load_config(cfg.path)
    ledger = Ledger(config.spool.ledger_path)
    yield cfg, CliRuntime(config, ledger, lambda: dt.datetime(2026, 3, 10, 5, 5, tzinfo=dt.UTC))
    ledger.close()


def seed(ledger: Ledger) -> None:
    add_dpl_file(
        ledger,
        submitter="00005",
        cycle=CYCLE,
        name="old.fixml",
        rows=[
            ledger_row(1, valid_fields("00005", "AU", "OLD")),
        ],
    )
    add_dpl_file(
        ledger,
        submitter="00005",
        cycle=CYCLE,
        name="new.fixml",
        rows=[
            ledger_row(1, valid_fields("00005", "AU", "IBM")),
            ledger_row(
                2, valid_fields("99999", "AU", "IBM"), "rejected", ["UNKNOWN_CM"], [PROBLEM]
            ),
            ledger_row(
                3,
                None,
                "rejected",
                ["MALFORMED"],
                [{"code": "MALFORMED", "field": "", "value": None, "message": "not XML"}],
            ),
        ],
    )
    add_dpl_file(
        ledger,
        submitter="IAN",
        cycle=CYCLE,
        name="ian.fixml",
        rows=[
            ledger_row(1, valid_fields("IAN", "A", "GOOG", role="7")),
        ],
    )


def test_reports_open_only_for_published_cycles(setup: tuple[TestConfig, CliRuntime]) -> None:
    _, runtime = setup
    seed(runtime.ledger)
    with pytest.raises(CycleNotPublished, match="cycle 2026-03-09 is not published yet"):
        dpl_report_rows(runtime.ledger, CYCLE)
    publish_cycle(runtime, CYCLE)
    rows = list(dpl_report_rows(runtime.ledger, CYCLE))
    # The superseded file is gone; current files by submitter, file, line.
    assert [(r["submitter"], r["file"], r["line"], r["status"]) for r in rows] == [
        ("00005", "new.fixml", 1, "valid"),
        ("00005", "new.fixml", 2, "rejected"),
        ("00005", "new.fixml", 3, "rejected"),
        ("IAN", "ian.fixml", 1, "valid"),
    ]
    assert rows[1]["reasons"] == ["UNKNOWN_CM"]
    assert rows[1]["details"] == ["UNKNOWN_CM: ID='99999' is not a clearing member"]
    assert rows[1]["fields"]["firm_id"] == "99999"
    assert rows[2]["fields"] is None and rows[2]["details"] == ["MALFORMED: not XML"]


def test_firm_and_status_filters(setup: tuple[TestConfig, CliRuntime]) -> None:
    _, runtime = setup
    seed(runtime.ledger)
    publish_cycle(runtime, CYCLE)
    ian = list(dpl_report_rows(runtime.ledger, CYCLE, "IAN"))
    assert {r["submitter"] for r in ian} == {"IAN"} and len(ian) == 1
    rejected = list(dpl_report_rows(runtime.ledger, CYCLE, "00005", "rejected"))
    assert [r["line"] for r in rejected] == [2, 3]
    assert list(dpl_report_rows(runtime.ledger, CYCLE, "NOBODY")) == []
    with pytest.raises(ValueError):
        dpl_report_rows(runtime.ledger, CYCLE, None, "bogus")


def test_csv_and_json_renderings(setup: tuple[TestConfig, CliRuntime]) -> None:
    _, runtime = setup
    seed(runtime.ledger)
    publish_cycle(runtime, CYCLE)
    out = io.StringIO()
    assert render_csv(dpl_report_rows(runtime.ledger, CYCLE), out) == 4
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(table[0].keys()) == RECORD_COLUMNS
    assert table[1]["reasons"] == "UNKNOWN_CM" and table[1]["firm_id"] == "99999"
    assert table[0]["firm_name"] == "Firm 00005 & Co <Ltd>" and table[2]["symbol"] == ""
    out = io.StringIO()
    assert (
        render_json(dpl_report_rows(runtime.ledger, CYCLE, "IAN"), out, cycle=CYCLE, firm="IAN")
        == 1
    )
    doc = json.loads(out.getvalue())
    assert doc["schema_version"] == 1 and doc["count"] == 1 and doc["firm"] == "IAN"
    assert doc["records"][0]["fields"]["symbol"] == "GOOG"
    out = io.StringIO()
    render_json(iter(()), out, cycle=CYCLE)
    assert json.loads(out.getvalue())["records"] == []


def test_missing_submitters_over_the_lookback_cycles(
    setup: tuple[TestConfig, CliRuntime],
) -> None:
    _, runtime = setup
    ledger = runtime.ledger
    calendar = BusinessCalendar()
    for firm, cycle in (
        ("00005", "2026-03-09"),
        ("00005", "2026-03-06"),
        ("IAN", "2026-03-06"),
        ("00010", "2026-03-03"),
        ("00010", "2026-03-02"),
        ("7", "2026-02-27"),
    ):
        add_dpl_file(ledger, submitter=firm, cycle=dt.date.fromisoformat(cycle), rows=[])
    rows = missing_submitters(ledger, calendar, CYCLE, 5, contact=lambda f: f"contact {f}")
    # 5 cycles back from Monday 9th: 6th, 5th, 4th, 3rd, 2nd; the 27th is out.
    assert [(r["firm"], r["last_cycle"], r["cycles_submitted"]) for r in rows] == [
        ("00010", "2026-03-03", 2),
        ("IAN", "2026-03-06", 1),
    ]
    assert rows[0]["technical_contact"] == "contact 00010"
    assert missing_submitters(ledger, calendar, CYCLE, 6)[0]["firm"] == "7"


def test_cli_reports(
    setup: tuple[TestConfig, CliRuntime], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg, runtime = setup
    seed(runtime.ledger)
    args = ["--config", str(cfg.path), "report", "dpl", "--date", "2026-03-09"]
    assert main(args) == 1
    assert "cycle 2026-03-09 is not published yet" in capsys.readouterr().err
    publish_cycle(runtime, CYCLE)
    assert main([*args, "--firm", "00005", "--status", "rejected"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["line"] for r in table] == ["2", "3"]
    out = tmp_path / "report.json"
    assert main([*args, "--format", "json", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["count"] == 4
    assert (
        main(
            [
                "--config",
                str(cfg.path),
                "report",
                "dpl-missing",
                "--date",
                "2026-03-10",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert [m["firm"] for m in doc["missing"]] == ["00005", "IAN"]
    assert (
        main(["--config", str(cfg.path), "report", "dpl-missing", "--date", "2026-03-08"]) == 1
    )  # a Sunday
