"""The fast path is exactly as strict as the lxml path: same results on the corpus and on hostile
lines (entities, CDATA, comments, namespaces, odd whitespace, non-ASCII), and it is really taken."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dpl.canonical import canonical_line
from engine.dpl.fastpath import read_fast, read_line
from engine.dpl.fixml import FIXML_NS, FixmlRecord, iter_records
from engine.dpl.records import DplFields, ValidationResult
from engine.dpl.validate import DplValidator, iter_validate
from engine.errors import UnreadableInput

from .support import CALENDAR, CM_LINE, CYCLE, REFERENCE, line, validator

CORPUS = Path(__file__).resolve().parents[3] / "data" / "dpl"
ENTITLED = ("00005", "00161", "IAN", "WLV")


def results(data: bytes, *, fast_path: bool) -> list[tuple[FixmlRecord, ValidationResult]]:
    check = validator(ENTITLED).validate
    records = iter_records((data,), fast_path=fast_path, max_line_bytes=4096)
    return [(record, check(record)) for record in records]


def validated(data: bytes, *, fast_path: bool, chunk: int | None = None) -> list[ValidationResult]:
    """``iter_validate`` over the file, whole or in chunks of ``chunk`` bytes."""
    chunks = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    return list(
        iter_validate(
            chunks,
            reference=REFERENCE,
            cycle=CYCLE,
            calendar=CALENDAR,
            entitled_firms=ENTITLED,
            max_line_bytes=4096,
            fast_path=fast_path,
        )
    )


def same_both_ways(data: bytes) -> int:
    """Validation results with and without the fast paths are equal: record by record, and many
    lines at a time (whole and in small chunks, as the intake reads); how many took the
    per-record fast path."""
    try:
        fast = results(data, fast_path=True)
    except UnreadableInput as exc:
        with pytest.raises(UnreadableInput) as caught:
            results(data, fast_path=False)
        assert (caught.value.reason, caught.value.message) == (exc.reason, exc.message)
        with pytest.raises(UnreadableInput) as caught:
            validated(data, fast_path=True)
        assert (caught.value.reason, caught.value.message) == (exc.reason, exc.message)
        with pytest.raises(UnreadableInput) as caught:  # the bytes quoted depend on the chunks
            validated(data, fast_path=True, chunk=61)
        assert caught.value.reason == exc.reason
        return 0
    slow = results(data, fast_path=False)
    assert [r for _, r in fast] == [r for _, r in slow]
    assert all(record.fields is None for record, _ in slow)
    assert validated(data, fast_path=False) == [r for _, r in slow]
    for chunk in (None, 61):
        assert validated(data, fast_path=True, chunk=chunk) == [r for _, r in slow]
    return sum(record.fields is not None for record, _ in fast)


def test_plain_records_take_the_fast_path_and_others_the_tree_walk() -> None:
    assert read_fast(CM_LINE) is not None
    assert read_fast(CM_LINE.replace(b"Goldman", b"&#71;oldman")) is None
    assert read_fast(CM_LINE.replace(b'ReqTyp="6" ModelTyp', b'ModelTyp="1" ReqTyp="6" X')) is None
    assert read_fast(CM_LINE.replace(b' Long="100"', b"")) is None


def test_a_line_needs_its_fixml_envelope() -> None:
    assert read_line(CM_LINE) is not None
    assert read_line(f'<FIXML xmlns="{FIXML_NS}">'.encode() + CM_LINE[7:]) is not None
    bare = CM_LINE.removeprefix(b"<FIXML>").removesuffix(b"</FIXML>")
    assert read_fast(bare) is not None  # a Batch child
    assert read_line(bare) is None and read_line(CM_LINE[:-8]) is None
    assert read_line(b'<FIXML xmlns="urn:other">' + CM_LINE[7:]) is None


def test_over_long_lines_never_take_the_fast_path() -> None:
    (record,) = iter_records((CM_LINE,), max_line_bytes=len(CM_LINE) - 1)
    assert not record.is_posrpt and record.problem is not None


def test_good_lines_are_accepted_many_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first line, plain valid lines never take the per-line path; the others do."""
    seen: list[int] = []
    per_line = DplValidator.validate

    def counting(self: DplValidator, record: FixmlRecord) -> ValidationResult:
        seen.append(record.line)
        return per_line(self, record)

    monkeypatch.setattr(DplValidator, "validate", counting)
    lines = [line(agg=f"AU{i}", long=str(i)) for i in range(40)]
    lines[20] = line(biz="2026-01-02")  # BIZDT_OUT_OF_RANGE
    lines[30] = lines[30] + b"\r"  # CRLF ending
    got = validated(b"\n".join(lines) + b"\n", fast_path=True)
    assert seen == [1, 21]
    assert [r.status for r in got] == ["valid"] * 20 + ["rejected"] + ["valid"] * 19
    assert got[30].raw == lines[30][:-1]


@pytest.mark.parametrize(
    "path",
    sorted(CORPUS.glob("*/*.fixml")),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_corpus_gives_the_same_results_with_and_without_the_fast_path(path: Path) -> None:
    taken = same_both_ways(path.read_bytes())
    expected = json.loads((path.parent / f"{path.stem}.expected.json").read_text())
    if path.parent.name == "valid" and "unreadable" not in expected:
        data = path.read_bytes()
        assert taken or b"<Batch" in data or not re.search(rb"<FIXML><PosRpt BizDt", data)


def test_the_corpus_takes_the_fast_path() -> None:
    assert sum(same_both_ways(p.read_bytes()) for p in CORPUS.glob("*/*.fixml")) > 10


# Hostile pieces: each is either well-formed somewhere in a line or breaks it, and several are
# well-formed yet must not be read by the fast path (references, CDATA, comments, namespaces).
HOSTILE = [
    "&amp;",
    "&lt;",
    "&#71;",
    "&#x47;",
    "&#0;",
    "&foo;",
    "&",
    "<![CDATA[x]]>",
    "<![CDATA[ ]]>",
    "<!-- note -->",
    "<?pi data?>",
    "<!DOCTYPE FIXML>",
    ' xmlns="urn:other"',
    f' xmlns="{FIXML_NS}"',
    ' xmlns:f="urn:f"',
    "f:",
    " ",
    "  ",
    "\t",
    "\r",
    "\n",
    "\x0b",
    "\x0c",
    "\x85",
    "\xa0",
    "\u2003",
    "\u2028",
    "\u3000",
    "\x7f",
    "\x9f",
    "é",
    "€",
    "\U0001f600",
    "\ufdd0",
    "\ufeff",
    "\ufffd",
    "\ufffe",
    "\uffff",
    "\x01",
    "'",
    '"',
    "<",
    ">",
    "/>",
    "=",
    ' X="1"',
    ' Long="5"',
    "</Pty>",
    "<Pty/>",
]

fields_strategy = st.builds(
    DplFields,
    rpt_id=st.none(),
    biz_dt=st.sampled_from(["2026-03-06", "2026-03-09", "2026-03-07", "2026-3-09"]),
    dlv_dt=st.none(),
    req_typ=st.just("6"),
    model_typ=st.sampled_from(["0", "1"]),
    firm_id=st.sampled_from(["00005", "5", "IAN", "00999", "SMQ"]),
    firm_role=st.sampled_from(["4", "7"]),
    agg_unit=st.sampled_from(["AU1", "A U", "Ünit", "x>y"]),
    crd=st.just("361"),
    firm_name=st.sampled_from(["Goldman Sachs", "Müller & Co", "名前"]),
    symbol=st.sampled_from(["GOOG", "S&P", "A'B"]),
    sub_typ=st.sampled_from(["ETO", "OTC", "CMB"]),
    long=st.sampled_from(["100", "0", "1.5", None]),
    short=st.sampled_from(["7", "0", None]),
).filter(lambda f: f.long is not None or f.short is not None)


@st.composite
def hostile_lines(draw: st.DrawFn) -> bytes:
    """A well-formed record line, then a few hostile pieces inserted or values replaced."""
    fields = draw(fields_strategy)
    if draw(st.booleans()):
        text = canonical_line(fields, rpt_id="R1", dlv_dt="2026-03-10").decode()
    else:
        text = line(
            biz=fields.biz_dt or "",
            firm=fields.firm_id or "",
            role=fields.firm_role or "",
            agg=fields.agg_unit or "",
            sym=fields.symbol or "",
            long=fields.long,
            short=fields.short,
        ).decode()
    if draw(st.booleans()):
        text = text.replace("<FIXML>", f'<FIXML xmlns="{FIXML_NS}">')
    for _ in range(draw(st.integers(0, 3))):
        piece = draw(st.sampled_from(HOSTILE) | st.text(min_size=1, max_size=3))
        values = [m.span(1) for m in re.finditer(r'="([^"]*)"', text)]
        gaps = [0, len(text)] + [m.start() + 1 for m in re.finditer("><", text)]
        where = draw(
            st.sampled_from(
                ["anywhere", "between tags", "value start", "value end", "replace value"]
            )
        )
        if where in ("anywhere", "between tags") or not values:
            if where == "between tags":
                at = draw(st.sampled_from(gaps))
            else:
                at = draw(st.integers(0, len(text)))
            text = text[:at] + piece + text[at:]
            continue
        start, end = draw(st.sampled_from(values))
        if where == "value start":
            text = text[:start] + piece + text[start:]
        elif where == "value end":
            text = text[:end] + piece + text[end:]
        else:
            text = text[:start] + piece + text[end:]
    return text.encode("utf-8", errors="surrogatepass")


def single_mutations(text: str) -> list[str]:
    """Every hostile piece at the start and end of every value, instead of it, and in every gap
    between tags and at both ends of the line."""
    values = [m.span(1) for m in re.finditer(r'="([^"]*)"', text)]
    gaps = [0, len(text)] + [m.start() + 1 for m in re.finditer("><", text)]
    out = []
    for piece in HOSTILE:
        for start, end in values:
            out.append(text[:start] + piece + text[start:])
            out.append(text[:end] + piece + text[end:])
            out.append(text[:start] + piece + text[end:])
        for at in gaps:
            out.append(text[:at] + piece + text[at:])
    return out


@pytest.mark.parametrize("namespaced", [False, True])
def test_every_single_hostile_piece_anywhere_gives_the_same_result(namespaced: bool) -> None:
    text = CM_LINE.decode()
    if namespaced:
        text = text.replace("<FIXML>", f'<FIXML xmlns="{FIXML_NS}">')
    lines = single_mutations(text)
    data = "\n".join(lines).encode("utf-8")
    taken = same_both_ways(data + b"\n")
    assert 0 < taken < len(lines)  # some pieces keep the exact shape (inside values), most not


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_lines(), min_size=1, max_size=3))
def test_hostile_lines_give_the_same_result_with_and_without_the_fast_path(
    lines: list[bytes],
) -> None:
    same_both_ways(b"\n".join(lines) + b"\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")))
def test_arbitrary_bytes_after_a_good_line_give_the_same_result(tail: bytes) -> None:
    same_both_ways(CM_LINE + b"\n" + tail + b"\n" + CM_LINE.replace(b"GOOG", tail[:5]))


@pytest.mark.parametrize(
    "value",
    ["x>y", "\x7f", "\x85lead", "\xa0", " lead", "trail ", "€", "\U0001f600", "\ufdd0", "a'b"],
)
def test_unusual_but_legal_values(value: str) -> None:
    data = CM_LINE.replace(b'Sym="GOOG"', f'Sym="{value}"'.encode())
    same_both_ways(data)
