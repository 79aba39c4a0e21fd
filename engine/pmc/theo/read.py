"""Reading a theo set: the bytes of its five CSV files -> a ``TheoSet`` or ``TheoSetInvalid``.

Columns are found by header name, order is free and extra columns are ignored
(``engine.pmc.theo.columns`` reads the cells). ``parse_theo_set`` takes the files' bytes (nothing
here opens a file), checks each file's rows and how the files refer to each other, and returns a
``TheoSet`` or raises ``TheoSetInvalid`` naming every problem with file, line, column and value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from engine.errors import Location, UnreadableInput
from engine.pmc.theo.columns import (
    Problems,
    parse_choices,
    parse_dates,
    parse_floats,
    parse_iso_date,
    parse_required,
    read_table,
)
from engine.pmc.theo.model import (
    ACCOUNT_TYPES,
    CLASS_COLUMNS,
    FILES,
    META_COLUMNS,
    OPTION_TYPES,
    PNL_COLUMNS,
    PNL_FILE_COLUMNS,
    PNL_OPTIONAL_COLUMNS,
    POINTS,
    PORTFOLIO_COLUMNS,
    PRODUCT_COLUMNS,
    SECURITY_TYPES,
    STRIKE_SCALE,
    FullKey,
    InstrumentKey,
    StrArray,
    TheoSet,
    full_key,
    instrument_keys,
)

_OPTIONAL_COLUMNS = {
    "class_groups.csv": {"basket_id"},
    "pnl.csv": {"implied_vol", *PNL_OPTIONAL_COLUMNS},
}
REASON = "THEO_INVALID"


class TheoSetInvalid(UnreadableInput):
    """A theo set that cannot be used; ``problems`` lists every located problem found."""

    def __init__(self, problems: Sequence[str], location: Location | None = None) -> None:
        self.problems = list(problems)
        more = len(self.problems) - 1
        message = self.problems[0] if self.problems else "invalid theo set"
        if more > 0:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(REASON, message, location)


def parse_theo_set(files: Mapping[str, bytes], *, name: str = "") -> TheoSet:
    """Build a ``TheoSet`` from the bytes of its five CSV files (keys: file names).

    Raises ``TheoSetInvalid`` (an ``UnreadableInput``) listing every problem with its location.
    """
    problems = Problems(TheoSetInvalid)
    for file in FILES:
        if file not in files:
            problems.add(file, None, None, "file is missing")
    problems.raise_if_any()
    meta = read_table("meta.csv", files["meta.csv"], META_COLUMNS, problems)
    ports = read_table(
        "portfolio_groups.csv", files["portfolio_groups.csv"], PORTFOLIO_COLUMNS, problems
    )
    prods = read_table("product_groups.csv", files["product_groups.csv"], PRODUCT_COLUMNS, problems)
    classes = read_table(
        "class_groups.csv",
        files["class_groups.csv"],
        CLASS_COLUMNS,
        problems,
        optional=_OPTIONAL_COLUMNS["class_groups.csv"],
    )
    pnl = read_table(
        "pnl.csv",
        files["pnl.csv"],
        (*PNL_FILE_COLUMNS, *PNL_OPTIONAL_COLUMNS),
        problems,
        optional=_OPTIONAL_COLUMNS["pnl.csv"],
    )
    problems.raise_if_any()
    assert meta is not None and ports is not None and prods is not None
    assert classes is not None and pnl is not None

    # meta
    if len(meta) != 1:
        problems.add("meta.csv", None, None, f"{len(meta)} data rows, exactly 1 expected")
        problems.raise_if_any()
    activity_date = meta.columns["activity_date"][0]
    if parse_iso_date(activity_date) is None:
        problems.add(
            "meta.csv",
            meta.lines[0],
            "activity_date",
            f"activity_date={activity_date!r} is not a YYYY-MM-DD date",
        )
    source = meta.columns["source"][0]
    equity_pg = meta.columns["equity_product_group"][0] or "999"

    # portfolio groups
    port_ids = parse_required(ports, "portfolio_group_id", problems)
    port_types = parse_choices(ports, "account_type", ACCOUNT_TYPES, problems)
    port_offsets = parse_floats(ports, "offset_pct", problems, low=0.0, high=1.0)
    port_index: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(port_types, port_ids, strict=True)):
        if key in port_index:
            problems.add(
                ports.file,
                ports.lines[i],
                "portfolio_group_id",
                f"portfolio group {key[1]!r} for account type {key[0]!r} is defined twice",
            )
        port_index.setdefault(key, i)

    # product groups
    pg_ids = parse_required(prods, "product_group_id", problems)
    pg_ports_raw = prods.columns["portfolio_group_id"]
    pg_types = parse_choices(prods, "account_type", ACCOUNT_TYPES, problems)
    pg_offsets = parse_floats(prods, "offset_pct", problems, allow_empty=True, low=0.0, high=1.0)
    pg_down = parse_floats(prods, "move_down_pct", problems, low=0.0, high=1.0)
    pg_up = parse_floats(prods, "move_up_pct", problems, low=0.0)
    pg_index: dict[tuple[str, str], int] = {}
    pg_port = np.full(len(prods), -1, dtype=np.int64)
    for i, (pg_acct, pg, port) in enumerate(zip(pg_types, pg_ids, pg_ports_raw, strict=True)):
        if (pg_acct, pg) in pg_index:
            problems.add(
                prods.file,
                prods.lines[i],
                "product_group_id",
                f"product group {pg!r} for account type {pg_acct!r} is defined twice",
            )
        pg_index.setdefault((pg_acct, pg), i)
        if port:
            code = port_index.get((pg_acct, port))
            if code is None:
                problems.add(
                    prods.file,
                    prods.lines[i],
                    "portfolio_group_id",
                    f"portfolio_group_id={port!r} is not in portfolio_groups.csv "
                    f"for account type {pg_acct!r}",
                )
            elif math.isnan(pg_offsets[i]):
                problems.add(
                    prods.file,
                    prods.lines[i],
                    "portfolio_group_id",
                    f"product group {pg!r} has an empty offset_pct (its class groups stand "
                    f"alone) so it cannot belong to portfolio group {port!r}",
                )
            else:
                pg_port[i] = code
    known_pgs = {pg for _, pg in pg_index}

    # class groups
    cg_ids = parse_required(classes, "class_group_id", problems)
    cg_pgs = parse_required(classes, "product_group_id", problems)
    cg_baskets = classes.columns["basket_id"]
    cg_index: dict[str, int] = {}
    basket_index: dict[str, int] = {}
    for i, (cg, pg, basket) in enumerate(zip(cg_ids, cg_pgs, cg_baskets, strict=True)):
        if cg in cg_index:
            problems.add(
                classes.file, classes.lines[i], "class_group_id", f"class group {cg!r} twice"
            )
        cg_index.setdefault(cg, i)
        if pg and pg not in known_pgs:
            problems.add(
                classes.file,
                classes.lines[i],
                "product_group_id",
                f"product_group_id={pg!r} is not in product_groups.csv",
            )
        if basket:
            if basket in basket_index:
                problems.add(
                    classes.file, classes.lines[i], "basket_id", f"basket {basket!r} twice"
                )
            basket_index.setdefault(basket, i)

    # instruments
    n = len(pnl)
    acct = parse_choices(pnl, "account_type", ACCOUNT_TYPES, problems)
    prod = parse_required(pnl, "product_group_id", problems)
    classes_of_rows = parse_required(pnl, "class_group_id", problems)
    sym = [s.upper() for s in parse_required(pnl, "symbol", problems)]
    sectype = parse_choices(pnl, "security_type", SECURITY_TYPES, problems)
    exstyle = parse_choices(pnl, "exercise_style", ("A", "E", ""), problems)
    setstyle = [s.upper() for s in pnl.columns["settlement_style"]]
    series = parse_dates(pnl, "series_date", problems)
    expiry = parse_dates(pnl, "expiration_date", problems)
    pc = parse_choices(pnl, "put_call", ("C", "P", ""), problems)
    # blank (or zero) for stocks and futures; options are checked below
    strike = parse_floats(pnl, "strike", problems, allow_empty=True, low=0.0)
    multiplier = parse_floats(pnl, "multiplier", problems, low=0.0)
    theo_price = parse_floats(pnl, "theo_price", problems)
    implied_vol = parse_floats(pnl, "implied_vol", problems, allow_empty=True, low=0.0)
    min_charge = parse_floats(pnl, "min_charge", problems, low=0.0)
    pnl_vec = np.empty((n, POINTS), dtype=np.float64)
    for j, col in enumerate(PNL_COLUMNS):
        pnl_vec[:, j] = parse_floats(pnl, col, problems)
    underlying = [u.upper() for u in pnl.columns["underlying"]]
    exchange = [x.upper() for x in pnl.columns["exchange"]]

    cg_code = np.full(n, -1, dtype=np.int64)
    pg_code = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        line = pnl.lines[i]
        t = sectype[i]
        if t in OPTION_TYPES:
            if pc[i] not in ("C", "P"):
                problems.add(pnl.file, line, "put_call", f"put_call is required for {t!r}")
            elif t == "W" and pc[i] != "C":
                problems.add(pnl.file, line, "put_call", "a warrant is always a call ('C')")
            if not pnl.columns["strike"][i] or (math.isfinite(strike[i]) and strike[i] <= 0.0):
                problems.add(
                    pnl.file, line, "strike", f"strike must be a positive number for {t!r}"
                )
        elif pc[i]:
            problems.add(pnl.file, line, "put_call", f"put_call must be empty for {t!r}")
        if t in ("O", "I", "F", "W") and not series[i]:
            problems.add(pnl.file, line, "series_date", f"series_date is required for {t!r}")
        if t == "S" and (series[i] or (math.isfinite(strike[i]) and strike[i] != 0.0)):
            problems.add(pnl.file, line, "series_date", "a stock has no series_date or strike")
        c = cg_index.get(classes_of_rows[i])
        if c is None:
            if classes_of_rows[i]:
                problems.add(
                    pnl.file,
                    line,
                    "class_group_id",
                    f"class_group_id={classes_of_rows[i]!r} is not in class_groups.csv",
                )
        else:
            cg_code[i] = c
            if cg_pgs[c] != prod[i]:
                problems.add(
                    pnl.file,
                    line,
                    "product_group_id",
                    f"product_group_id={prod[i]!r} but class group {classes_of_rows[i]!r} "
                    "belongs to "
                    f"product group {cg_pgs[c]!r}",
                )
        p = pg_index.get((acct[i], prod[i]))
        if p is None:
            if prod[i] and acct[i] in ACCOUNT_TYPES:
                problems.add(
                    pnl.file,
                    line,
                    "product_group_id",
                    f"product group {prod[i]!r} has no row for account type {acct[i]!r} "
                    "in product_groups.csv",
                )
        else:
            pg_code[i] = p
    problems.raise_if_any()

    strike = np.where(np.isfinite(strike), strike, 0.0)
    keys = instrument_keys(acct, sym, sectype, pc, series, strike)
    seen: dict[InstrumentKey, int] = {}
    for r, ikey in enumerate(keys):
        seen[ikey] = -1 if ikey in seen else r
    full: dict[FullKey, int] = {}
    for r, ikey in enumerate(keys):
        if seen[ikey] != -1:
            continue
        fk = full_key(ikey, exstyle[r], setstyle[r])
        if fk in full:
            problems.add(
                pnl.file,
                pnl.lines[r],
                "symbol",
                f"instrument {'|'.join(map(str, ikey))!r} appears twice with the same styles",
            )
        full[fk] = r
    problems.raise_if_any()

    cg_pg_code = np.full((len(ACCOUNT_TYPES), len(cg_ids)), -1, dtype=np.int64)
    for type_row, type_name in enumerate(ACCOUNT_TYPES):
        for cg_col, cg_pg_id in enumerate(cg_pgs):
            cg_pg_code[type_row, cg_col] = pg_index.get((type_name, cg_pg_id), -1)
    equity_pg_code = np.array(
        [pg_index.get((a, equity_pg), -1) for a in ACCOUNT_TYPES], dtype=np.int64
    )

    spot: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(np.asarray(sectype, dtype=np.str_) == "F").tolist():
        k = (acct[i], sym[i])
        if k not in spot or series[i] < series[spot[k]]:
            spot[k] = i

    def sarr(values: Sequence[str]) -> StrArray:
        return np.asarray(values, dtype=np.str_) if values else np.zeros(0, dtype="<U1")

    sym_arr = sarr(sym)
    series_arr = sarr(series)
    strike_clean = np.where(np.isfinite(strike), strike, 0.0)
    vocab_symbol = np.unique(sym_arr)
    vocab_series = np.unique(series_arr)
    vocab_strike = np.unique(np.rint(strike_clean * STRIKE_SCALE).astype(np.int64))
    theo = TheoSet(
        name=name or activity_date,
        activity_date=activity_date,
        source=source,
        equity_product_group=equity_pg,
        port_ids=sarr(port_ids),
        port_account_types=sarr(port_types),
        port_offsets=port_offsets,
        pg_ids=sarr(pg_ids),
        pg_account_types=sarr(pg_types),
        pg_port=pg_port,
        pg_offsets=pg_offsets,
        pg_move_down=pg_down,
        pg_move_up=pg_up,
        cg_ids=sarr(cg_ids),
        cg_product_groups=sarr(cg_pgs),
        cg_baskets=sarr(cg_baskets),
        account_type=sarr(acct),
        product_group=sarr(prod),
        class_group=sarr(classes_of_rows),
        underlying=sarr(underlying),
        symbol=sym_arr,
        security_type=sarr(sectype),
        exercise_style=sarr(exstyle),
        settlement_style=sarr(setstyle),
        series_date=series_arr,
        expiration_date=sarr(expiry),
        put_call=sarr(pc),
        strike=strike_clean,
        multiplier=multiplier,
        theo_price=theo_price,
        implied_vol=implied_vol,
        min_charge=min_charge,
        pnl=pnl_vec,
        cg_code=cg_code,
        pg_code=pg_code,
        vocab_symbol=vocab_symbol,
        vocab_series=vocab_series,
        vocab_strike=vocab_strike,
        key_codes=np.zeros(0, dtype=np.int64),
        key_rows=np.zeros(0, dtype=np.int64),
        full_index=full,
        cg_pg_code=cg_pg_code,
        equity_pg_code=equity_pg_code,
        port_index=port_index,
        pg_index=pg_index,
        cg_index=cg_index,
        basket_index=basket_index,
        spot_future=spot,
        exchange=sarr(exchange) if n else np.zeros(0, dtype="<U1"),
    )
    codes = theo.encode_keys(
        theo.account_type,
        theo.symbol,
        theo.security_type,
        theo.put_call,
        theo.series_date,
        theo.strike,
    )
    order = np.argsort(codes, kind="stable")
    uniq, first, counts = np.unique(codes[order], return_index=True, return_counts=True)
    rows = order[first].astype(np.int64)
    rows[counts > 1] = -1
    return replace(theo, key_codes=uniq.astype(np.int64), key_rows=rows)
