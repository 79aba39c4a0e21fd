"""Portfolio margin end to end, run as ``scripts/bench pmc-e2e`` (``--smoke`` for tiny sizes).

* engine: ``resolve_positions`` + ``compute_margin`` against ``pandas_margin``, the same rule
  written with pandas merges and groupbys (the peer); both give every account's requirement,
  checked equal. 100,000 and 1,000,000 positions over 5,000 class groups; CPU seconds, best of 3
  after one run of each that is not counted.
* e2e: a 346 CSV file of that many positions (written first) through the spool pipeline
  (``gateway.pipelines.pmc.process_position_file``: read, compute, ``results.csv``,
  ``summary.csv``, ``errors.csv``, the Detail and Summary PDFs, each written atomically), plus
  writing the JSON document of ``posgate margin --format json`` of the same report (the machine
  interface of the CLI and the HTTP API). The engine comparison and the end-to-end run each
  have their own process, so the peak RSS is the end-to-end run's own; that process has the set
  loaded and has processed one small file first, as a running daemon has.

pandas is not a runtime dependency: ``scripts/bench`` installs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.benchmarks.bench_margin import best_of, synthetic_positions, synthetic_set

TARGET_RATIO = 5.0
TARGET_E2E_S = {100_000: 2.0, 1_000_000: 15.0}
TARGET_RSS_MB = 1024.0


def pandas_margin(batch, theo):  # type: ignore[no-untyped-def]
    """Requirement per (firm, account, account type) with pandas: merge positions to the set,
    net by class group, offset in product and portfolio groups, max(risk, minimum) per unit.

    Covers what the synthetic files hold: options in the set, stocks not in the set (their
    market value and the equity product group's moves), no baskets.
    """
    import pandas as pd

    from engine.pmc.theo.model import STEPS

    points = [f"p{k}" for k in range(10)]
    pos = pd.DataFrame(
        {
            "firm": batch.firm,
            "account": batch.account,
            "account_type": batch.account_type,
            "symbol": batch.symbol,
            "security_type": batch.security_type,
            "put_call": batch.put_call,
            "series_date": batch.series_date,
            "strike": np.round(batch.strike, 6),
            "quantity": batch.quantity,
            "market_value": batch.market_value,
        }
    )
    inst = pd.DataFrame(
        {
            "account_type": theo.account_type,
            "symbol": theo.symbol,
            "security_type": theo.security_type,
            "put_call": theo.put_call,
            "series_date": theo.series_date,
            "strike": np.round(theo.strike, 6),
            "row": np.arange(theo.size),
        }
    )
    keys = ["account_type", "symbol", "security_type", "put_call", "series_date", "strike"]
    m = pos.merge(inst, on=keys, how="left")
    in_set = m["row"].notna().to_numpy()
    row = m["row"].fillna(0).to_numpy(dtype=np.int64)
    q = m["quantity"].to_numpy()
    cg_of_row = theo.cg_ids[theo.cg_code]
    pg_of_cg = pd.Series(theo.cg_product_groups, index=theo.cg_ids)
    pgs = pd.DataFrame(
        {
            "account_type": theo.pg_account_types,
            "pg": theo.pg_ids,
            "offset": theo.pg_offsets,
            "down": theo.pg_move_down,
            "up": theo.pg_move_up,
            "port": np.where(theo.pg_port >= 0, theo.port_ids[np.maximum(theo.pg_port, 0)], ""),
        }
    )
    eq = pgs[(pgs["pg"] == theo.equity_product_group) & (pgs["account_type"] == "C")].iloc[0]
    moves = np.where(STEPS < 0, STEPS * eq["down"], STEPS * eq["up"])
    stock = (~in_set) & (m["security_type"].to_numpy() == "S") & (m["market_value"] > 0).to_numpy()
    keep = in_set | stock
    unit = np.where(
        in_set[:, None], theo.pnl[row], m["market_value"].to_numpy()[:, None] * moves[None, :]
    )
    value = np.where(in_set, theo.theo_price[row] * theo.multiplier[row], m["market_value"])
    minimum = np.where(in_set, theo.min_charge[row] * np.abs(q), 0.0)
    long_option = (q > 0) & in_set & (m["account_type"].to_numpy() == "C")
    minimum = np.where(long_option, np.minimum(minimum, np.maximum(q * value, 0.0)), minimum)
    cg = np.where(in_set, cg_of_row[row], "~" + m["symbol"].to_numpy().astype(object))
    frame = pd.DataFrame(q[:, None] * unit, columns=points)
    frame["minimum"] = minimum
    frame["firm"] = m["firm"].to_numpy()
    frame["account"] = m["account"].to_numpy()
    frame["account_type"] = m["account_type"].to_numpy()
    frame["cg"] = cg
    frame = frame[keep]
    acct = ["firm", "account", "account_type"]
    cgs = frame.groupby([*acct, "cg"], sort=False).sum().reset_index()
    cgs["pg"] = pg_of_cg.reindex(cgs["cg"]).fillna(theo.equity_product_group).to_numpy()
    cgs = cgs.merge(pgs[["account_type", "pg", "offset", "port"]], on=["account_type", "pg"])

    def unit_requirement(df):  # type: ignore[no-untyped-def]
        risk = np.maximum(0.0, -df[points].min(axis=1))
        return np.maximum(risk, df["minimum"])

    def offset_group(df, by, offset_of):  # type: ignore[no-untyped-def]
        gains = df[points].clip(lower=0).groupby([df[c] for c in by], sort=False).sum()
        losses = df[points].clip(upper=0).groupby([df[c] for c in by], sort=False).sum()
        mins = df.groupby(by, sort=False)["minimum"].sum()
        off = offset_of(gains.index)
        total = losses + gains.mul(off, axis=0)
        total["minimum"] = mins
        return total.reset_index()

    alone = cgs[cgs["offset"].isna()]
    grouped = cgs[cgs["offset"].notna()]
    pg_off = pgs.set_index(["account_type", "pg"])["offset"]
    pg_port = pgs.set_index(["account_type", "pg"])["port"]
    pg_tot = offset_group(
        grouped,
        [*acct, "pg"],
        lambda idx: pg_off.reindex(
            list(zip(idx.get_level_values(2), idx.get_level_values(3), strict=True))
        ).to_numpy(),
    )
    pg_tot["port"] = pg_port.reindex(
        list(zip(pg_tot["account_type"], pg_tot["pg"], strict=True))
    ).to_numpy()
    port_off = pd.Series(
        theo.port_offsets,
        index=pd.MultiIndex.from_arrays([theo.port_account_types, theo.port_ids]),
    )
    in_port = pg_tot[pg_tot["port"] != ""]
    port_tot = offset_group(
        in_port,
        [*acct, "port"],
        lambda idx: port_off.reindex(
            list(zip(idx.get_level_values(2), idx.get_level_values(3), strict=True))
        ).to_numpy(),
    )
    units = pd.concat(
        [
            alone.assign(req=unit_requirement(alone))[[*acct, "req"]],
            pg_tot[pg_tot["port"] == ""].pipe(lambda d: d.assign(req=unit_requirement(d)))[
                [*acct, "req"]
            ],
            port_tot.assign(req=unit_requirement(port_tot))[[*acct, "req"]],
        ]
    )
    totals = units.groupby(acct, sort=False)["req"].sum()
    return {k: float(v) for k, v in totals.items()}


def bench_engine(theo, batch, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from engine.pmc.margin import compute_margin
    from engine.pmc.resolve import resolve_positions

    # each side has one run first that is not counted: the process's heap grows to its working
    # size on the first runs (page faults in the kernel), as a running daemon's already has
    _, eng_cpu, result = best_of(
        lambda: compute_margin(resolve_positions(batch, theo)), repeat, warmup=1
    )
    _, pd_cpu, peer = best_of(lambda: pandas_margin(batch, theo), repeat, warmup=1)
    r = result
    got = {
        (str(f), str(a), str(t)): float(v)
        for f, a, t, v in zip(
            r.account_firm, r.account_id, r.account_type, r.account_requirement, strict=True
        )
    }
    assert set(got) == set(peer), "accounts differ"  # type: ignore[arg-type]
    worst = max(abs(got[k] - peer[k]) for k in got)  # type: ignore[index]
    assert worst < 1e-6 * max(1.0, max(abs(v) for v in got.values())), worst
    return {"engine_cpu": eng_cpu, "pandas_cpu": pd_cpu, "ratio": pd_cpu / eng_cpu, "diff": worst}


def run_engine(n: int, n_class_groups: int, repeat: int) -> dict[str, float]:
    """The engine against pandas on ``n`` positions (in this process)."""
    theo = synthetic_set(n_class_groups, per_group=20)
    batch = synthetic_positions(theo, n, n_accounts=max(1, n // 500))
    return {"positions": float(n), **bench_engine(theo, batch, repeat)}


def write_file(n: int, n_class_groups: int, path: Path) -> None:
    from engine.pmc.positions.write import render_position_file

    theo = synthetic_set(n_class_groups, per_group=20)
    batch = synthetic_positions(theo, n, n_accounts=max(1, n // 500))
    path.write_bytes(render_position_file(batch, fmt="csv", firm="5", date="2026-11-20"))


def run_e2e(path: Path, n_class_groups: int) -> dict[str, float]:
    """A 346 file through the spool pipeline and the JSON document, in this process: as the
    daemon runs it, with the set loaded and one small file processed before (imports, fonts)."""
    import datetime as dt

    from gateway.outputs.margin.data import report_json_chunks
    from gateway.pipelines.pmc import compute_report, process_position_file

    theo = synthetic_set(n_class_groups, per_group=20)
    at = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.UTC)
    data = path.read_bytes()
    out: dict[str, float] = {"file_mb": len(data) / 1e6}
    with tempfile.TemporaryDirectory() as tmp:
        outbound = Path(tmp) / "outbound"
        first = b"\n".join(data.split(b"\n", 200)[:200]) + b"\n"
        process_position_file(
            first,
            name="warm.csv",
            firm="00005",
            theo=theo,
            outbound_dir=outbound,
            write_pdf=True,
            generated_at=at,
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        c0, w0 = time.process_time(), time.perf_counter()
        outcome = process_position_file(
            data,
            name="positions.csv",
            firm="00005",
            theo=theo,
            outbound_dir=outbound,
            write_pdf=True,
            generated_at=at,
        )
        out["spool_cpu"] = time.process_time() - c0
        out["spool_wall"] = time.perf_counter() - w0
        report, _ = compute_report(data, theo=theo, firm="00005")
        c1, w1 = time.process_time(), time.perf_counter()
        with open(outbound / "positions.csv.json", "wb") as fh:
            for chunk in report_json_chunks(report):
                fh.write(chunk)
        out["json_cpu"] = time.process_time() - c1
        out["json_wall"] = time.perf_counter() - w1
        assert outcome.counts.accepted > 0.98 * outcome.counts.total
        sizes = [p.stat().st_size for p in outbound.iterdir() if not p.name.startswith("warm")]
    out["e2e_cpu"] = out["spool_cpu"] + out["json_cpu"]
    out["e2e_wall"] = out["spool_wall"] + out["json_wall"]
    out["outputs_mb"] = sum(sizes) / 1e6
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_before_mb"] = rss_before
    return out


def _child(*args: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_pmc_e2e", *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench pmc-e2e")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--engine", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--e2e", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="", help="comma-separated position counts")
    args = parser.parse_args(argv)
    n_cg, repeat = (200, 1) if args.smoke else (5_000, 3)
    smoke = ["--smoke"] if args.smoke else []
    if args.engine:
        print(json.dumps(run_engine(args.engine, n_cg, repeat)))
        return 0
    if args.e2e:
        print(json.dumps(run_e2e(Path(args.e2e), n_cg)))
        return 0
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [5_000] if args.smoke else [100_000, 1_000_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"positions-{n}.csv"
            write_file(n, n_cg, path)
            row = _child("--engine", str(n), *smoke)
            row.update(_child("--e2e", str(path), *smoke))
            rows.append(row)
            path.unlink()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    flags = " --smoke" if args.smoke else ""
    print("## pmc-e2e\n")
    print(f"Command: `scripts/bench pmc-e2e{flags}`. Load average at the end: {load}.\n")
    print(
        f"Synthetic type-C set, {n_cg:,} class groups (50 product groups, 10 portfolio groups); "
        "positions on random instruments, 1 % stocks not in the set, 500 positions per account. "
        "CPU seconds of the process (best of "
        f"{repeat} for the engine and its peer, each after one run not counted); wall seconds "
        "are shown too, the machine is shared.\n"
    )
    print(
        "| positions | engine CPU s | pandas CPU s | engine vs pandas | spool pipeline CPU s "
        "(wall) | JSON CPU s | end to end CPU s (wall) | peak RSS MB | outputs MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for r in rows:
        n = int(r["positions"])
        print(
            f"| {n:,} | {r['engine_cpu']:.3f} | {r['pandas_cpu']:.3f} | {r['ratio']:.1f}× | "
            f"{r['spool_cpu']:.2f} ({r['spool_wall']:.2f}) | {r['json_cpu']:.2f} | "
            f"{r['e2e_cpu']:.2f} ({r['e2e_wall']:.2f}) | {r['rss_mb']:.0f} | "
            f"{r['outputs_mb']:.0f} |"
        )
        if not args.smoke:
            target = TARGET_E2E_S.get(n, math.inf)
            verdicts.append(
                f"{n:,}: engine {r['ratio']:.1f}× pandas (target ≥ {TARGET_RATIO:g}×: "
                f"{'met' if r['ratio'] >= TARGET_RATIO else 'NOT met'}); end to end "
                f"{r['e2e_cpu']:.2f} s CPU (target < {target:g} s: "
                f"{'met' if r['e2e_cpu'] < target else 'NOT met'})"
                + (
                    f"; peak RSS {r['rss_mb']:.0f} MB (target < {TARGET_RSS_MB:g}: "
                    f"{'met' if r['rss_mb'] < TARGET_RSS_MB else 'NOT met'})"
                    if n >= 1_000_000
                    else ""
                )
            )
    print(
        "\nThe engine's and pandas' requirement of every account agree (largest difference "
        f"{max(r['diff'] for r in rows):.1e} USD)."
    )
    for v in verdicts:
        print(f"* {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
