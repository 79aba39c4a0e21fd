"""FIXML file reading: modes, raw bytes and line numbers, whole-file failures, hostile XML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from engine.dpl.fixml import FIXML_NS, FixmlRecord, iter_records, parse_bytes
from engine.dpl.safe_xml import local_name, make_parser
from engine.errors import UnreadableInput

CORPUS = Path(__file__).resolve().parents[3] / "data" / "dpl"

POSRPT = (
    '<PosRpt BizDt="2026-03-09" ReqTyp="6" ModelTyp="1"><Pty ID="00005" R="4"/>'
    '<Pty ID="AU" R="38"/><Pty ID="361" R="82"><Sub ID="GS" Typ="5"/></Pty>'
    '<Instrmt Sym="GOOG" SubTyp="ETO"/><Qty Typ="DLT" Long="100"/></PosRpt>'
)
LINE = f"<FIXML>{POSRPT}</FIXML>".encode()


def summary(records: list[FixmlRecord]) -> list[tuple[int, bytes, bool, str | None]]:
    return [(r.line, r.raw, r.is_posrpt, r.problem) for r in records]


# -- line mode ------------------------------------------------------------------------------------


def test_line_mode_keeps_exact_bytes_and_physical_line_numbers() -> None:
    odd = b"  " + LINE + b" \t"
    data = b"\xef\xbb\xbf" + LINE + b"\r\n\r\n" + odd + b"\n\n   \ngarbage\r\n" + LINE
    records = parse_bytes(data)
    assert [(r.line, r.raw) for r in records] == [(1, LINE), (3, odd), (6, b"garbage"), (7, LINE)]
    assert [r.is_posrpt for r in records] == [True, True, False, True]
    assert records[2].problem is not None and "not well-formed" in records[2].problem
    assert records[0].fields is not None and records[0].fields.symbol == "GOOG"  # the fast path
    (parsed,) = parse_bytes(LINE, fast_path=False)
    assert local_name(parsed.posrpt.tag) == "PosRpt" and parsed.fields is None


def test_namespaced_lines_are_read() -> None:
    line = f'<FIXML xmlns="{FIXML_NS}">{POSRPT}</FIXML>'.encode()
    (record,) = parse_bytes(line, fast_path=False)
    assert record.posrpt.tag == f"{{{FIXML_NS}}}PosRpt"
    assert record.raw == line


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"<PosRpt/>", "not FIXML"),
        (b"<FIXML/>", "no PosRpt"),
        (b"<FIXML><PosRpt/><PosRpt/></FIXML>", "exactly one PosRpt"),
        (b"<FIXML><Hdr/></FIXML>", "not a PosRpt"),
        (b"<FIXML>x<PosRpt/></FIXML>", "text outside"),
        (b'<FIXML xmlns="urn:other"><PosRpt/></FIXML>', "unsupported namespace"),
        (b"<FIXML><PosRpt></FIXML>", "not well-formed"),
        (b"<!DOCTYPE FIXML><FIXML><PosRpt/></FIXML>", "DOCTYPE"),
        (b'<?xml version="1.0" encoding="latin-1"?><FIXML><PosRpt/></FIXML>', "'latin-1'"),
    ],
)
def test_envelope_problems_are_malformed_records(line: bytes, fragment: str) -> None:
    (record,) = parse_bytes(LINE + b"\n" + line)[1:]
    assert not record.is_posrpt
    assert record.problem is not None and fragment in record.problem
    assert record.raw == line and record.line == 2


def test_line_length_limit() -> None:
    at_limit = parse_bytes(LINE, max_line_bytes=len(LINE))
    over = parse_bytes(LINE, max_line_bytes=len(LINE) - 1)
    assert at_limit[0].is_posrpt
    assert not over[0].is_posrpt and over[0].raw == LINE
    assert over[0].problem is not None and f"limit of {len(LINE) - 1}" in over[0].problem
    with pytest.raises(ValueError):
        parse_bytes(LINE, max_line_bytes=0)


def test_a_utf8_declaration_on_the_line_itself_is_fine() -> None:
    line = b'<?xml version="1.0" encoding="UTF-8"?>' + LINE
    (record,) = parse_bytes(line)
    assert record.is_posrpt and record.raw == line


def test_declaration_only_at_the_top_is_skipped() -> None:
    decl = b'<?xml version="1.0" encoding="utf-8"?>'
    records = parse_bytes(b"\n" + decl + b"\n" + LINE + b"\n" + decl + b"\n")
    assert [(r.line, r.is_posrpt) for r in records] == [(3, True), (4, False)]


def test_lines_before_the_first_fixml_line_are_held_then_returned_in_order() -> None:
    records = parse_bytes(b"header\nmore\n" + LINE + b"\ntrailer\n")
    assert [(r.line, r.raw) for r in records] == [
        (1, b"header"),
        (2, b"more"),
        (3, LINE),
        (4, b"trailer"),
    ]


# -- Batch mode -----------------------------------------------------------------------------------


def test_batch_records_are_the_exact_posrpt_bytes_with_their_start_line() -> None:
    second = POSRPT.replace("><", ">\r\n    <").encode()
    doc = (
        b'<?xml version="1.0"?>\r\n'
        + f'<FIXML xmlns="{FIXML_NS}" v="5.0">\r\n'.encode()
        + b"<Batch>\r\n  "
        + POSRPT.encode()
        + b"\r\n  "
        + second
        + b"\r\n  <PosRpt/></Batch>\r\n</FIXML>\r\n"
    )
    records = parse_bytes(doc)
    assert [(r.line, r.raw) for r in records] == [
        (4, POSRPT.encode()),
        (5, second),
        (14, b"<PosRpt/>"),
    ]
    assert all(r.is_posrpt for r in records)
    assert records[1].posrpt.get("BizDt") == "2026-03-09"


def test_batch_on_one_line() -> None:
    records = parse_bytes(f"<FIXML><Batch>{POSRPT}{POSRPT}</Batch></FIXML>".encode())
    assert [(r.line, r.raw) for r in records] == [(1, POSRPT.encode())] * 2


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (b"<FIXML>\n<Batch>\n" + POSRPT.encode()[:40], "TRUNCATED_BATCH"),
        (b"<FIXML><Batch>" + POSRPT.encode(), "TRUNCATED_BATCH"),
        (b"<FIXML><Batch><PosRpt></PosRp></Batch></FIXML>", "MALFORMED_BATCH"),
        (b"<FIXML><Batch></Batch></FIXML>", "MALFORMED_BATCH"),
        (b"<FIXML><Batch><PosRpt/></Batch><Batch/></FIXML>", "MALFORMED_BATCH"),
        (b"<FIXML><Batch>text<PosRpt/></Batch></FIXML>", "MALFORMED_BATCH"),
        (b"<FIXML><Batch><PosRpt/></Batch></FIXML>\n" + LINE, "MALFORMED_BATCH"),
        (b"<FIXML><Batch><PosRpt a='&e;'/></Batch></FIXML>", "MALFORMED_BATCH"),
        (b"<FIXML><Batch><PosRpt/></Batch></FIXML>\n<", "MALFORMED_BATCH"),
        (b"<FIXML><Batch><PosRpt/></Batch></FIXM", "TRUNCATED_BATCH"),
        (b"<FIXML><Batch><PosRpt/></Batch></FIXM>", "MALFORMED_BATCH"),
        (b"<FIXML><Batch><PosRpt a='\xc3", "ENCODING"),
    ],
)
def test_unreadable_batches(doc: bytes, reason: str) -> None:
    with pytest.raises(UnreadableInput) as caught:
        parse_bytes(doc, name="upload.fixml")
    assert caught.value.reason == reason
    assert caught.value.location.file == "upload.fixml"
    assert "upload.fixml" in str(caught.value)


# -- whole-file failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason", "line"),
    [
        (b"", "EMPTY", None),
        (b"\xef\xbb\xbf", "EMPTY", None),
        (b"\r\n \n\t", "EMPTY", None),
        (b'<?xml version="1.0"?>\n', "EMPTY", None),
        (LINE + b"\n" + LINE + b"\n\x00\x00", "BINARY", 3),
        (LINE + b"\nabc\xff\n", "ENCODING", 2),
        (LINE + b"\n\xe2\x82", "ENCODING", 2),
        ("<FIXML/>".encode("utf-16"), "ENCODING", 1),
        ("<FIXML/>".encode("utf-32"), "ENCODING", 1),
        (b'<?xml version="1.0" encoding="windows-1252"?>\n' + LINE, "ENCODING", 1),
        (b"a;b\n1;2\n", "NO_FIXML", None),
    ],
)
def test_unreadable_files(data: bytes, reason: str, line: int | None) -> None:
    with pytest.raises(UnreadableInput) as caught:
        parse_bytes(data)
    assert caught.value.reason == reason
    assert caught.value.location.line == line
    assert caught.value.message


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_streaming_in_tiny_chunks_gives_the_same_records() -> None:
    data = b"\xef\xbb\xbf" + LINE + b"\r\nnope\n\n" + LINE
    whole = summary(parse_bytes(data))
    for size in (1, 2, 3, 5, 64):
        assert summary(list(iter_records(chunked(data, size)))) == whole


def test_a_huge_line_in_many_chunks_is_one_malformed_record() -> None:
    line = b"<FIXML>" + b"x" * (8 << 20)

    def feed() -> Iterator[bytes]:
        yield LINE + b"\n"
        for i in range(0, len(line), 4096):
            yield line[i : i + 4096]
        yield b"\n" + LINE

    records = list(iter_records(feed()))
    assert [(r.line, len(r.raw)) for r in records] == [
        (1, len(LINE)),
        (2, len(line)),
        (3, len(LINE)),
    ]
    assert records[1].raw == line and not records[1].is_posrpt


def test_a_late_binary_chunk_raises_after_earlier_records() -> None:
    """Chunked callers get records as they come and must discard them when the file fails."""
    seen = []
    with pytest.raises(UnreadableInput) as caught:
        for record in iter_records([LINE + b"\n", LINE + b"\n", b"\x00rest"]):
            seen.append(record.line)
    assert caught.value.reason == "BINARY"
    assert seen == [1, 2]


readable_corpus = sorted(
    p
    for p in CORPUS.glob("*/*.fixml")
    if "unreadable" not in (p.parent / f"{p.stem}.expected.json").read_text()
)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(readable_corpus), st.integers(min_value=1, max_value=300))
def test_chunk_boundaries_never_change_the_records(path: Path, size: int) -> None:
    data = path.read_bytes()
    assert summary(list(iter_records(chunked(data, size)))) == summary(parse_bytes(data))


# -- the parser itself ----------------------------------------------------------------------------


def test_parser_resolves_no_entities_and_reads_no_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = (
        f'<!DOCTYPE a [<!ENTITY s SYSTEM "{secret.as_uri()}"><!ENTITY i "EXPANDED">]>'
        "<a><b>&i;</b><c>&s;</c></a>"
    ).encode()
    try:
        root = etree.fromstring(doc, make_parser())
    except etree.XMLSyntaxError:
        return  # refusing the document outright is just as safe
    text = etree.tostring(root).decode() + "".join(root.itertext())
    assert "TOP-SECRET-CONTENT" not in text
    assert "EXPANDED" not in "".join(root.itertext())


def test_parser_fetches_no_external_dtd() -> None:
    doc = b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/never.dtd"><a/>'
    root = etree.fromstring(doc, make_parser())  # no network error: the DTD is not loaded
    assert root.tag == "a"


def test_billion_laughs_does_not_expand() -> None:
    decl = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    doc = f"<!DOCTYPE a [{decl}]><a>&l9;</a>".encode()
    try:
        root = etree.fromstring(doc, make_parser())
    except etree.XMLSyntaxError:
        return
    assert len("".join(root.itertext())) < 1000
