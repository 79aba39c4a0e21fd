"""The JSON document of a large report in bulk: the bytes ``json.dumps(report_document(r))``
gives (no indentation), without a Python object per value.

Theory of operation. The document is a tree: accounts, their stand-alone units, the product
groups of a portfolio group, class groups, contracts. Every node is written as an opening token
(``{"level": ..., "contracts": [``, its scalar members formatted for all nodes of that level at
once by ``bulk`` from the level's table of fields) and a closing ``]}``; a contract is one token.
Each token gets a sort key (account, unit, product group, class group, contract; openings before
their members, closings after) whose order is the document's; one ``lexsort`` orders them. The
node tokens become the rows of one byte matrix in that order, each with the ``, `` before it when
it follows a sibling and the closings that follow it, and dropping the matrix's NULs leaves the
document's bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from engine.pmc.margin import LEVEL_CLASS_GROUP, LEVEL_PORTFOLIO_GROUP, LEVEL_PRODUCT_GROUP
from engine.pmc.report import MarginReport
from gateway.outputs.margin import bulk

IntArray = NDArray[np.int64]
BIG = np.int64(1 << 40)
NONE = np.int64(-1)
CLOSE = b"]}"
COMMA = b", "


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


def _nullable(values: NDArray[np.generic]) -> bulk.U8:
    return _strings(values, null_if_empty=True)


def _json_values(values: np.ndarray) -> bulk.U8:
    return bulk.distinct(np.asarray(values, dtype=np.float64), _json_text)


def _offsets(values: np.ndarray) -> bulk.U8:
    return bulk.distinct(
        np.asarray(values, dtype=np.float64), lambda v: "null" if v != v else json.dumps(v)
    )


def _money(values: np.ndarray, label: bytes) -> list[bulk.U8]:
    """``label`` and the amount rounded to cents by Python (one piece)."""
    return [bulk.shortest2(np.asarray(values, dtype=np.float64), numpy_round=False, prefix=label)]


def _rounded(values: np.ndarray, label: bytes) -> list[bulk.U8]:
    """``label`` and the amount rounded to cents by numpy (one piece)."""
    return [bulk.shortest2(np.asarray(values, dtype=np.float64), numpy_round=True, prefix=label)]


def _vector(values: np.ndarray, label: bytes) -> list[bulk.U8]:
    """``label`` and ``[a, b, ...]`` of [m, 10] values rounded by numpy."""
    v = np.asarray(values, dtype=np.float64)
    m = v.shape[0]
    texts = bulk.shortest2(v.reshape(-1), numpy_round=True, prefix=COMMA).reshape(m, v.shape[1], -1)
    texts[:, 0, 0], texts[:, 0, 1] = ord("["), 0  # the first value's separator opens the list
    return [bulk.constant(label, m), texts.reshape(m, -1), bulk.constant(b"]", m)]


Cell = Callable[[np.ndarray], bulk.U8]
Render = Callable[[np.ndarray, bytes], list[bulk.U8]]
Field = tuple[bytes, Render, np.ndarray]  # label, how, values (one a node)


def _labelled(cell: Cell) -> Render:
    """A cell after its label, as two pieces."""

    def pieces(values: np.ndarray, label: bytes) -> list[bulk.U8]:
        return [bulk.constant(label, values.shape[0]), cell(values)]

    return pieces


STRING, NULLABLE, JSON, OFFSET = map(_labelled, (_strings, _nullable, _json_values, _offsets))


def _row(fields: Sequence[Field], end: bytes) -> bulk.U8:
    """The token of every node of a level: each field's label and text, then ``end``."""
    pieces: list[bulk.U8] = []
    for label, render, values in fields:
        pieces += render(values, label)
    m = fields[0][2].shape[0]
    pieces.append(bulk.constant(end, m))
    return np.concatenate([np.asarray(p) for p in pieces], axis=1)


class _Tokens:
    """The node tokens (byte matrices, one row a node) and the closings, with their sort keys."""

    def __init__(self) -> None:
        self.mats: list[bulk.U8 | None] = []  # None: a closing
        self.counts: list[int] = []
        self.keys: list[list[IntArray]] = []
        self.opening: list[bool] = []

    def node(self, mat: bulk.U8, keys: Sequence[IntArray], *, opening: bool) -> None:
        self._add(mat, keys, opening)

    def close(self, keys: Sequence[IntArray]) -> None:
        self._add(None, keys, False)

    def _add(self, mat: bulk.U8 | None, keys: Sequence[IntArray], opening: bool) -> None:
        self.mats.append(mat)
        self.counts.append(int(keys[0].shape[0]))
        self.keys.append([np.asarray(k, dtype=np.int64) for k in keys])
        self.opening.append(opening)

    def joined(self, *, leading_comma: bool = False) -> bytes:
        """Every token in document order, with the separators, as one bytes object."""
        kind = np.concatenate([np.full(c, j, dtype=np.int64) for j, c in enumerate(self.counts)])
        row = np.concatenate([np.arange(c, dtype=np.int64) for c in self.counts])
        keys = [np.concatenate([k[level] for k in self.keys]) for level in range(5)]
        order = np.lexsort((row, *reversed(keys)))
        kind, row = kind[order], row[order]
        is_node = np.asarray([m is not None for m in self.mats])[kind]
        opening = np.asarray(self.opening)[kind]
        comma = is_node.copy()  # a node that follows a sibling
        comma[1:] &= ~opening[:-1]
        comma[:1] = leading_comma
        # each closing goes after the node token before it (the first token is a node)
        at = np.arange(kind.shape[0], dtype=np.int64)
        owner = np.maximum.accumulate(np.where(is_node, at, -1))
        rank = np.cumsum(is_node) - 1
        nodes = np.flatnonzero(is_node)
        closings = np.bincount(rank[owner[~is_node]], minlength=nodes.shape[0])
        width = max(m.shape[1] for m in self.mats if m is not None)
        most = int(closings.max(initial=0))
        out = np.zeros((nodes.shape[0], 2 + width + 2 * most), dtype=np.uint8)
        out[comma[nodes], :2] = np.frombuffer(COMMA, dtype=np.uint8)
        node_kind, node_row = kind[nodes], row[nodes]
        for j, mat in enumerate(self.mats):
            if mat is not None and mat.shape[0]:
                at_j = np.flatnonzero(node_kind == j)
                out[at_j, 2 : 2 + mat.shape[1]] = mat[node_row[at_j]]
        suffix = np.zeros((most + 1, 2 * most), dtype=np.uint8)
        for k in range(1, most + 1):
            suffix[k, : 2 * k] = np.frombuffer(CLOSE * k, dtype=np.uint8)
        out[:, 2 + width :] = suffix[closings]
        return out[out != 0].tobytes()


CHUNK_POSITIONS = 10_000  # positions whose accounts are written together (cache-sized)


def report_json_bytes(report: MarginReport) -> bytes:
    """``json.dumps(report_document(report)) + "\\n"`` as bytes."""
    return b"".join(report_json_chunks(report))


def report_json_chunks(report: MarginReport) -> Iterator[bytes]:
    """The same bytes, a group of accounts (about ``CHUNK_POSITIONS`` positions) at a time, so
    memory stays bounded by the chunk whatever the file's size."""
    from gateway.outputs.margin.data import report_document_head_tail

    r = report.result
    head, tail = report_document_head_tail(report)
    yield head
    n_a = r.account_firm.shape[0]
    per_account = np.bincount(r.pos_account, minlength=n_a) if n_a else np.zeros(0, np.int64)
    index = _Index(report)
    for lo, hi in bulk.account_ranges(per_account, CHUNK_POSITIONS):
        yield _accounts_json(report, index, lo, hi, leading_comma=lo > 0)
    yield tail


class _Index:
    """What every chunk needs, made once per report: the unit each product group and class
    group sits in, and each level's rows ordered by account (a chunk's rows are one slice)."""

    def __init__(self, report: MarginReport) -> None:
        r = report.result
        self.pg_in_port = r.pg_port >= 0
        self.pg_unit = np.where(
            self.pg_in_port,
            r.port_unit[np.maximum(r.pg_port, 0)] if r.port_id.shape[0] else -1,
            r.pg_unit,
        )
        self.cg_pg = r.cg_pg.astype(np.int64)
        self.cg_unit = np.where(
            r.cg_unit >= 0, r.cg_unit, self.pg_unit[self.cg_pg] if r.pg_id.shape[0] else -1
        )
        self._levels = {
            name: self._by_account(accounts)
            for name, accounts in (
                ("unit", r.unit_account),
                ("pg", r.pg_account),
                ("cg", r.cg_account),
                ("pos", r.pos_account),
            )
        }

    @staticmethod
    def _by_account(accounts: NDArray[np.int64]) -> tuple[IntArray, IntArray]:
        order = np.argsort(accounts, kind="stable").astype(np.int64)
        return order, np.asarray(accounts, dtype=np.int64)[order]

    def rows(self, level: str, lo: int, hi: int) -> IntArray:
        """The rows of ``level`` whose account is in ``lo`` to ``hi`` (exclusive)."""
        order, accounts = self._levels[level]
        start, stop = np.searchsorted(accounts, [lo, hi])
        return order[int(start) : int(stop)]


def _unit_fields(report: MarginReport, lvl: int, sel: IntArray) -> tuple[list[Field], bytes]:
    """The fields of the stand-alone units ``sel`` of level ``lvl`` and their members' key."""
    r = report.result
    rows = r.unit_ref[sel]
    name = {
        LEVEL_PORTFOLIO_GROUP: b"portfolio_group",
        LEVEL_PRODUCT_GROUP: b"product_group",
        LEVEL_CLASS_GROUP: b"class_group",
    }[lvl]
    head: list[Field] = [
        (b'{"level": "' + name + b'", "nav": ', _money, r.unit_nav[sel]),
        (b', "risk": ', _money, r.unit_risk[sel]),
        (b', "minimum": ', _money, r.unit_minimum[sel]),
        (b', "requirement": ', _money, r.unit_requirement[sel]),
    ]
    if lvl == LEVEL_PORTFOLIO_GROUP:
        own: list[Field] = [
            (b', "id": ', STRING, r.port_id[rows]),
            (b', "product_group": null, "offset_pct": ', JSON, r.port_offset[rows]),
            (b', "gains": ', _vector, r.port_gains[rows]),
            (b', "losses": ', _vector, r.port_losses[rows]),
            (b', "total": ', _vector, r.port_total[rows]),
        ]
        return head + own, b', "product_groups": ['
    if lvl == LEVEL_PRODUCT_GROUP:
        own = [
            (b', "id": ', STRING, r.pg_id[rows]),
            (b', "product_group": ', STRING, r.pg_id[rows]),
            (b', "offset_pct": ', OFFSET, r.pg_offset[rows]),
            (b', "gains": ', _vector, r.pg_gains[rows]),
            (b', "losses": ', _vector, r.pg_losses[rows]),
            (b', "total": ', _vector, r.pg_total[rows]),
        ]
        return head + own, b', "class_groups": ['
    total = r.cg_total[rows]
    own = [
        (b', "id": ', STRING, r.cg_id[rows]),
        (b', "product_group": ', STRING, r.pg_id[r.cg_pg[rows]]),
        (b', "offset_pct": null, "basket_id": ', NULLABLE, r.cg_basket[rows]),
        (b', "gains": ', _vector, np.maximum(total, 0.0)),
        (b', "losses": ', _vector, np.minimum(total, 0.0)),
        (b', "total": ', _vector, total),
    ]
    return head + own, b', "contracts": ['


def _accounts_json(
    report: MarginReport, index: _Index, lo: int, hi: int, *, leading_comma: bool
) -> bytes:
    """The entries of accounts ``lo`` to ``hi`` (exclusive), comma-separated."""
    r = report.result
    tokens = _Tokens()

    def full(count: int, value: np.int64) -> IntArray:
        return np.full(count, value, dtype=np.int64)

    # accounts
    a = np.arange(lo, hi, dtype=np.int64)
    n_a = a.shape[0]
    account_fields: list[Field] = [
        (b'{"firm": ', STRING, r.account_firm[a]),
        (b', "account": ', STRING, r.account_id[a]),
        (b', "account_type": ', STRING, r.account_type[a]),
        (b', "nav": ', _money, r.account_nav[a]),
        (b', "risk": ', _money, r.account_risk[a]),
        (b', "minimum": ', _money, r.account_minimum[a]),
        (b', "requirement": ', _money, r.account_requirement[a]),
    ]
    tokens.node(
        _row(account_fields, b', "groups": ['),
        [a, *(full(n_a, NONE) for _ in range(4))],
        opening=True,
    )
    tokens.close([a, full(n_a, BIG), full(n_a, 0), full(n_a, 0), full(n_a, 0)])

    # units: their heads, then the level's own members
    units = index.rows("unit", lo, hi)
    for lvl in (LEVEL_PORTFOLIO_GROUP, LEVEL_PRODUCT_GROUP, LEVEL_CLASS_GROUP):
        sel = units[r.unit_level[units] == lvl]
        m = sel.shape[0]
        if m:
            fields, end = _unit_fields(report, lvl, sel)
            keys = [r.unit_account[sel], sel, full(m, NONE), full(m, NONE), full(m, NONE)]
            tokens.node(_row(fields, end), keys, opening=True)
    n_in = units.shape[0]
    tokens.close([r.unit_account[units], units, *(full(n_in, v) for v in (BIG, 0, 0))])
    pg_unit, cg_unit, cg_pg = index.pg_unit, index.cg_unit, index.cg_pg

    # product groups of portfolio groups
    pgs = index.rows("pg", lo, hi)
    sel = pgs[index.pg_in_port[pgs]]
    m = sel.shape[0]
    if m:
        pg_fields: list[Field] = [
            (b'{"level": "product_group", "id": ', STRING, r.pg_id[sel]),
            (b', "offset_pct": ', OFFSET, r.pg_offset[sel]),
            (b', "nav": ', _money, r.pg_nav[sel]),
            (b', "minimum": ', _money, r.pg_minimum[sel]),
            (b', "gains": ', _vector, r.pg_gains[sel]),
            (b', "losses": ', _vector, r.pg_losses[sel]),
            (b', "total": ', _vector, r.pg_total[sel]),
        ]
        keys = [r.pg_account[sel], pg_unit[sel], sel.astype(np.int64)]
        tokens.node(
            _row(pg_fields, b', "class_groups": ['),
            [*keys, full(m, NONE), full(m, NONE)],
            opening=True,
        )
        tokens.close([*keys, full(m, BIG), full(m, 0)])

    # class groups that are not units themselves
    cgs = index.rows("cg", lo, hi)
    sel = cgs[r.cg_unit[cgs] < 0]
    m = sel.shape[0]
    if m:
        cg_fields: list[Field] = [
            (b'{"level": "class_group", "id": ', STRING, r.cg_id[sel]),
            (b', "basket_id": ', NULLABLE, r.cg_basket[sel]),
            (b', "nav": ', _money, r.cg_nav[sel]),
            (b', "minimum": ', _money, r.cg_minimum[sel]),
            (b', "total": ', _vector, r.cg_total[sel]),
        ]
        keys = [r.cg_account[sel], cg_unit[sel], cg_pg[sel], sel.astype(np.int64)]
        tokens.node(_row(cg_fields, b', "contracts": ['), [*keys, full(m, NONE)], opening=True)
        tokens.close([*keys, full(m, BIG)])

    # contracts
    i = index.rows("pos", lo, hi)
    m = i.shape[0]
    if m:
        b = r.resolved.batch
        contract_fields: list[Field] = [
            (b'{"line": ', _labelled(bulk.text), b.line[i].astype("S20")),
            (b', "symbol": ', STRING, b.symbol[i]),
            (b', "security_type": ', STRING, b.security_type[i]),
            (b', "put_call": ', NULLABLE, b.put_call[i]),
            (b', "series_date": ', NULLABLE, b.series_date[i]),
            (b', "strike": ', JSON, b.strike[i]),
            (b', "quantity": ', JSON, b.quantity[i]),
            (b', "basket_id": ', NULLABLE, b.basket_id[i]),
            (
                b', "in_set": ',
                _labelled(lambda v: bulk.distinct(v, lambda x: "true" if x else "false")),
                r.resolved.theo_row[i] >= 0,
            ),
            (b', "nav": ', _rounded, r.pos_nav[i]),
            (b', "minimum": ', _rounded, r.pos_minimum[i]),
            (b', "pnl": ', _vector, r.pos_pnl[i]),
        ]
        g = r.pos_cg[i].astype(np.int64)
        keys = [r.pos_account[i], cg_unit[g], cg_pg[g], g, i]
        tokens.node(_row(contract_fields, b"}"), keys, opening=False)
    return tokens.joined(leading_comma=leading_comma)
