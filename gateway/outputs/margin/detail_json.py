"""The JSON document of a large report in bulk: the bytes ``json.dumps(report_document(r))``
gives (no indentation), without a Python object per value.

Theory of operation. The document is a tree: accounts, their stand-alone units, the product
groups of a portfolio group, class groups, contracts. Every node is written as an opening token
(``{"level": ..., "contracts": [``, its scalar members formatted for all nodes of that level at
once by ``bulk``) and a closing ``]}``; a contract is one token. Each token gets a sort key
(account, unit, product group, class group, contract; openings before their members, closings
after) whose order is the document's; one ``lexsort`` orders them, a ``, `` goes before every
node that follows a sibling, and the tokens are joined.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from engine.pmc.margin import LEVEL_CLASS_GROUP, LEVEL_PORTFOLIO_GROUP, LEVEL_PRODUCT_GROUP
from engine.pmc.report import MarginReport
from gateway.outputs.margin import bulk

IntArray = NDArray[np.int64]
BIG = np.int64(1 << 40)
NONE = np.int64(-1)
CLOSE = b"]}"


def _json_text(value: object) -> str:
    return json.dumps(value)


def _strings(values: NDArray[np.generic], *, null_if_empty: bool = False) -> bulk.U8:
    arr = np.asarray(values)
    if not arr.size:
        return np.zeros((0, 1), dtype=np.uint8)
    if null_if_empty:
        return bulk.distinct(arr, lambda v: "null" if v == "" else json.dumps(v))
    try:
        mat = bulk.text(arr)
    except UnicodeEncodeError:
        mat = None
    if mat is not None and bulk.plain(mat):
        quote = bulk.constant(b'"', arr.shape[0])
        return np.concatenate([quote, mat, quote], axis=1)
    return bulk.distinct(arr, _json_text)


def _money(values: np.ndarray) -> bulk.U8:
    return bulk.shortest2(np.asarray(values, dtype=np.float64), numpy_round=False)


def _vector(values: np.ndarray) -> list[bulk.U8]:
    """``[a, b, ...]`` of [m, 10] values rounded by numpy, as pieces."""
    v = np.asarray(values, dtype=np.float64)
    m = v.shape[0]
    texts = bulk.shortest2(v.reshape(-1), numpy_round=True).reshape(m, v.shape[1], -1)
    pieces: list[bulk.U8] = [bulk.constant(b"[", m)]
    for k in range(v.shape[1]):
        if k:
            pieces.append(bulk.constant(b", ", m))
        pieces.append(texts[:, k, :])
    pieces.append(bulk.constant(b"]", m))
    return pieces


class _Tokens:
    """Token texts with their sort keys, collected level by level."""

    def __init__(self) -> None:
        self.texts: list[bytes] = []
        self.bounds: list[IntArray | None] = []  # None: the same text on every row
        self.counts: list[int] = []
        self.keys: list[list[IntArray]] = []
        self.opening: list[bool] = []
        self.starts_node: list[bool] = []

    def add(
        self,
        text: bytes,
        bounds: IntArray | None,
        keys: Sequence[IntArray],
        *,
        opening: bool,
        starts_node: bool,
    ) -> None:
        self.texts.append(text)
        self.bounds.append(bounds)
        self.counts.append(int(keys[0].shape[0]))
        self.keys.append([np.asarray(k, dtype=np.int64) for k in keys])
        self.opening.append(opening)
        self.starts_node.append(starts_node)

    def ordered(self) -> Iterator[bytes | memoryview]:
        kind = np.concatenate([np.full(c, j, dtype=np.int64) for j, c in enumerate(self.counts)])
        row = np.concatenate([np.arange(c, dtype=np.int64) for c in self.counts])
        keys = [np.concatenate([k[level] for k in self.keys]) for level in range(5)]
        order = np.lexsort((row, *reversed(keys)))
        kind, row = kind[order], row[order]
        opening = np.asarray(self.opening)[kind]
        comma = np.asarray(self.starts_node)[kind]
        comma[1:] &= ~opening[:-1]
        comma[:1] = False
        views = [memoryview(t) for t in self.texts]
        bounds = [b.tolist() if b is not None else None for b in self.bounds]
        separator = b", "
        for k, j, c in zip(kind.tolist(), row.tolist(), comma.tolist(), strict=True):
            if c:
                yield separator
            kb = bounds[k]
            yield views[k] if kb is None else views[k][kb[j] : kb[j + 1]]


def report_json_bytes(report: MarginReport) -> bytes:
    """``json.dumps(report_document(report)) + "\\n"`` as bytes."""
    from gateway.outputs.margin.data import report_document_head_tail

    r = report.result
    head, tail = report_document_head_tail(report)
    tokens = _Tokens()
    n_a, n_u, n_p = r.account_firm.shape[0], r.unit_level.shape[0], r.pg_id.shape[0]
    n = r.pos_cg.shape[0]

    def full(count: int, value: np.int64) -> IntArray:
        return np.full(count, value, dtype=np.int64)

    # document head and tail
    one = np.zeros(1, dtype=np.int64)
    tokens.add(head, None, [one - 1, one, one, one, one], opening=True, starts_node=False)
    tokens.add(tail, None, [one + BIG, one, one, one, one], opening=False, starts_node=False)

    # accounts
    a = np.arange(n_a, dtype=np.int64)
    acct = bulk.join_rows(
        [
            bulk.constant(b'{"firm": ', n_a),
            _strings(r.account_firm),
            bulk.constant(b', "account": ', n_a),
            _strings(r.account_id),
            bulk.constant(b', "account_type": ', n_a),
            _strings(r.account_type),
            bulk.constant(b', "nav": ', n_a),
            _money(r.account_nav),
            bulk.constant(b', "risk": ', n_a),
            _money(r.account_risk),
            bulk.constant(b', "minimum": ', n_a),
            _money(r.account_minimum),
            bulk.constant(b', "requirement": ', n_a),
            _money(r.account_requirement),
            bulk.constant(b', "groups": [', n_a),
        ]
    )
    tokens.add(
        *acct,
        [a, full(n_a, NONE), full(n_a, NONE), full(n_a, NONE), full(n_a, NONE)],
        opening=True,
        starts_node=True,
    )
    tokens.add(
        CLOSE,
        None,
        [a, full(n_a, BIG), full(n_a, 0), full(n_a, 0), full(n_a, 0)],
        opening=False,
        starts_node=False,
    )

    # units: their heads, then the level's own members
    u = np.arange(n_u, dtype=np.int64)
    level, ref = r.unit_level, r.unit_ref
    for lvl in (LEVEL_PORTFOLIO_GROUP, LEVEL_PRODUCT_GROUP, LEVEL_CLASS_GROUP):
        sel = np.flatnonzero(level == lvl)
        m = sel.shape[0]
        if not m:
            continue
        rows = ref[sel]
        name = {
            LEVEL_PORTFOLIO_GROUP: b"portfolio_group",
            LEVEL_PRODUCT_GROUP: b"product_group",
            LEVEL_CLASS_GROUP: b"class_group",
        }[lvl]
        pieces = [
            bulk.constant(b'{"level": "' + name + b'", "nav": ', m),
            _money(r.unit_nav[sel]),
            bulk.constant(b', "risk": ', m),
            _money(r.unit_risk[sel]),
            bulk.constant(b', "minimum": ', m),
            _money(r.unit_minimum[sel]),
            bulk.constant(b', "requirement": ', m),
            _money(r.unit_requirement[sel]),
            bulk.constant(b', "id": ', m),
        ]
        if lvl == LEVEL_PORTFOLIO_GROUP:
            pieces += [
                _strings(r.port_id[rows]),
                bulk.constant(b', "product_group": null, "offset_pct": ', m),
                bulk.distinct(r.port_offset[rows].astype(np.float64), _json_text),
                bulk.constant(b', "gains": ', m),
                *_vector(r.port_gains[rows]),
                bulk.constant(b', "losses": ', m),
                *_vector(r.port_losses[rows]),
                bulk.constant(b', "total": ', m),
                *_vector(r.port_total[rows]),
                bulk.constant(b', "product_groups": [', m),
            ]
        elif lvl == LEVEL_PRODUCT_GROUP:
            ids = _strings(r.pg_id[rows])
            pieces += [
                ids,
                bulk.constant(b', "product_group": ', m),
                ids,
                bulk.constant(b', "offset_pct": ', m),
                _offsets(r.pg_offset[rows]),
                bulk.constant(b', "gains": ', m),
                *_vector(r.pg_gains[rows]),
                bulk.constant(b', "losses": ', m),
                *_vector(r.pg_losses[rows]),
                bulk.constant(b', "total": ', m),
                *_vector(r.pg_total[rows]),
                bulk.constant(b', "class_groups": [', m),
            ]
        else:
            total = r.cg_total[rows]
            pieces += [
                _strings(r.cg_id[rows]),
                bulk.constant(b', "product_group": ', m),
                _strings(r.pg_id[r.cg_pg[rows]]),
                bulk.constant(b', "offset_pct": null, "basket_id": ', m),
                _strings(r.cg_basket[rows], null_if_empty=True),
                bulk.constant(b', "gains": ', m),
                *_vector(np.maximum(total, 0.0)),
                bulk.constant(b', "losses": ', m),
                *_vector(np.minimum(total, 0.0)),
                bulk.constant(b', "total": ', m),
                *_vector(total),
                bulk.constant(b', "contracts": [', m),
            ]
        acct_of = r.unit_account[sel]
        tokens.add(
            *bulk.join_rows(pieces),
            [acct_of, u[sel], full(m, NONE), full(m, NONE), full(m, NONE)],
            opening=True,
            starts_node=True,
        )
    tokens.add(
        CLOSE,
        None,
        [r.unit_account, u, full(n_u, BIG), full(n_u, 0), full(n_u, 0)],
        opening=False,
        starts_node=False,
    )

    # the unit each product group and class group sits in
    pg_in_port = r.pg_port >= 0
    pg_unit = np.where(
        pg_in_port, r.port_unit[np.maximum(r.pg_port, 0)] if r.port_id.shape[0] else -1, r.pg_unit
    )
    cg_pg = r.cg_pg.astype(np.int64)
    cg_unit = np.where(r.cg_unit >= 0, r.cg_unit, pg_unit[cg_pg] if n_p else -1)

    # product groups of portfolio groups
    sel = np.flatnonzero(pg_in_port)
    m = sel.shape[0]
    if m:
        pieces = [
            bulk.constant(b'{"level": "product_group", "id": ', m),
            _strings(r.pg_id[sel]),
            bulk.constant(b', "offset_pct": ', m),
            _offsets(r.pg_offset[sel]),
            bulk.constant(b', "nav": ', m),
            _money(r.pg_nav[sel]),
            bulk.constant(b', "minimum": ', m),
            _money(r.pg_minimum[sel]),
            bulk.constant(b', "gains": ', m),
            *_vector(r.pg_gains[sel]),
            bulk.constant(b', "losses": ', m),
            *_vector(r.pg_losses[sel]),
            bulk.constant(b', "total": ', m),
            *_vector(r.pg_total[sel]),
            bulk.constant(b', "class_groups": [', m),
        ]
        keys = [r.pg_account[sel], pg_unit[sel], sel.astype(np.int64)]
        tokens.add(
            *bulk.join_rows(pieces),
            [*keys, full(m, NONE), full(m, NONE)],
            opening=True,
            starts_node=True,
        )
        tokens.add(CLOSE, None, [*keys, full(m, BIG), full(m, 0)], opening=False, starts_node=False)

    # class groups that are not units themselves
    sel = np.flatnonzero(r.cg_unit < 0)
    m = sel.shape[0]
    if m:
        pieces = [
            bulk.constant(b'{"level": "class_group", "id": ', m),
            _strings(r.cg_id[sel]),
            bulk.constant(b', "basket_id": ', m),
            _strings(r.cg_basket[sel], null_if_empty=True),
            bulk.constant(b', "nav": ', m),
            _money(r.cg_nav[sel]),
            bulk.constant(b', "minimum": ', m),
            _money(r.cg_minimum[sel]),
            bulk.constant(b', "total": ', m),
            *_vector(r.cg_total[sel]),
            bulk.constant(b', "contracts": [', m),
        ]
        keys = [r.cg_account[sel], cg_unit[sel], cg_pg[sel], sel.astype(np.int64)]
        tokens.add(*bulk.join_rows(pieces), [*keys, full(m, NONE)], opening=True, starts_node=True)
        tokens.add(CLOSE, None, [*keys, full(m, BIG)], opening=False, starts_node=False)

    # contracts
    if n:
        b = r.resolved.batch
        i = np.arange(n, dtype=np.int64)
        pieces = [
            bulk.constant(b'{"line": ', n),
            bulk.text(b.line.astype("S20")),
            bulk.constant(b', "symbol": ', n),
            _strings(b.symbol),
            bulk.constant(b', "security_type": ', n),
            _strings(b.security_type),
            bulk.constant(b', "put_call": ', n),
            _strings(b.put_call, null_if_empty=True),
            bulk.constant(b', "series_date": ', n),
            _strings(b.series_date, null_if_empty=True),
            bulk.constant(b', "strike": ', n),
            bulk.distinct(b.strike.astype(np.float64), _json_text),
            bulk.constant(b', "quantity": ', n),
            bulk.distinct(b.quantity.astype(np.float64), _json_text),
            bulk.constant(b', "basket_id": ', n),
            _strings(b.basket_id, null_if_empty=True),
            bulk.constant(b', "in_set": ', n),
            bulk.distinct(r.resolved.theo_row >= 0, lambda v: "true" if v else "false"),
            bulk.constant(b', "nav": ', n),
            bulk.shortest2(r.pos_nav, numpy_round=True),
            bulk.constant(b', "minimum": ', n),
            bulk.shortest2(r.pos_minimum, numpy_round=True),
            bulk.constant(b', "pnl": ', n),
            *_vector(r.pos_pnl),
            bulk.constant(b"}", n),
        ]
        g = r.pos_cg.astype(np.int64)
        keys = [r.pos_account, cg_unit[g], cg_pg[g], g, i]
        tokens.add(*bulk.join_rows(pieces), keys, opening=False, starts_node=True)
    return b"".join(tokens.ordered())


def _offsets(values: np.ndarray) -> bulk.U8:
    return bulk.distinct(
        np.asarray(values, dtype=np.float64), lambda v: "null" if v != v else json.dumps(v)
    )
