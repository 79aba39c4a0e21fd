"""Publication of the aggregated DPL file against a real ledger and spool in a temp folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from engine.dpl.records import firm_sort_text
from gateway.commands.dpl_publish import CliRuntime
from gateway.config import load_config
from gateway.ledger import Ledger
from gateway.publication.errors import IntakePending, PublicationBusy, PublicationCancelled
from gateway.publication.firm_reports import reports_written, write_firm_reports
from gateway.publication.publish import (
    cycle_complete,
    missing_exchanges,
    publication_lock,
    publish_cycle,
)
from tests.benchmarks.bench_dpl_publish import (
    add_dpl_file,
    fill_ledger,
    ledger_row,
    valid_fields,
)
from tests.support.daemon import make_test_config

CYCLE = dt.date(2026, 3, 9)  # Monday; DST began on Sunday 2026-03-08
AFTER_CUTOFF = dt.datetime(2026, 3, 10, 5, 5, tzinfo=dt.UTC)  # 00:05 CDT on the 10th
NAME = "DPL_20260309.fixml"
RECEIVERS = ("XCBO", "XISE")  # config/reference/exchanges.csv: XPHL has receives_dpl=N
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def runtime(tmp_path: Path) -> CliRuntime:
    cfg = make_test_config(tmp_path)
    config = load_config(cfg.path)
    ledger = Ledger(config.spool.ledger_path)
    yield CliRuntime(config, ledger, Clock(AFTER_CUTOFF))
    ledger.close()


def exchange_dir(runtime: CliRuntime, exchange: str) -> Path:
    return runtime.config.spool.root / "exchanges" / exchange / "outbound" / "dpl"


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def parse_lines(data: bytes) -> list[Any]:
    assert data.endswith(b"\n") and b"\r" not in data
    return [etree.fromstring(line, PARSER) for line in data.split(b"\n")[:-1]]


def seed_cycle(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    """Records over several firms and files; returns the (firm, agg, sym, subtyp) published."""
    # 00005 sends a first file, then a second one that supersedes it.
    add_dpl_file(
        ledger,
        submitter="00005",
        cycle=CYCLE,
        name="first.fixml",
        rows=[
            ledger_row(1, valid_fields("00005", "AU1", "OLD")),
        ],
        received_at=dt.datetime(2026, 3, 9, 15, tzinfo=dt.UTC),
    )
    add_dpl_file(
        ledger,
        submitter="00005",
        cycle=CYCLE,
        name="second.fixml",
        rows=[
            ledger_row(1, valid_fields("00005", "AU2", "IBM", "OTC")),
            ledger_row(2, valid_fields("00005", "AU1", "IBM", "OTC", long=None, short="500")),
            ledger_row(
                3,
                None,
                "rejected",
                ["MALFORMED"],
                [{"code": "MALFORMED", "field": "", "value": None, "message": "bad xml"}],
            ),
            ledger_row(4, valid_fields("00005", "AU1", "AAPL", "ETO")),
            ledger_row(5, valid_fields("00005", "AU1", "IBM", "CMB")),
            ledger_row(6, valid_fields("99999", "AU1", "IBM", "ETO"), "rejected", ["UNKNOWN_CM"]),
        ],
        received_at=dt.datetime(2026, 3, 9, 16, tzinfo=dt.UTC),
    )
    # An NCO, a firm with a larger number written with leading zeros, and a short numeric id.
    add_dpl_file(
        ledger,
        submitter="IAN",
        cycle=CYCLE,
        rows=[
            ledger_row(1, valid_fields("IAN", "A", "GOOG", role="7")),
        ],
    )
    add_dpl_file(
        ledger,
        submitter="00010",
        cycle=CYCLE,
        rows=[
            ledger_row(1, valid_fields("00010", "Z", "GOOG")),
            ledger_row(2, valid_fields("00010", "A", "GOOG")),
        ],
    )
    add_dpl_file(
        ledger,
        submitter="7",
        cycle=CYCLE,
        rows=[
            ledger_row(1, valid_fields("7", "X&Y", 'Q"Z')),
        ],
    )
    # Another cycle: never in this file.
    add_dpl_file(
        ledger,
        submitter="00005",
        cycle=dt.date(2026, 3, 10),
        rows=[
            ledger_row(1, valid_fields("00005", "AU1", "NEXT")),
        ],
    )
    return [
        ("00005", "AU1", "AAPL", "ETO"),
        ("00005", "AU1", "IBM", "CMB"),
        ("00005", "AU1", "IBM", "OTC"),
        ("00005", "AU2", "IBM", "OTC"),
        ("7", "X&Y", 'Q"Z', "ETO"),
        ("00010", "A", "GOOG", "ETO"),
        ("00010", "Z", "GOOG", "ETO"),
        ("IAN", "A", "GOOG", "ETO"),
    ]


def test_publishes_exactly_the_valid_current_records_in_order(runtime: CliRuntime) -> None:
    expected = seed_cycle(runtime.ledger)
    events: list[tuple[str, dict[str, Any]]] = []
    result = publish_cycle(runtime, CYCLE, emit=lambda key, body: events.append((key, body)))

    assert result.complete and result.built and result.records == len(expected)
    data = (exchange_dir(runtime, "XCBO") / NAME).read_bytes()
    posrpts = [fixml[0] for fixml in parse_lines(data)]
    got = []
    for posrpt in posrpts:
        firm, agg = posrpt[0].get("ID"), posrpt[1].get("ID")
        got.append((firm, agg, posrpt[3].get("Sym"), posrpt[3].get("SubTyp")))
        assert posrpt.get("DlvDt") == "2026-03-10"  # the publication date in Chicago
        assert posrpt.get("BizDt") == "2026-03-09" and posrpt.get("ReqTyp") == "6"
        assert posrpt[2][0].get("ID") == f"Firm {firm} & Co <Ltd>"
    assert got == expected
    assert sorted(got, key=lambda r: (firm_sort_text(r[0]), *r[1:])) == got
    rpt_ids = [p.get("RptID") for p in posrpts]
    assert rpt_ids == [f"20260309{n:09d}" for n in range(1, len(expected) + 1)]
    assert posrpts[2][4].get("Short") == "500" and posrpts[2][4].get("Long") is None

    sha = hashlib.sha256(data).hexdigest()
    assert result.sha256 == sha
    for exchange in RECEIVERS:
        folder = exchange_dir(runtime, exchange)
        assert visible(folder) == [NAME, f"{NAME}.sha256"]
        assert (folder / NAME).read_bytes() == data
        assert (folder / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert not (exchange_dir(runtime, "XPHL") / NAME).exists()
    assert result.path.read_bytes() == data
    publication = runtime.ledger.publication("2026-03-09")
    assert publication["sha256"] == sha and publication["delivery_date"] == "2026-03-10"
    assert runtime.ledger.deliveries("2026-03-09") == {e: sha for e in RECEIVERS}
    assert cycle_complete(runtime.ledger, runtime.config, CYCLE)
    assert [key for key, _ in events] == [f"exchange.{e}.dpl.published" for e in RECEIVERS]
    assert events[0][1]["sha256"] == sha and events[0][1]["records"] == len(expected)


# The sha256 of the file built for the ledger below, pinned: any change to the canonical form,
# the escaping, the order or the RptID numbering shows here, not only at the exchanges.
PINNED_SHA256 = "8163ad514701cb97ab55d43d2227a403a5335adba885232b733b14d563148e65"


def test_the_bytes_of_a_built_file_are_pinned(runtime: CliRuntime) -> None:
    seed_cycle(runtime.ledger)  # values with &, <, " among them
    fill_ledger(runtime.ledger, CYCLE, 3000, seed=11)  # plain names and names that need escaping
    result = publish_cycle(runtime, CYCLE)
    data = result.path.read_bytes()
    assert result.records == 3008 and data.count(b"\n") == 3008
    assert b"Firm 7 &amp; Co &lt;Ltd&gt;" in data and b"Securities LLC" in data
    assert hashlib.sha256(data).hexdigest() == result.sha256 == PINNED_SHA256


def test_rerun_does_nothing_and_force_reproduces_identical_bytes(runtime: CliRuntime) -> None:
    seed_cycle(runtime.ledger)
    first = publish_cycle(runtime, CYCLE)
    target = exchange_dir(runtime, "XISE") / NAME
    before = target.read_bytes()
    inode = target.stat().st_ino

    runtime.clock.now += dt.timedelta(days=2)  # DlvDt stays the date of the first publication
    again = publish_cycle(runtime, CYCLE)
    assert again.skipped and again.sha256 == first.sha256
    assert target.stat().st_ino == inode

    forced = publish_cycle(runtime, CYCLE, force=True)
    assert forced.built and {d.exchange for d in forced.delivered} == set(RECEIVERS)
    assert target.stat().st_ino != inode  # really rewritten ...
    assert target.read_bytes() == before  # ... with the same bytes
    assert forced.sha256 == first.sha256
    assert runtime.ledger.publication("2026-03-09")["runs"] == 2


def test_empty_cycle_publishes_an_empty_file_and_its_sidecar(runtime: CliRuntime) -> None:
    result = publish_cycle(runtime, CYCLE)
    empty_sha = hashlib.sha256(b"").hexdigest()
    assert result.complete and result.records == 0 and result.sha256 == empty_sha
    for exchange in RECEIVERS:
        folder = exchange_dir(runtime, exchange)
        assert (folder / NAME).read_bytes() == b""
        assert (folder / f"{NAME}.sha256").read_text() == f"{empty_sha}  {NAME}\n"


def test_a_failed_exchange_is_redelivered_alone_on_the_next_run(runtime: CliRuntime) -> None:
    seed_cycle(runtime.ledger)
    blocker = exchange_dir(runtime, "XISE") / NAME
    blocker.mkdir(parents=True)  # a folder where the file should go: the rename fails
    first = publish_cycle(runtime, CYCLE)
    assert not first.complete
    assert [f.exchange for f in first.failures] == ["XISE"] and not first.unreachable
    assert [d.exchange for d in first.delivered] == ["XCBO"]
    assert missing_exchanges(runtime.ledger, runtime.config, CYCLE) == ["XISE"]
    assert not (exchange_dir(runtime, "XISE") / f"{NAME}.sha256").exists()
    assert [n for n in blocker.parent.iterdir() if n.name.endswith(".tmp")] == []

    blocker.rmdir()
    second = publish_cycle(runtime, CYCLE)
    assert second.complete and not second.built  # the built file is reused
    assert [d.exchange for d in second.delivered] == ["XISE"] and second.already == ("XCBO",)
    assert blocker.read_bytes() == (exchange_dir(runtime, "XCBO") / NAME).read_bytes()


def test_temporaries_left_by_a_killed_run_are_removed(runtime: CliRuntime) -> None:
    leftovers = [
        runtime.config.spool.state_dir / "publications" / f".{NAME}.0badc0de.tmp",
        exchange_dir(runtime, "XCBO") / f".{NAME}.deadbeef.tmp",
        exchange_dir(runtime, "XCBO") / f".{NAME}.sha256.deadbeef.tmp",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    publish_cycle(runtime, CYCLE)
    assert not any(p.exists() for p in leftovers)


def test_cancelled_build_leaves_nothing_visible(runtime: CliRuntime) -> None:
    add_dpl_file(
        runtime.ledger,
        submitter="00005",
        cycle=CYCLE,
        rows=[ledger_row(n, valid_fields("00005", "AU", f"S{n:05d}")) for n in range(1, 12_001)],
    )
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(PublicationCancelled):
        publish_cycle(runtime, CYCLE, cancel=cancel)
    assert runtime.ledger.publication("2026-03-09") is None
    assert list((runtime.config.spool.state_dir / "publications").iterdir()) == []
    assert not (exchange_dir(runtime, "XCBO") / NAME).exists()


def test_the_lock_keeps_two_publications_apart(runtime: CliRuntime) -> None:
    state = runtime.config.spool.state_dir
    with publication_lock(state, timeout_s=1):
        outcome: list[BaseException] = []

        def other() -> None:
            try:
                publish_cycle(runtime, CYCLE, lock_timeout_s=0.3)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], PublicationBusy)
    assert publish_cycle(runtime, CYCLE).complete  # free again


def test_files_still_in_the_intake_hold_the_publication_back(runtime: CliRuntime) -> None:
    # A file received at 23:59:59 CDT on the 9th, claimed but not processed yet.
    file_id = runtime.ledger.record_file(
        flow="dpl",
        firm="00005",
        account="00005",
        name="late.fixml",
        sha256="",
        size=10,
        received_at=dt.datetime(2026, 3, 10, 4, 59, 59, tzinfo=dt.UTC),
        cycle=None,
        work_path="work/late.fixml",
        source="test",
    )
    # One received after the cutoff belongs to the next cycle and does not count.
    runtime.ledger.record_file(
        flow="dpl",
        firm="00005",
        account="00005",
        name="next.fixml",
        sha256="",
        size=10,
        received_at=dt.datetime(2026, 3, 10, 5, 0, 1, tzinfo=dt.UTC),
        cycle=None,
        work_path="work/next.fixml",
        source="test",
    )
    with pytest.raises(IntakePending, match="1 DPL file"):
        publish_cycle(runtime, CYCLE)
    assert runtime.ledger.publication("2026-03-09") is None
    runtime.ledger.replace_dpl_records(
        file_id,
        [ledger_row(1, valid_fields("00005", "AU", "LATE"))],
        cycle="2026-03-09",
        submitter="00005",
        totals=(1, 1, 0),
    )
    result = publish_cycle(runtime, CYCLE)
    assert result.complete and result.records == 1


def test_a_preliminary_publication_unchanged_after_the_cutoff_becomes_final_as_delivered(
    runtime: CliRuntime,
) -> None:
    seed_cycle(runtime.ledger)
    runtime.clock.now = dt.datetime(2026, 3, 9, 20, tzinfo=dt.UTC)  # 15:00 CDT, cycle open
    early = publish_cycle(runtime, CYCLE, force=True)
    assert early.preliminary and early.built
    assert runtime.ledger.publication(CYCLE.isoformat())["preliminary"] == 1
    assert cycle_complete(runtime.ledger, runtime.config, CYCLE, runtime.clock.now)
    runtime.clock.now = AFTER_CUTOFF
    assert not cycle_complete(runtime.ledger, runtime.config, CYCLE, AFTER_CUTOFF)
    final = publish_cycle(runtime, CYCLE)
    assert not final.preliminary and final.skipped and final.sha256 == early.sha256
    assert runtime.ledger.publication(CYCLE.isoformat())["preliminary"] == 0
    assert cycle_complete(runtime.ledger, runtime.config, CYCLE, AFTER_CUTOFF)
    assert (exchange_dir(runtime, "XCBO") / NAME).read_bytes() == early.path.read_bytes()
    # The run only publishes; the firms' reports are the caller's next job.
    report = runtime.config.spool.root / "firms/00005/outbound/dpl/reports/DPL_20260309.report.csv"
    assert final.reports_due and not report.exists()
    assert not reports_written(runtime.ledger, CYCLE)
    assert report in write_firm_reports(runtime, CYCLE)
    assert report.read_text().count("\n") == 1 + 6  # header + the six records of second.fixml
    assert reports_written(runtime.ledger, CYCLE)


def test_a_file_processed_after_the_publication_makes_the_cycle_publish_again(
    runtime: CliRuntime,
) -> None:
    seed_cycle(runtime.ledger)
    first = publish_cycle(runtime, CYCLE)
    assert not first.preliminary and first.replaces is None
    # received before the cutoff, processed only now (a retry after a disk error, say)
    add_dpl_file(
        runtime.ledger,
        submitter="00352",
        cycle=CYCLE,
        rows=[ledger_row(1, valid_fields("00352", "AU9", "LATE"))],
        received_at=dt.datetime(2026, 3, 10, 4, 59, tzinfo=dt.UTC),  # 23:59 CDT
    )
    assert not cycle_complete(runtime.ledger, runtime.config, CYCLE, AFTER_CUTOFF)
    runtime.clock.now = AFTER_CUTOFF + dt.timedelta(hours=1)
    again = publish_cycle(runtime, CYCLE)
    assert again.built and again.replaces == first.sha256 and again.sha256 != first.sha256
    assert {d.exchange for d in again.delivered} == set(RECEIVERS)
    data = (exchange_dir(runtime, "XISE") / NAME).read_bytes()
    assert b'Sym="LATE"' in data and len(parse_lines(data)) == first.records + 1
    sidecar = (exchange_dir(runtime, "XISE") / f"{NAME}.sha256").read_text()
    assert sidecar == f"{hashlib.sha256(data).hexdigest()}  {NAME}\n"
    assert cycle_complete(runtime.ledger, runtime.config, CYCLE, runtime.clock.now)
    assert publish_cycle(runtime, CYCLE).skipped
