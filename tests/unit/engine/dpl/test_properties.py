"""Property tests of DPL validation: canonical round trips, fast path = tree walk, mutations."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dpl.canonical import canonical_line
from engine.dpl.fastpath import read_fast
from engine.dpl.fixml import FIXML_NS, parse_bytes
from engine.dpl.records import REASON_CODES, DplFields
from engine.dpl.treewalk import read_fields
from engine.dpl.validate import validate_file
from engine.errors import UnreadableInput

from .support import CALENDAR, CYCLE, REFERENCE, esc, validator

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIRMS = [("00005", "4"), ("5", "4"), ("00161", "4"), ("IAN", "7"), ("WLV", "7")]
ENTITLED = ("00005", "00161", "IAN", "WLV")
BLANKS = [" ", "  ", "\t"]
GAPS = ["", "", " ", "\t"]
UNREADABLE = {"EMPTY", "BINARY", "ENCODING", "NO_FIXML", "TRUNCATED_BATCH", "MALFORMED_BATCH"}

# Characters XML 1.0 allows, including tab, newline and carriage return (escaped on output).
xml_char = st.characters(
    codec="utf-8",
    exclude_characters="".join(chr(c) for c in range(32) if c not in (9, 10, 13)) + "\ufffe\uffff",
)
value = st.text(xml_char, min_size=1, max_size=12).filter(lambda v: not v.isspace())
quantity = st.from_regex(r"[0-9]{1,7}(\.[0-9]{1,4})?", fullmatch=True)
zero = st.sampled_from(["0", "00", "0.0", "0.000"])


@st.composite
def valid_fields(draw: st.DrawFn) -> DplFields:
    firm, role = draw(st.sampled_from(FIRMS))
    long, short = draw(
        st.one_of(
            st.tuples(quantity, st.none()),
            st.tuples(st.none(), quantity),
            st.tuples(quantity, zero),
            st.tuples(zero, quantity),
        )
    )
    return DplFields(
        rpt_id=None,
        biz_dt=draw(st.sampled_from(["2026-03-06", "2026-03-09"])),
        dlv_dt=None,
        req_typ="6",
        model_typ=draw(st.sampled_from(["0", "1"])),
        firm_id=firm,
        firm_role=role,
        agg_unit=draw(value),
        crd=draw(value),
        firm_name=draw(value),
        symbol=draw(value),
        sub_typ=draw(st.sampled_from(["ETO", "OTC", "CMB"])),
        long=long,
        short=short,
    )


def render(fields: DplFields, rnd: random.Random, namespaced: bool) -> bytes:
    """The record written as a firm might: any attribute order, optional blanks, namespace."""

    def attrs(pairs: list[tuple[str, str | None]]) -> str:
        present = [(k, v) for k, v in pairs if v is not None]
        rnd.shuffle(present)
        return "".join(f'{rnd.choice(BLANKS)}{k}="{esc(v)}"' for k, v in present)

    def gap() -> str:
        return rnd.choice(GAPS)

    f = fields
    parties = [
        f"<Pty{attrs([('ID', f.firm_id), ('R', f.firm_role)])}/>",
        f"<Pty{attrs([('ID', f.agg_unit), ('R', '38')])}/>",
        f"<Pty{attrs([('ID', f.crd), ('R', '82')])}>{gap()}"
        f"<Sub{attrs([('ID', f.firm_name), ('Typ', '5')])}/>{gap()}</Pty>",
    ]
    rnd.shuffle(parties)
    body = parties + [
        f"<Instrmt{attrs([('Sym', f.symbol), ('SubTyp', f.sub_typ)])}/>",
        f"<Qty{attrs([('Typ', 'DLT'), ('Long', f.long), ('Short', f.short)])}/>",
    ]
    rnd.shuffle(body)
    head = attrs(
        [
            ("RptID", f.rpt_id),
            ("BizDt", f.biz_dt),
            ("DlvDt", f.dlv_dt),
            ("ReqTyp", "6"),
            ("ModelTyp", f.model_typ),
        ]
    )
    ns = f' xmlns="{FIXML_NS}"' if namespaced else ""
    inner = gap().join(body)
    return f"<FIXML{ns}>{gap()}<PosRpt{head}>{gap()}{inner}{gap()}</PosRpt></FIXML>".encode()


def validate_one(data: bytes) -> tuple[DplFields | None, tuple[str, ...]]:
    (record,) = parse_bytes(data)
    result = validator(ENTITLED).validate(record)
    return result.fields, result.reasons


@SETTINGS
@given(valid_fields(), value, st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)))
def test_canonical_form_revalidates_to_the_same_fields(
    fields: DplFields, rpt_id: str, dlv: dt.date
) -> None:
    data = canonical_line(fields, rpt_id=rpt_id, dlv_dt=dlv)
    assert b"\n" not in data and b"\r" not in data
    got, reasons = validate_one(data)
    assert reasons == ()
    assert got == fields._replace(rpt_id=rpt_id, dlv_dt=dlv.isoformat())


@SETTINGS
@given(valid_fields(), st.randoms(use_true_random=False), st.booleans())
def test_any_layout_of_a_valid_record_reads_the_same(
    fields: DplFields, rnd: random.Random, namespaced: bool
) -> None:
    data = render(fields, rnd, namespaced)
    got, reasons = validate_one(data)
    assert reasons == ()
    assert got == fields
    again, reasons = validate_one(canonical_line(got, rpt_id="1", dlv_dt="2026-03-10"))
    assert reasons == () and again == fields._replace(rpt_id="1", dlv_dt="2026-03-10")


def agree(data: bytes) -> None:
    """Where the fast path reads a record, the tree walk reads the same fields, no problems."""
    records = parse_bytes(data, fast_path=False)
    for record in records:
        if record.posrpt is None:
            continue
        fast = read_fast(record.raw)
        if fast is not None:
            tree, problems = read_fields(record.posrpt)
            assert problems == []
            assert tree == fast


@SETTINGS
@given(valid_fields(), st.randoms(use_true_random=False), st.booleans())
def test_fast_path_agrees_with_the_tree_walk(
    fields: DplFields, rnd: random.Random, namespaced: bool
) -> None:
    agree(render(fields, rnd, namespaced))
    agree(canonical_line(fields, rpt_id="R", dlv_dt="2026-03-10"))


def check_invariants(data: bytes) -> None:
    try:
        outcome = validate_file(
            data, reference=REFERENCE, cycle=CYCLE, calendar=CALENDAR, entitled_firms=ENTITLED
        )
    except UnreadableInput as exc:
        assert exc.reason in UNREADABLE
        assert exc.message
        return
    lines = [r.line for r in outcome.results]
    assert lines == sorted(lines)
    for result in outcome.results:
        assert result.status in ("valid", "rejected")
        assert (result.status == "valid") == (result.reasons == ())
        assert set(result.reasons) <= set(REASON_CODES)
        assert len(set(result.reasons)) == len(result.reasons)
        assert {p.code for p in result.problems} == set(result.reasons)
        assert result.raw in data or b"<Batch" in data
    summary = outcome.summary
    assert summary.total == len(outcome.results) == summary.valid + summary.rejected


@SETTINGS
@given(
    st.lists(valid_fields(), min_size=1, max_size=4),
    st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]),
            st.floats(0, 1),
            st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_byte_mutations_never_crash(
    records: list[DplFields], mutations: list[tuple[str, float, bytes]]
) -> None:
    data = bytearray(
        b"\n".join(canonical_line(f, rpt_id="1", dlv_dt="2026-03-10") for f in records)
    )
    for kind, where, chunk in mutations:
        at = int(where * len(data))
        if kind == "replace":
            data[at : at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = chunk
        else:
            del data[at : at + len(chunk)]
    check_invariants(bytes(data))
    agree_if_readable(bytes(data))


def agree_if_readable(data: bytes) -> None:
    try:
        agree(data)
    except UnreadableInput:
        pass


ATTRIBUTE_VALUES = st.one_of(
    st.text(xml_char, max_size=8),
    st.sampled_from(["", " ", "6", "0", "1", "4", "7", "38", "82", "5", "DLT", "ETO", "-1", "1e3"]),
    st.sampled_from(["2026-03-09", "2026-03-06", "2026-02-30", "00005", "IAN", "SMQ", "00418"]),
)


@SETTINGS
@given(
    valid_fields(),
    st.randoms(use_true_random=False),
    st.lists(
        st.tuples(
            st.sampled_from(["set", "drop", "add", "duplicate", "remove", "text"]),
            st.integers(0, 100),
            ATTRIBUTE_VALUES,
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_attribute_and_element_mutations_end_valid_or_rejected(
    fields: DplFields, rnd: random.Random, mutations: list[tuple[str, int, str]]
) -> None:
    from lxml import etree

    root = etree.fromstring(render(fields, rnd, namespaced=False))
    for kind, pick, new in mutations:
        elements = list(root.iter())[1:]  # below FIXML
        if not elements:
            break
        element = elements[pick % len(elements)]
        names = sorted(element.attrib)
        if kind == "set" and names:
            element.set(names[pick % len(names)], new)
        elif kind == "drop" and names:
            del element.attrib[names[pick % len(names)]]
        elif kind == "add":
            element.set(rnd.choice(["Foo", "Long", "Short", "ID", "R", "Typ", "Sym"]), new)
        elif kind == "duplicate" and element.getparent() is not None:
            element.getparent().append(etree.fromstring(etree.tostring(element)))
        elif kind == "remove" and element.getparent() is not None and len(elements) > 1:
            element.getparent().remove(element)
        elif kind == "text":
            element.text = new
    data = etree.tostring(root)
    check_invariants(data)
    agree(data)
