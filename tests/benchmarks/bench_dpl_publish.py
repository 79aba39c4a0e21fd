"""Benchmark: publication of a large DPL cycle (target: 2,000,000 records < 10 s, RSS < 300 MB).

Usage: ``python -m tests.benchmarks.bench_dpl_publish [--records N] [--small M]``
(``scripts/bench dpl-publish``). It fills a throw-away ledger with N valid records spread over
many firms, aggregation units and symbols in random order (so the publication really sorts), then
publishes the cycle in a fresh child process and reports the time and that process's peak RSS;
the same is done for M records (default N/4) to show that memory does not grow with the cycle.
Results print as markdown.

The module also provides the ledger-filling helpers the publication tests use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.dpl.records import DplFields, firm_sort_text
from gateway.ledger import Ledger, dpl_sort_key, pack_fields

CYCLE = dt.date(2026, 3, 9)  # a Monday
SUB_TYPES = ("ETO", "OTC", "CMB")


def valid_fields(
    firm: str,
    agg_unit: str,
    symbol: str,
    sub_typ: str = "ETO",
    *,
    biz_dt: dt.date = CYCLE,
    role: str = "4",
    long: str | None = "100",
    short: str | None = None,
    name: str | None = None,
) -> DplFields:
    return DplFields(
        rpt_id=None,
        biz_dt=biz_dt.isoformat(),
        dlv_dt=None,
        req_typ="6",
        model_typ="1",
        firm_id=firm,
        firm_role=role,
        agg_unit=agg_unit,
        crd="123456",
        firm_name=f"Firm {firm} & Co <Ltd>" if name is None else name,
        symbol=symbol,
        sub_typ=sub_typ,
        long=long,
        short=short,
    )


def ledger_row(
    line: int,
    fields: DplFields | None,
    status: str = "valid",
    reasons: Sequence[str] = (),
    problems: Sequence[dict[str, Any]] = (),
    raw: bytes | None = None,
) -> tuple[Any, ...]:
    """One row for ``Ledger.replace_dpl_records`` (the order the DPL pipeline stores)."""
    firm = fields.firm_id if fields is not None else None
    return (
        line,
        raw if raw is not None else f"<raw line {line}>".encode(),
        status,
        " ".join(reasons),
        json.dumps(list(problems)) if problems else None,
        pack_fields(fields) if fields is not None else None,
        dpl_sort_key(
            firm_sort_text(firm) if firm else "",
            fields.agg_unit or "",
            fields.symbol or "",
            fields.sub_typ or "",
        )
        if fields is not None
        else None,
    )


def add_dpl_file(
    ledger: Ledger,
    *,
    submitter: str,
    cycle: dt.date,
    rows: Iterable[tuple[Any, ...]],
    name: str = "positions.fixml",
    received_at: dt.datetime | None = None,
    totals: tuple[int, int, int] = (0, 0, 0),
) -> int:
    """Record a processed DPL file of ``submitter`` for ``cycle`` with the given ledger rows."""
    received = received_at or dt.datetime.combine(cycle, dt.time(18), tzinfo=dt.UTC)
    file_id = ledger.record_file(
        flow="dpl",
        firm=submitter,
        account=submitter,
        name=name,
        sha256=hashlib.sha256(f"{submitter}{name}{received}".encode()).hexdigest(),
        size=0,
        received_at=received,
        cycle=cycle.isoformat(),
        work_path=f"work/{name}",
        source="test",
    )
    ledger.replace_dpl_records(
        file_id, rows, cycle=cycle.isoformat(), submitter=submitter, totals=totals
    )
    return file_id


def random_valid_rows(count: int, *, seed: int = 7, firms: int = 40) -> Iterator[tuple[Any, ...]]:
    """``count`` valid rows over ``firms`` firms (numeric and not), 20 aggregation units,
    2,000 symbols and the three SubTyps, in random order. Firm names are plain words, as in
    real files, except for about one firm in eight whose name needs escaping (``&``, ``<``)."""
    rng = random.Random(seed)
    firm_ids = [f"{rng.randint(1, 99999):05d}" for _ in range(firms - 3)] + ["IAN", "ZED", "7"]
    names = {
        firm: f"Firm {firm} & Co <Ltd>" if i % 8 == 0 else f"Firm {firm} Securities LLC"
        for i, firm in enumerate(firm_ids)
    }
    for line in range(1, count + 1):
        firm = rng.choice(firm_ids)
        fields = valid_fields(
            firm,
            f"AU{rng.randint(1, 20):03d}",
            f"S{rng.randint(1, 2000):04d}",
            rng.choice(SUB_TYPES),
            long=str(rng.randint(0, 10**6)),
            name=names[firm],
        )
        yield ledger_row(line, fields)


def fill_ledger(ledger: Ledger, cycle: dt.date, count: int, *, seed: int = 7) -> None:
    """One file of ``count`` valid records (one executemany in one transaction)."""
    add_dpl_file(
        ledger,
        submitter="BENCH",
        cycle=cycle,
        rows=random_valid_rows(count, seed=seed),
        name="bench.fixml",
        totals=(count, count, 0),
    )


# ---------------------------------------------------------------------------------------------
# the benchmark


def _child(config_path: str) -> None:
    """Publish CYCLE with the config at ``config_path``; print time and peak RSS as JSON."""
    from gateway.commands.dpl_publish import CliRuntime
    from gateway.config import load_config
    from gateway.publication.firm_reports import write_firm_reports
    from gateway.publication.publish import publish_cycle

    config = load_config(config_path)
    ledger = Ledger(config.spool.ledger_path)
    clock = lambda: dt.datetime(2026, 3, 10, 6, 5, tzinfo=dt.UTC)  # noqa: E731
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    runtime = CliRuntime(config, ledger, clock)
    result = publish_cycle(runtime, CYCLE, force=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # The firms' reports: their own job, after the exchanges are served.
    started = time.perf_counter()
    reports = write_firm_reports(runtime, CYCLE) if result.reports_due else []
    reports_seconds = time.perf_counter() - started
    done = resource.getrusage(resource.RUSAGE_SELF)
    reports_cpu = (done.ru_utime - after.ru_utime) + (done.ru_stime - after.ru_stime)
    reference_cpu, current_cpu, identical = _serialisations(ledger, result.path)
    print(
        json.dumps(
            {
                "reference_cpu": reference_cpu,
                "current_cpu": current_cpu,
                "identical": identical,
                "records": result.records,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "reports_seconds": reports_seconds,
                "reports_cpu": reports_cpu,
                "reports": len(reports),
                "load": os.getloadavg()[0],
                "rss_mb": after.ru_maxrss / 1024,
                "bytes": result.path.stat().st_size,
                "exchanges": len(result.delivered),
                "complete": result.complete,
            }
        )
    )


_EVERY_VALUE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def reference_line(fields: DplFields, rpt_id: str, dlv_dt: str) -> bytes:
    """The canonical line as first written: every value escaped with ``str.translate``."""

    def e(value: str) -> str:
        return value.translate(_EVERY_VALUE)

    f = fields
    quantity = (f' Long="{e(f.long)}"' if f.long is not None else "") + (
        f' Short="{e(f.short)}"' if f.short is not None else ""
    )
    return (
        f'<FIXML><PosRpt RptID="{e(rpt_id)}" BizDt="{e(f.biz_dt or "")}"'
        f' DlvDt="{e(dlv_dt)}" ReqTyp="6" ModelTyp="{e(f.model_typ or "")}">'
        f'<Pty ID="{e(f.firm_id or "")}" R="{f.firm_role}"/>'
        f'<Pty ID="{e(f.agg_unit or "")}" R="38"/>'
        f'<Pty ID="{e(f.crd or "")}" R="82"><Sub ID="{e(f.firm_name or "")}" Typ="5"/></Pty>'
        f'<Instrmt Sym="{e(f.symbol or "")}" SubTyp="{e(f.sub_typ or "")}"/>'
        f'<Qty Typ="DLT"{quantity}/></PosRpt></FIXML>'
    ).encode()


def _serialisations(ledger: Ledger, published: Path) -> tuple[float, float, bool]:
    """CPU seconds of serialising every stored record the reference way (one record at a time,
    every value escaped) and the current way (the build's: a batch of stored records as one
    text through ``canonical_lines_of_joined``), in one run (streamed in batches, reading
    included in neither), and whether both give the published bytes line for line."""
    from engine.dpl.canonical import canonical_lines_of_joined
    from gateway.ledger import ABSENT, FIELD_SEP

    key, prefix, dlv = CYCLE.isoformat(), f"{CYCLE:%Y%m%d}", "2026-03-10"
    values = ledger.iter_publishable_dpl_values(key, DplFields._fields)
    packed = ledger.iter_publishable_dpl_packed(key, batch=5_000)
    sep, absent = FIELD_SEP.encode(), ABSENT.encode()
    reference_cpu = current_cpu = 0.0
    identical = True
    count = 0
    with open(published, "rb") as fh:
        for records, text in packed:
            rows = list(itertools.islice(values, records))
            ids = [f"{prefix}{n:09d}" for n in range(count + 1, count + records + 1)]
            fields = [DplFields._make(r) for r in rows]
            started = time.process_time()
            reference = b"".join(
                [reference_line(f, i, dlv) + b"\n" for f, i in zip(fields, ids, strict=True)]
            )
            reference_cpu += time.process_time() - started
            started = time.process_time()
            current = canonical_lines_of_joined(
                text,
                records=records,
                sep=sep,
                absent=absent,
                rpt_id_prefix=prefix,
                first_sequence=count + 1,
                dlv_dt=dlv,
            )
            current_cpu += time.process_time() - started
            count += records
            identical = identical and reference == current == fh.read(len(current))
        identical = identical and fh.read(1) == b"" and next(values, None) is None
    return reference_cpu, current_cpu, identical


def _measure(count: int, workdir: Path) -> dict[str, Any]:
    from gateway.config import load_config
    from tests.support.daemon import make_test_config

    cfg = make_test_config(workdir)
    config = load_config(cfg.path)
    ledger = Ledger(config.spool.ledger_path)
    started = time.perf_counter()
    fill_ledger(ledger, CYCLE, count)
    fill_seconds = time.perf_counter() - started
    ledger.close()
    # The fill's writes reach the disk before the publication is timed: a publication runs
    # hours after the intake, not while its gigabyte of ledger pages is still being written.
    os.sync()
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_dpl_publish", "--child", str(cfg.path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["fill_seconds"] = fill_seconds
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench dpl-publish", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument(
        "--small",
        type=int,
        default=None,
        help="second, smaller size for the memory comparison (default N/4)",
    )
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    sizes = [args.small if args.small is not None else max(1, args.records // 4), args.records]
    rows = []
    for count in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-dpl-publish-") as tmp:
            rows.append(_measure(count, Path(tmp)))
    command = "python -m tests.benchmarks.bench_dpl_publish " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(f"command: `{command.strip()}`  (cpus: {os.cpu_count()})\n")
    print(
        "| records | file MB | fill s | publish wall s | publish CPU s | records/s (CPU) "
        "| firm reports wall s | firm reports CPU s | peak RSS MB | load avg |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['records']:,} | {r['bytes'] / 1e6:,.0f} | {r['fill_seconds']:.1f} "
            f"| {r['seconds']:.1f} | {r['cpu_seconds']:.1f} "
            f"| {r['records'] / r['cpu_seconds']:,.0f} | {r['reports_seconds']:.1f} "
            f"| {r['reports_cpu']:.1f} | {r['rss_mb']:.0f} | {r['load']:.1f} |"
        )
    big = rows[-1]
    ratio = rows[-1]["rss_mb"] / rows[0]["rss_mb"]
    print(f"\nPeak RSS {sizes[-1]:,} vs {sizes[0]:,} records: ×{ratio:.2f} (flat ≈ 1).")
    print(
        "\nSerialisation alone, same stored records, one run (CPU s): one record at a time, "
        "every value escaped (the first version) vs a batch of stored records as one text "
        "(now, the build's path); byte-identical:"
    )
    for r in rows:
        print(
            f"  {r['records']:,} records: {r['reference_cpu']:.2f} s vs {r['current_cpu']:.2f} s"
            f" (×{r['reference_cpu'] / max(r['current_cpu'], 1e-9):.2f} less CPU),"
            f" identical to the published file: {r['identical']}"
        )
    if big["records"] >= 2_000_000:
        ok = big["seconds"] < 10 and big["rss_mb"] < 300
        print(
            f"Target (2,000,000 records < 10 s wall, < 300 MB; {big['seconds']:.1f} s wall, "
            f"{big['cpu_seconds']:.1f} s CPU, {big['rss_mb']:.0f} MB at load {big['load']:.1f}; "
            "the firm reports are written after the exchanges are served and are not part of it): "
            f"{'met' if ok else 'NOT met'}."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
