"""The exercise-by-exception pipeline with the real ledger and store and an injected clock."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from engine.ebe.instructions import read_instruction_csv
from engine.ebe.query import Filters
from gateway.config import load_config
from gateway.ebe_store import ExpiringStore
from gateway.ledger import Ledger
from gateway.pipelines.ebe import EbeFlow
from tests.support.cir import NS, valid_reports
from tests.support.daemon import make_test_config

DATA = Path(__file__).resolve().parents[3] / "data" / "ebe"
CT = dt.timezone(dt.timedelta(hours=-6))
HEADER = "account,symbol,put_call,strike,expiration_date,action,quantity\n"


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture
def flow(tmp_path: Path):
    cfg = make_test_config(tmp_path)
    config = load_config(cfg.path)
    shutil.copytree(DATA / "sets" / "base", cfg.spool / "internal" / "ebe" / "2026-12-18")
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    events: list[tuple[str, dict]] = []
    store = ExpiringStore(cfg.spool / "internal" / "ebe")
    clock = Clock(dt.datetime(2026, 12, 18, 15, 0, tzinfo=CT))
    f = EbeFlow(
        spool_root=cfg.spool,
        ledger=ledger,
        store=store,
        config=lambda: config,
        clock=clock,
        emit=lambda key, body: events.append((key, dict(body))),
    )
    store.on_loaded = f.set_loaded
    store.on_rejected = f.set_rejected
    assert store.refresh() == ["2026-12-18"]
    yield f, clock, events, cfg
    ledger.close()


def test_a_loaded_set_is_announced_to_each_firm_with_positions(flow):
    f, clock, events, cfg = flow
    ready = {k: v for k, v in events if k.endswith(".ebe.ready")}
    assert set(ready) == {"firm.00123.ebe.ready", "firm.00456.ebe.ready"}
    assert ready["firm.00123.ebe.ready"]["positions"] == 7
    assert f.ledger.ebe_sets()["2026-12-18"]["rows"] == 8


def _submit(f, at, text):
    return f.submit(
        read_instruction_csv((HEADER + text).encode(), "i.csv"),
        firm="00123",
        received_at=at,
        origin="i.csv",
    )


def test_cutoff_at_16_30_ct_one_second_either_side(flow):
    f, clock, events, cfg = flow
    line = "ACC2,ABC,P,20,2026-12-18,EXERCISE,3\n"
    before = _submit(f, dt.datetime(2026, 12, 18, 16, 29, 59, tzinfo=CT), line)
    after = _submit(f, dt.datetime(2026, 12, 18, 16, 30, 1, tzinfo=CT), line)
    assert before["lines"][0]["status"] == "accepted"
    assert after["lines"][0]["reasons"] == ["AFTER_CUTOFF"]
    assert any(k == "firm.00123.ebe.instruction" for k, _ in events)
    clock.at = dt.datetime(2026, 12, 18, 16, 31, tzinfo=CT)
    doc = f.query("00123", Filters.parse({"expiration_date": "2026-12-18", "contrary_only": True}))
    assert doc["status"] == "final"
    assert [(r["symbol"], r["final_exercise_qty"]) for r in doc["rows"]] == [("ABC", 3)]


def test_instructions_survive_a_restart_and_the_latest_wins(flow, tmp_path):
    f, clock, events, cfg = flow
    at = dt.datetime(2026, 12, 18, 15, 0, tzinfo=CT)
    _submit(f, at, "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n")
    _submit(f, at + dt.timedelta(minutes=1), "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,10\n")
    reopened = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    store = ExpiringStore(cfg.spool / "internal" / "ebe")
    store.refresh()
    again = EbeFlow(
        spool_root=cfg.spool,
        ledger=reopened,
        store=store,
        config=f.config,
        clock=clock,
        emit=lambda k, b: None,
    )
    doc = again.query("00123", Filters.parse({"expiration_date": "2026-12-18", "symbol": "XYZ"}))
    row = next(r for r in doc["rows"] if r["strike"] == "45.66")
    assert (row["final_exercise_qty"], row["contrary_qty"]) == (0, 10)
    other = again.query("00456", Filters.parse({"expiration_date": "2026-12-18"}))
    assert {r["firm"] for r in other["rows"]} == {"00456"}
    reopened.close()


def test_a_bad_newer_set_is_refused_and_the_previous_one_stays(flow, monkeypatch):
    f, clock, events, cfg = flow
    alerts = []
    monkeypatch.setattr(
        "gateway.pipelines.ebe.raise_alert", lambda name, msg, details: alerts.append(name)
    )
    folder = cfg.spool / "internal" / "ebe" / "2026-12-18"
    (folder / "closing_prices.csv").write_text("underlying,close,removed\nXYZ,abc,N\n")
    assert f.store.refresh() == []
    assert alerts == ["ebe_set_rejected"]
    assert len(f.store.get("2026-12-18")) == 8


def test_contrary_intention_file_published_once_after_the_cutoff(flow):
    f, clock, events, cfg = flow
    _submit(
        f,
        dt.datetime(2026, 12, 18, 16, 0, tzinfo=CT),
        "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n",
    )
    assert f.publish_due() == []  # before the cutoff
    clock.at = dt.datetime(2026, 12, 18, 16, 30, 5, tzinfo=CT)
    assert sorted(f.publish_due()) == ["XCBO", "XISE"]  # receives_ebe=Y only
    target = cfg.spool / "exchanges" / "XCBO" / "outbound" / "ebe" / "CIR_20261218.fixml"
    reports = valid_reports(target.read_bytes())
    assert len(reports) == 1
    rpt = reports[0]
    assert rpt.get("BizDt") == "2026-12-18" and rpt.get("TxnTm") == "2026-12-18T22:00:00Z"
    assert [p.get("ID") for p in rpt.findall("f:Pty", NS)] == ["00123", "ACC1"]
    instrmt = rpt.find("f:Instrmt", NS)
    assert (instrmt.get("Sym"), instrmt.get("PutCall"), instrmt.get("StrkPx")) == (
        "XYZ",
        "1",
        "45.66",
    )
    assert {q.get("ExpTyp"): q.get("ExpQty") for q in rpt.findall("f:Qty", NS)} == {
        "4": "4",
        "3": "6",
    }
    sidecar = target.with_name(target.name + ".sha256").read_text()
    assert sidecar.split()[1] == target.name
    assert f.publish_due() == []  # idempotent
    assert not (cfg.spool / "exchanges" / "XPHL" / "outbound" / "ebe" / target.name).exists()
    assert any(k == "exchange.XCBO.ebe.published" for k, _ in events)


def test_instruction_and_query_files_from_the_intake(flow):
    f, clock, events, cfg = flow
    from gateway.spool.claims import ClaimedFile

    work = cfg.root / "work"
    work.mkdir()
    rows = []
    for name, body in (
        (
            "dec18.csv",
            HEADER
            + "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\nACC9,X,C,1,2026-12-18,EXERCISE,1\n",
        ),
        ("mine.query.json", json.dumps({"expiration_date": "2026-12-18", "contrary_only": True})),
        ("bad.query.json", json.dumps({"expiration_date": "2026-12-18", "moneyness": "DEEP"})),
    ):
        (work / name).write_text(body)
        file_id = f.ledger.record_file(
            flow="ebe",
            firm="00123",
            account="00123",
            name=name,
            sha256="x",
            size=1,
            received_at=clock(),
            cycle=None,
            work_path=str(work / name),
            source="test",
        )
        rows.append(file_id)
        f(ClaimedFile(file_id, "ebe", "00123", name, work / name, "x", 1, clock()))
    out = cfg.spool / "firms" / "00123" / "outbound" / "ebe"
    receipt = json.loads((out / "dec18.csv.ebe-receipt.json").read_text())
    assert [line["status"] for line in receipt["lines"]] == ["accepted", "rejected"]
    assert receipt["lines"][1]["reasons"] == ["UNKNOWN_POSITION"]
    csv_lines = (out / "mine.query.json.answer.csv").read_text().splitlines()
    assert len(csv_lines) == 2 and ",DO_NOT_EXERCISE,4,6," in csv_lines[1]
    error = json.loads((out / "bad.query.json.error.json").read_text())
    assert error["error"]["reason"] == "LAYOUT" and "DEEP" in error["error"]["message"]
    assert all(f.ledger.file(i).state == "processed" for i in rows)


def test_amqp_query_above_the_inline_limit_names_a_file(flow):
    import dataclasses

    from gateway.amqp.dispatch import Request
    from gateway.pipelines.requests import ebe_instruction_handler, ebe_query_handler

    f, clock, events, cfg = flow
    config = f.config()
    small = dataclasses.replace(config, ebe=dataclasses.replace(config.ebe, inline_rows=2))
    f.config = lambda: small
    body = json.dumps({"expiration_date": "2026-12-18"}).encode()
    request = Request("ebe.query", "00123", body, "application/json", "m-1", "c-1")
    reply = ebe_query_handler(f)(request).body
    assert reply["rows"] == [] and reply["row_count"] == 7
    assert reply["file"] == "outbound/ebe/amqp-m-1.query.csv"
    written = (cfg.spool / "firms" / "00123" / reply["file"]).read_text().splitlines()
    assert len(written) == 8 and all(line.startswith("00123,") for line in written[1:])

    csv_body = (HEADER + "ACC1,XYZ,C,45.66,2026-12-18,EXERCISE,0\n").encode()
    instruction = Request("ebe.instruction", "00123", csv_body, "text/csv", "m-2", "c-2")
    receipt = ebe_instruction_handler(f)(instruction).body
    assert receipt["accepted"] == 1 and receipt["name"] == "amqp:m-2"


def _gauges() -> tuple[float | None, float | None]:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value("posgate_ebe_expiration_day"),
        REGISTRY.get_sample_value("posgate_ebe_positions_overdue"),
    )


@pytest.mark.parametrize(
    ("at", "ebe", "expected"),
    [
        # the day's set is loaded: never overdue
        (dt.datetime(2026, 12, 18, 10, 0, tzinfo=CT), {}, (1.0, 0.0)),
        # the next monthly expiration, January 15, 2027, with no set: overdue after 09:00 only
        (dt.datetime(2027, 1, 15, 8, 59, tzinfo=CT), {}, (1.0, 0.0)),
        (dt.datetime(2027, 1, 15, 9, 0, tzinfo=CT), {}, (1.0, 1.0)),
        # a business day without an expiration (a Thursday) does not page
        (dt.datetime(2027, 1, 14, 10, 0, tzinfo=CT), {}, (0.0, 0.0)),
        # ... unless the operator lists it, or expects every business day or every Friday
        (
            dt.datetime(2027, 1, 14, 10, 0, tzinfo=CT),
            {"expiration_dates": ["2027-01-14"]},
            (1.0, 1.0),
        ),
        (
            dt.datetime(2027, 1, 14, 10, 0, tzinfo=CT),
            {"expiration_days": "business-days"},
            (1.0, 1.0),
        ),
        (dt.datetime(2027, 1, 8, 10, 0, tzinfo=CT), {"expiration_days": "weekly"}, (1.0, 1.0)),
        (dt.datetime(2027, 1, 8, 10, 0, tzinfo=CT), {}, (0.0, 0.0)),
        # listed only: the third Friday is not assumed
        (dt.datetime(2027, 1, 15, 10, 0, tzinfo=CT), {"expiration_days": "listed"}, (0.0, 0.0)),
        # a weekend and a holiday
        (
            dt.datetime(2027, 1, 16, 10, 0, tzinfo=CT),
            {"expiration_days": "business-days"},
            (0.0, 0.0),
        ),
        (
            dt.datetime(2027, 1, 18, 10, 0, tzinfo=CT),
            {"expiration_days": "business-days"},
            (0.0, 0.0),
        ),
    ],
)
def test_positions_are_overdue_only_on_expiration_days(flow, at, ebe, expected):
    f, clock, events, cfg = flow
    cfg.overrides["ebe"] = ebe
    cfg.write()
    config = load_config(cfg.path)
    f.config = lambda: config
    clock.at = at
    f.update_overdue()
    assert _gauges() == expected


@pytest.mark.parametrize(
    ("ebe", "problem"),
    [
        ({"expiration_days": "quarterly"}, "ebe.expiration_days"),
        ({"expiration_dates": ["2026-13-01"]}, "not a calendar date: '2026-13-01'"),
        ({"expiration_dates": ["18.12.2026"]}, "expected dates YYYY-MM-DD, got '18.12.2026'"),
        ({"expiration_dates": "2026-12-18"}, "expected a list of dates"),
    ],
)
def test_bad_expiration_settings_are_named(tmp_path, ebe, problem):
    from gateway.config import ConfigError

    cfg = make_test_config(tmp_path, ebe=ebe)
    with pytest.raises(ConfigError) as caught:
        load_config(cfg.path)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_toml_dates_are_accepted_as_expiration_dates(tmp_path):
    cfg = make_test_config(tmp_path)
    cfg.path.write_text(cfg.path.read_text() + "\n[ebe]\nexpiration_dates = [2027-01-14]\n")
    assert load_config(cfg.path).ebe.expiration_dates == {dt.date(2027, 1, 14)}


def test_the_contrary_file_is_rebuilt_only_when_its_inputs_change(flow, monkeypatch):
    import dataclasses

    import gateway.pipelines.ebe as pipeline

    f, clock, events, cfg = flow
    real = pipeline.contrary_intention_file
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "contrary_intention_file", counted)
    _submit(f, dt.datetime(2026, 12, 18, 16, 0, tzinfo=CT), "ACC2,ABC,P,20,2026-12-18,EXERCISE,3\n")
    clock.at = dt.datetime(2026, 12, 18, 16, 31, tzinfo=CT)
    assert sorted(f.publish_due()) == ["XCBO", "XISE"] and len(calls) == 1
    assert f.publish_due() == [] and len(calls) == 1  # every tick after: nothing recomputed
    late = _submit(f, clock.at, "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n")
    assert late["rejected"] == 1
    assert f.publish_due() == [] and len(calls) == 1  # a rejected line changes nothing

    config = f.config()
    lower = dataclasses.replace(
        config, ebe=dataclasses.replace(config.ebe, thresholds={"C": 100, "F": 100, "M": 0})
    )
    f.config = lambda: lower
    f.publish_due()
    assert len(calls) == 2  # a reload with other thresholds

    folder = cfg.spool / "internal" / "ebe" / "2026-12-18"
    text = (folder / "expiring_positions.csv").read_text()
    (folder / "expiring_positions.csv").write_text(
        text.replace(
            "ACC2,M,ABC,ABC,P,20,2026-12-18,100,7,", "ACC2,M,ABC,ABC,P,20,2026-12-18,100,9,"
        )
    )
    (folder / "meta.csv").touch()
    assert f.store.refresh() == ["2026-12-18"]
    # a newer set is recomputed; its file is the same (an EXERCISE 3 of an out-of-the-money
    # put does not depend on the long), so nothing is delivered again
    assert f.publish_due() == [] and len(calls) == 3
    cir = cfg.spool / "exchanges" / "XCBO" / "outbound" / "ebe" / "CIR_20261218.fixml"
    [report] = valid_reports(cir.read_bytes())
    assert {q.get("ExpTyp"): q.get("ExpQty") for q in report.findall("f:Qty", NS)} == {
        "4": "3",
        "3": "3",
    }
