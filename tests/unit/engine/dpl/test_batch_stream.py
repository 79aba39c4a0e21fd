"""Batch documents read as a stream: pieces of any size, one long line, problem priorities."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.dpl.fixml import FIXML_NS, FixmlRecord, iter_records, parse_bytes
from engine.dpl.lines import PIECE_BYTES
from engine.errors import UnreadableInput

POSRPT = (
    '<PosRpt RptID="{n}" BizDt="2026-03-09" ReqTyp="6"><Pty ID="00005" R="4"/>'
    '<Instrmt Sym="GOOG" SubTyp="ETO"/><Qty Typ="DLT" Long="{n}"/></PosRpt>'
)


def children(count: int) -> bytes:
    return "".join(POSRPT.format(n=n) for n in range(count)).encode()


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def summary(records: list[FixmlRecord]) -> list[tuple[int, bytes, str | None, str | None]]:
    return [
        (r.line, r.raw, r.problem, r.posrpt.get("RptID") if r.posrpt is not None else None)
        for r in records
    ]


def test_a_batch_on_one_long_line_gives_the_same_records_in_any_pieces() -> None:
    body = children(25_000)
    assert len(body) > 3 * PIECE_BYTES  # longer than a piece: the line is never held whole
    doc = f'<FIXML xmlns="{FIXML_NS}"><Batch>'.encode() + body + b"</Batch></FIXML>"
    whole = summary(parse_bytes(doc))
    assert len(whole) == 25_000
    assert whole[0] == (1, POSRPT.format(n=0).encode(), None, "0")
    assert whole[-1][3] == "24999"
    for size in (65_536, 1_000_003):
        assert summary(list(iter_records(chunked(doc, size)))) == whole


def test_a_prefixed_batch_over_many_lines_in_tiny_pieces() -> None:
    doc = (
        f'<?xml version="1.0"?>\n<f:FIXML xmlns:f="{FIXML_NS}">\n<f:Batch>\n'.encode()
        + children(3)
        .replace(b"<PosRpt", b"\n<f:PosRpt")
        .replace(b"</PosRpt", b"</f:PosRpt")
        .replace(b"<Pty", b"<f:Pty")
        .replace(b"<Instrmt", b"<f:Instrmt")
        .replace(b"<Qty", b"<f:Qty")
        + b"\n</f:Batch>\n</f:FIXML>\n"
    )
    whole = summary(parse_bytes(doc))
    assert [line for line, *_ in whole] == [5, 6, 7]  # line 4 is blank
    assert summary(list(iter_records(chunked(doc, 3)))) == whole


def test_a_handed_out_child_is_no_longer_in_the_tree() -> None:
    doc = b"<FIXML><Batch>" + children(3) + b"</Batch></FIXML>"
    records = parse_bytes(doc)
    assert [r.posrpt.getparent() for r in records] == [None, None, None]
    assert [r.posrpt.find("Qty").get("Long") for r in records] == ["0", "1", "2"]


def test_a_long_first_line_that_is_no_batch_is_still_one_line_mode_record() -> None:
    line = b"<FIXML>" + b"x" * (2 * PIECE_BYTES) + b"</FIXML>"
    (record,) = iter_records(chunked(line + b"\n", 65_536), max_line_bytes=len(line) + 1)
    assert (record.line, record.raw) == (1, line)
    assert record.problem is not None and "PosRpt" in record.problem


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        # a problem of shape early, the document cut short later: the cut wins
        (b"text" + children(2), "TRUNCATED_BATCH"),
        # not well-formed early, a NUL byte much later: the byte the file cannot hold wins
        (b"<PosRpt></PosRp>" + children(2000) + b"\x00", "BINARY"),
        # a DOCTYPE after many children: nothing is handed out as final
        (children(2000) + b"<!DOCTYPE x>", "MALFORMED_BATCH"),
        (children(2000) + b"</Batch></FIXML>\n<", "MALFORMED_BATCH"),
    ],
)
def test_the_most_telling_problem_wins_wherever_it_is(tail: bytes, reason: str) -> None:
    doc = b"<FIXML><Batch>" + tail
    for pieces in ([doc], list(chunked(doc, 4096))):
        with pytest.raises(UnreadableInput) as caught:
            list(iter_records(pieces))
        assert caught.value.reason == reason
