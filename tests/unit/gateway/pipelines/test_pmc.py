"""The pmc pipeline (one position file -> outbound files) and the theo set store."""

from __future__ import annotations

import csv
import io
import shutil
import threading
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.errors import UnreadableInput
from engine.pmc.theo.read import TheoSetInvalid
from gateway.pipelines.pmc import output_stem, process_position_file
from gateway.theo_store import TheoStore, load_theo_set

ROOT = Path(__file__).resolve().parents[4]
SAMPLES = ROOT / "config" / "samples" / "pmc"
THEO_DIR = SAMPLES / "theo" / "2026-11-20"
DATA = ROOT / "tests" / "data" / "pmc"


@pytest.fixture(scope="module")
def theo():  # type: ignore[no-untyped-def]
    return load_theo_set(THEO_DIR)


def test_outputs_are_written_with_counts_and_totals(tmp_path: Path, theo) -> None:  # type: ignore[no-untyped-def]
    data = (SAMPLES / "positions.csv").read_bytes()
    outcome = process_position_file(
        data,
        name="inbound/pmc/day1.csv",
        firm="00005",
        theo=theo,
        outbound_dir=tmp_path,
        write_pdf=False,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "day1.csv.errors.csv",
        "day1.csv.results.csv",
        "day1.csv.summary.csv",
    ]
    assert outcome.format == "csv" and outcome.theo_date == "2026-11-20"
    assert outcome.counts.as_dict() == {
        "accepted": 15,
        "rejected": 1,
        "invalid_series": 1,
        "warnings": 1,
        "total": 17,
    }
    summary = list(csv.DictReader(io.StringIO((tmp_path / "day1.csv.summary.csv").read_text())))
    accounts = [r for r in summary if r["level"] == "account"]
    assert sum(float(r["requirement"]) for r in accounts) == pytest.approx(
        outcome.requirement, abs=0.02
    )
    assert outcome.firm_requirements == {"00005": pytest.approx(outcome.requirement)}
    errors = list(csv.DictReader(io.StringIO((tmp_path / "day1.csv.errors.csv").read_text())))
    assert [(e["line"], e["kind"], e["reason"]) for e in errors] == [
        ("13", "invalid_series", "INVALID_SERIES"),
        ("14", "rejected", "BAD_VALUE"),
        ("15", "warning", "MARKET_VALUE_IGNORED"),
    ]
    results = list(csv.DictReader(io.StringIO((tmp_path / "day1.csv.results.csv").read_text())))
    contracts = [r for r in results if r["level"] == "contract"]
    assert len(contracts) == outcome.counts.accepted
    assert outcome.as_dict()["outputs"] == {
        "results": "day1.csv.results.csv",
        "summary": "day1.csv.summary.csv",
        "errors": "day1.csv.errors.csv",
    }


def test_pdf_when_configured_and_a_clean_error_log(tmp_path: Path, theo) -> None:  # type: ignore[no-untyped-def]
    data = b"346,,5,A,,AAPL,,,,,,0,L,S,,100,C,\n"
    outcome = process_position_file(
        data, name="clean.csv", firm="5", theo=theo, outbound_dir=tmp_path, write_pdf=True
    )
    assert outcome.outputs["pdf"].name == "clean.csv.pdf"
    assert outcome.outputs["summary_pdf"].name == "clean.csv.summary.pdf"
    summary = "".join(p.extract_text() for p in PdfReader(outcome.outputs["summary_pdf"]).pages)
    assert "summary" in summary and f"-{outcome.requirement:,.0f}" in summary
    text = "".join(p.extract_text() for p in PdfReader(outcome.outputs["pdf"]).pages)
    assert f"-{outcome.requirement:,.0f}" in text
    assert (
        tmp_path / "clean.csv.errors.csv"
    ).read_text() == "line,kind,reason,field,value,message\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_blank_firm_numbers_take_the_submitting_firm(tmp_path: Path, theo) -> None:  # type: ignore[no-untyped-def]
    data = b"346,,,A,,AAPL,,,,,,0,L,S,,100,C,\n"
    outcome = process_position_file(
        data, name="f.csv", firm="00161", theo=theo, outbound_dir=tmp_path, write_pdf=False
    )
    assert list(outcome.firm_requirements) == ["00161"]


def test_unreadable_file_raises_and_writes_nothing(tmp_path: Path, theo) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnreadableInput):
        process_position_file(
            b"\x00\x00binary",
            name="x.csv",
            firm="5",
            theo=theo,
            outbound_dir=tmp_path,
            write_pdf=True,
        )
    assert list(tmp_path.iterdir()) == []


def test_ascii_corpus_file(tmp_path: Path, theo) -> None:  # type: ignore[no-untyped-def]
    outcome = process_position_file(
        (DATA / "sample_ascii.txt").read_bytes(),
        name="a.txt",
        firm="5",
        theo=theo,
        outbound_dir=tmp_path,
        write_pdf=False,
    )
    assert outcome.format == "ascii"
    assert (outcome.counts.accepted, outcome.counts.invalid_series) == (6, 1)


@pytest.mark.parametrize(
    ("name", "stem"),
    [("a/b/c.csv", "c.csv"), ("day.1.txt", "day.1.txt"), ("noext", "noext"), ("", "positions")],
)
def test_output_stem(name: str, stem: str) -> None:
    assert output_stem(name) == stem


# --------------------------------------------------------------------------------------------
# TheoStore


def _copy_set(root: Path, day: str, *, complete: bool = True) -> Path:
    target = root / day
    shutil.copytree(THEO_DIR, target)
    meta = target / "meta.csv"
    meta.write_text(meta.read_text().replace("2026-11-20", day))
    if not complete:
        meta.unlink()
    return target


def test_store_keeps_the_newest_complete_sets(tmp_path: Path) -> None:
    for day in ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"):
        _copy_set(tmp_path, day)
    _copy_set(tmp_path, "2026-11-20", complete=False)  # still being written
    (tmp_path / "notes").mkdir()
    store = TheoStore(tmp_path, keep=3)
    assert store.latest() is None
    assert store.refresh() == ["2026-11-17", "2026-11-18", "2026-11-19"]
    assert store.dates() == ["2026-11-17", "2026-11-18", "2026-11-19"]
    latest = store.latest()
    assert latest is not None and latest.activity_date == "2026-11-19"
    # meta.csv arrives last: the set becomes visible, the oldest drops out
    (tmp_path / "2026-11-20" / "meta.csv").write_text((THEO_DIR / "meta.csv").read_text())
    assert store.refresh() == ["2026-11-20"]
    assert store.dates() == ["2026-11-18", "2026-11-19", "2026-11-20"]
    assert store.refresh() == []
    # an older date is still served on demand without being kept
    older = store.get("2026-11-16")
    assert older is not None and older.activity_date == "2026-11-16"
    assert store.dates() == ["2026-11-18", "2026-11-19", "2026-11-20"]
    assert store.get("2026-01-01") is None and store.get("../etc") is None


def test_store_skips_a_bad_set_until_it_changes(tmp_path: Path) -> None:
    good = _copy_set(tmp_path, "2026-11-19")
    bad = _copy_set(tmp_path, "2026-11-20")
    (bad / "pnl.csv").write_text("account_type\nC\n")
    store = TheoStore(tmp_path, keep=2)
    assert store.refresh() == ["2026-11-19"]
    assert store.latest() is not None and store.latest().activity_date == "2026-11-19"  # type: ignore[union-attr]
    assert store.refresh() == []  # not retried while unchanged
    shutil.copy(THEO_DIR / "pnl.csv", bad / "pnl.csv")
    (bad / "meta.csv").unlink()
    shutil.copy(THEO_DIR / "meta.csv", bad / "meta.csv")  # republished: meta.csv again, last
    import os

    st = (bad / "meta.csv").stat()
    os.utime(bad / "meta.csv", (st.st_atime, st.st_mtime + 5))
    assert store.refresh() == ["2026-11-20"]
    del good


def test_load_theo_set_errors(tmp_path: Path) -> None:
    with pytest.raises(TheoSetInvalid, match="not a folder"):
        load_theo_set(tmp_path / "missing")
    partial = _copy_set(tmp_path, "2026-11-20")
    (partial / "class_groups.csv").unlink()
    with pytest.raises(TheoSetInvalid, match="class_groups.csv is missing"):
        load_theo_set(partial)


def test_store_is_safe_across_threads(tmp_path: Path) -> None:
    for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
        _copy_set(tmp_path, day)
    store = TheoStore(tmp_path, keep=2)
    seen: list[str | None] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                theo = store.latest()
                seen.append(None if theo is None else theo.activity_date)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads.append(threading.Thread(target=store.refresh))
    threads.append(threading.Thread(target=store.refresh))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(seen) <= {None, "2026-11-19", "2026-11-20"}
    assert store.dates() == ["2026-11-19", "2026-11-20"]


# --------------------------------------------------------------------------------------------
# PmcArrival: choosing the P&L set


def _arrival(tmp_path: Path, now: str):  # type: ignore[no-untyped-def]
    import datetime as dt

    from engine.calendar import BusinessCalendar
    from gateway.ledger import Ledger
    from gateway.pipelines.pmc import PmcArrival

    spool = tmp_path / "spool"
    store = TheoStore(spool / "internal" / "theo", keep=3)
    _copy_set(store.root, "2026-11-20")
    store.refresh()
    events: list[tuple[str, dict[str, object]]] = []
    ledger = Ledger(tmp_path / "ledger.sqlite")
    # results are written in the ledger transaction; the "not loaded" answer through ``emit``
    ledger.event_writer = lambda _conn, key, body, _id: events.append((key, dict(body)))
    arrival = PmcArrival(
        spool_root=spool,
        ledger=ledger,
        theo=store,
        write_pdf=lambda: False,
        emit=lambda key, body: events.append((key, dict(body))),
        clock=lambda: dt.datetime.fromisoformat(now),
        calendar=lambda: BusinessCalendar([], []),
    )
    return arrival, ledger, spool, events


def _claimed(tmp_path: Path, ledger, name: str, source: str, data: bytes):  # type: ignore[no-untyped-def]
    import datetime as dt

    from gateway.spool.claims import ClaimedFile

    work = tmp_path / f"work-{name}"
    work.write_bytes(data)
    at = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
    file_id = ledger.record_file(
        flow="pmc",
        firm="00005",
        account="00005",
        name=name,
        sha256="",
        size=len(data),
        received_at=at,
        cycle=None,
        work_path=str(work),
        source=source,
    )
    return ClaimedFile(file_id, "pmc", "00005", name, work, "", len(data), at)


def test_newest_set_on_the_next_business_day_is_not_stale(tmp_path: Path) -> None:
    from gateway import metrics

    # Monday 2026-11-23 09:00 in Chicago: the previous business day is Friday the 20th
    arrival, ledger, spool, events = _arrival(tmp_path, "2026-11-23T15:00:00+00:00")
    data = (SAMPLES / "positions.csv").read_bytes()
    inbound = spool / "firms" / "00005" / "inbound" / "pmc"
    outcome = arrival.process(_claimed(tmp_path, ledger, "all.csv", str(inbound / "all.csv"), data))
    assert outcome is not None and outcome.theo_date == "2026-11-20" and not outcome.theo_stale
    assert metrics.PMC_THEO_STALE._value.get() == 0  # type: ignore[attr-defined]
    # the same name in another layout gets its own outputs
    txt = (SAMPLES / "positions.txt").read_bytes()
    arrival.process(_claimed(tmp_path, ledger, "all.txt", str(inbound / "all.txt"), txt))
    outbound = spool / "firms" / "00005" / "outbound" / "pmc"
    names = sorted(p.name for p in outbound.iterdir())
    assert names == [
        "all.csv.errors.csv",
        "all.csv.results.csv",
        "all.csv.summary.csv",
        "all.txt.errors.csv",
        "all.txt.results.csv",
        "all.txt.summary.csv",
    ]
    assert events[0][1]["theo_date"] == "2026-11-20" and events[0][1]["theo_stale"] is False


def test_an_old_newest_set_is_named_and_warned_about(tmp_path: Path) -> None:
    from gateway import metrics

    # Tuesday 2026-12-01: the set of 2026-11-20 is eleven days old
    arrival, ledger, spool, events = _arrival(tmp_path, "2026-12-01T15:00:00+00:00")
    data = (SAMPLES / "positions.csv").read_bytes()
    source = str(spool / "firms" / "00005" / "inbound" / "pmc" / "p.csv")
    outcome = arrival.process(_claimed(tmp_path, ledger, "p.csv", source, data))
    assert outcome is not None and outcome.theo_stale
    assert metrics.PMC_THEO_STALE._value.get() == 1  # type: ignore[attr-defined]
    errors = (spool / "firms" / "00005" / "outbound" / "pmc" / "p.csv.errors.csv").read_text()
    first = list(csv.DictReader(io.StringIO(errors)))[0]
    assert (first["line"], first["kind"], first["reason"], first["value"]) == (
        "0",
        "warning",
        "THEO_STALE",
        "2026-11-20",
    )
    assert events[0][1]["theo_stale"] is True


def test_a_dated_folder_uses_that_set_or_is_answered_with_the_reason(tmp_path: Path) -> None:
    arrival, ledger, spool, events = _arrival(tmp_path, "2026-12-01T15:00:00+00:00")
    _copy_set(arrival.theo.root, "2026-11-19")
    data = (SAMPLES / "positions.csv").read_bytes()
    inbound = spool / "firms" / "00005" / "inbound" / "pmc"
    outcome = arrival.process(
        _claimed(tmp_path, ledger, "d.csv", str(inbound / "2026-11-19" / "d.csv"), data)
    )
    assert outcome is not None and outcome.theo_date == "2026-11-19"
    assert not outcome.theo_stale and outcome.theo_requested == "2026-11-19"
    seen: list[tuple[str, bool]] = []
    writer = ledger.event_writer
    assert writer is not None

    def in_transaction(conn, key, body, message_id):  # type: ignore[no-untyped-def]
        seen.append((key, conn.in_transaction))
        writer(conn, key, body, message_id)

    ledger.event_writer = in_transaction
    claimed = _claimed(tmp_path, ledger, "m.csv", str(inbound / "2026-10-01" / "m.csv"), data)
    missing = arrival.process(claimed)
    assert missing is None
    # the answer is written in the transaction that records the file processed
    assert seen == [("firm.00005.pmc.result", True)]
    assert ledger.file(claimed.file_id).state == "processed"
    errors = (spool / "firms" / "00005" / "outbound" / "pmc" / "m.csv.errors.csv").read_text()
    row = list(csv.DictReader(io.StringIO(errors)))[0]
    assert row["reason"] == "THEO_NOT_LOADED" and row["kind"] == "rejected"
    assert "no P&L set of 2026-10-01 is loaded (loaded: 2026-11-19, 2026-11-20)" in row["message"]
    assert events[-1][1]["error"]["reason"] == "THEO_NOT_LOADED"  # type: ignore[index]


def test_a_dated_folder_is_an_inbound_route(tmp_path: Path) -> None:
    from gateway.spool.watch import inbound_route, scan_inbound

    root = tmp_path
    pmc = root / "firms" / "00005" / "inbound" / "pmc"
    (pmc / "2026-11-20").mkdir(parents=True)
    (pmc / "2026-11-20" / "a.csv").write_text("x")
    (pmc / "b.csv").write_text("x")
    (pmc / "notadate").mkdir()
    (pmc / "notadate" / "c.csv").write_text("x")
    assert inbound_route(root, pmc / "2026-11-20" / "a.csv") == ("00005", "pmc")
    assert inbound_route(root, pmc / "notadate" / "c.csv") is None
    assert inbound_route(root, pmc / "2026-11-20" / "a.csv.part") is None
    seen: list[Path] = []
    scan_inbound(root, seen.append)
    assert sorted(p.relative_to(pmc).as_posix() for p in seen) == ["2026-11-20/a.csv", "b.csv"]
