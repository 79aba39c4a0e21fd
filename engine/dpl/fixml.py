"""FIXML position-report files: bytes in, one record per PosRpt with its raw bytes out.

Theory of operation. A file is either *line mode* (one ``<FIXML><PosRpt …/></FIXML>`` message per
physical line, the normal case) or *Batch mode* (one ``<FIXML><Batch>…</Batch></FIXML>`` document).
The mode is decided from the first significant line (after blank lines and an optional XML
declaration line): an opening ``<FIXML …>`` tag followed, on that line or the next significant one,
by ``<Batch`` means Batch mode; anything else is line mode.

* Line mode streams: a line in the exact canonical shape is read by the fast path
  (:func:`engine.dpl.fastpath.read_line`), whose match proves it well-formed, so it is not parsed
  again; every other line is parsed alone with one shared, locked-down lxml parser (no entity
  resolution, no network, no DTD, no huge trees). A line that is not a well-formed FIXML envelope
  around exactly one PosRpt becomes a record with a ``problem`` (the MALFORMED reason) rather than
  failing the file; so does a DOCTYPE and a line over ``max_line_bytes``. Blank lines are skipped.
  Every record keeps the exact bytes of its line (without the terminator) and its 1-based line.
  For a reader that takes many lines at a time (:func:`iter_records_and_blocks`, used by the
  validator), the complete lines after the first FIXML line come as :class:`LineBlock` (about
  one per chunk) with the per-line reading to fall back on.
* Batch mode streams too (:mod:`engine.dpl.batch`): the document goes through lxml's pull parser
  and expat side by side, expat giving each Batch child's exact bytes; a finished child leaves the
  tree, so memory does not grow with the document. A line still unfinished after ``PIECE_BYTES``
  (:mod:`engine.dpl.lines`) is looked at to decide the mode, so a Batch on one line is never held
  whole. A Batch that is cut short is ``TRUNCATED_BATCH``; one that is otherwise not well-formed is
  ``MALFORMED_BATCH``.

Whole-input failures raise :class:`~engine.errors.UnreadableInput` with one of ``EMPTY``,
``BINARY``, ``ENCODING``, ``NO_FIXML``, ``TRUNCATED_BATCH``, ``MALFORMED_BATCH``. They are checked
chunk by chunk (the first three by :mod:`engine.dpl.lines`, which cuts the chunks into lines), so
a caller that feeds a file in several chunks may receive records before a later chunk turns out to
be binary or not UTF-8: such a caller must treat records as provisional until the iterator is
exhausted. Fed as one chunk, every whole-input failure is raised before the first record. Lines
before the first line that contains ``<FIXML`` are held back until one does, so a file without any
FIXML line yields nothing and raises ``NO_FIXML``.

The UTF-8 byte order mark is tolerated at the start of the input and is not part of any record.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, cast

from lxml import etree

from engine.dpl.fastpath import read_line
from engine.dpl.lines import EMPTY, ENCODING, LINES, Line, LineBlockReader
from engine.dpl.records import DplFields
from engine.dpl.safe_xml import has_text, local_name, make_parser
from engine.errors import Location, UnreadableInput

FIXML_NS = "http://www.fixprotocol.org/FIXML-5-0-SP2"
DEFAULT_MAX_LINE_BYTES = 64 * 1024

# Reasons of UnreadableInput raised here (the Batch reader has its own).
NO_FIXML = "NO_FIXML"

FIXML_TAGS = frozenset({"FIXML", f"{{{FIXML_NS}}}FIXML"})
POSRPT_TAGS = frozenset({"PosRpt", f"{{{FIXML_NS}}}PosRpt"})
BATCH_TAGS = frozenset({"Batch", f"{{{FIXML_NS}}}Batch"})

_XML_DECL_LINE = re.compile(rb"\s*<\?xml\s[^>]*\?>\s*\Z")
_BATCH_OPEN = re.compile(
    rb"\s*(?:<\?xml\s[^>]*\?>)?\s*<(?:[A-Za-z_][\w.-]*:)?FIXML(?:\s[^>]*)?>\s*(?P<rest>.*)\Z",
    re.DOTALL,
)
_DECL_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)")
_UTF8_NAMES = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii"})
_BATCH_TAG = re.compile(rb"\s*<(?:[A-Za-z_][\w.-]*:)?Batch[\s>/]")


class FixmlRecord(NamedTuple):
    """One record: its physical line, its exact bytes, and the PosRpt element or why not.

    ``posrpt`` is the parsed PosRpt element (tags possibly in the FIXML namespace) when the record
    is a well-formed FIXML PosRpt that was parsed; ``fields`` is set instead (and ``posrpt`` is
    None) when the fast path read the line without parsing it. When neither is set, ``problem``
    says why the record is not a FIXML PosRpt (MALFORMED).
    """

    line: int
    raw: bytes
    posrpt: Any
    problem: str | None
    fields: DplFields | None = None

    @property
    def is_posrpt(self) -> bool:
        """Whether the record is a well-formed FIXML PosRpt (parsed or read by the fast path)."""
        return self.posrpt is not None or self.fields is not None


def parse_bytes(
    data: bytes,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    name: str | None = None,
    fast_path: bool = True,
) -> list[FixmlRecord]:
    """All records of an in-memory file (see :func:`iter_records`)."""
    records = iter_records((data,), max_line_bytes=max_line_bytes, name=name, fast_path=fast_path)
    return list(records)


def iter_records(
    chunks: Iterable[bytes],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    name: str | None = None,
    fast_path: bool = True,
) -> Iterator[FixmlRecord]:
    """Records of a file given as byte chunks of any size, in input order.

    Raises UnreadableInput (see the module docstring for when). ``name`` only labels messages.
    ``fast_path=False`` parses every line with lxml: the reference behaviour the fast path is
    proven against (it gives the same validation results, only slower).
    """
    reader = _FileReader(max_line_bytes, name, fast_path)
    # Without ``blocks`` the reader yields records only.
    return cast(Iterator[FixmlRecord], reader.run(chunks))


def iter_records_and_blocks(
    chunks: Iterable[bytes],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    name: str | None = None,
) -> Iterator[FixmlRecord | LineBlock]:
    """What :func:`iter_records` reads, except that once a line-mode file is under way, its
    complete lines come as :class:`LineBlock` (about one per chunk), for a caller that reads many
    lines at a time (the validator); the lines before, a Batch and the unterminated last line
    come as records. Raises UnreadableInput as :func:`iter_records` does."""
    return _FileReader(max_line_bytes, name, blocks=True).run(chunks)


class LineBlock(NamedTuple):
    """Complete lines of a line-mode file, to be read many at a time.

    ``data`` holds the lines, each ending with LF (a CR before it belongs to the line ending);
    ``first`` is the 1-based number of its first line. ``parse(number, content)`` reads one of its
    non-blank lines (without the line ending) into the record :func:`iter_records` gives for it;
    ``max_line_bytes`` is the limit ``parse`` applies.
    """

    first: int
    data: bytes
    parse: Callable[[int, bytes], FixmlRecord]
    max_line_bytes: int


class _FileReader:
    """State of one pass over one file; not shared between threads."""

    def __init__(
        self, max_line_bytes: int, name: str | None, fast_path: bool = True, blocks: bool = False
    ) -> None:
        if max_line_bytes <= 0:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.name = name
        self.fast_path = fast_path
        self.blocks = blocks
        self.parser = make_parser()

    def _unreadable(self, reason: str, message: str, line: int | None = None) -> UnreadableInput:
        return UnreadableInput(reason, message, Location(self.name, line, None))

    # -- logical layer: lines -> records ----------------------------------------------------------

    def run(self, chunks: Iterable[bytes]) -> Iterator[FixmlRecord | LineBlock]:
        physical = LineBlockReader(chunks, self._unreadable)
        lines = physical.lines()
        lookahead: list[Line] = []
        significant = 0
        looked: Line | None = None  # a look at a long line that decided the mode
        for line in lines:
            if line.partial:
                if _is_blank(line.content):
                    continue  # the whole line comes next
                looked = line
            else:
                lookahead.append(line)
                if _is_blank(line.content):
                    continue
            significant += 1
            if significant == 1 and not line.partial and _XML_DECL_LINE.match(line.content):
                self._check_declared_encoding(line)
                continue  # the optional declaration; the FIXML line comes next
            opening = _BATCH_OPEN.match(line.content)
            if opening is None:
                break
            rest = opening.group("rest")
            if rest and not rest.isspace():
                if _BATCH_TAG.match(rest):
                    yield from self._batch(physical, lookahead, lines, looked)
                    return
                break
            # "<FIXML …>" alone on its line: Batch mode if the next significant line opens a Batch.
            for following in lines:
                if following.partial:
                    if _is_blank(following.content):
                        continue
                    looked = following
                else:
                    lookahead.append(following)
                    if _is_blank(following.content):
                        continue
                if _BATCH_TAG.match(following.content):
                    yield from self._batch(physical, lookahead, lines, looked)
                    return
                break
            break
        physical.deciding = False
        if looked is None and all(_is_blank(x.content) for x in lookahead):
            raise self._unreadable(EMPTY, "the file holds only blank lines")
        yield from self._line_mode(physical, lookahead, lines)

    def _check_declared_encoding(self, line: Line) -> None:
        declared = _DECL_ENCODING.search(line.content)
        if declared and declared.group(1).lower() not in _UTF8_NAMES:
            name = declared.group(1).decode("ascii")
            raise self._unreadable(
                ENCODING, f"the XML declaration says encoding {name!r}; expected UTF-8", line.number
            )

    def _line_mode(
        self, physical: LineBlockReader, lookahead: list[Line], rest: Iterator[Line]
    ) -> Iterator[FixmlRecord | LineBlock]:
        parse = self._parse_line
        # Lines before the first one holding "<FIXML" wait, unparsed: if none ever does, the file
        # is NO_FIXML and yields nothing. (They cost memory up to the file size limit.)
        held: list[tuple[int, bytes]] = []
        seen_fixml = False
        first_significant = True
        pending: Iterable[Line] = lookahead
        for source in (pending, rest):
            for number, content, _, _ in source:
                if content and not content.isspace():
                    if first_significant:
                        first_significant = False
                        if _XML_DECL_LINE.match(content):
                            continue
                    if seen_fixml:
                        yield parse(number, content)
                    else:
                        held.append((number, content))
                        if b"<FIXML" in content or b":FIXML" in content:
                            seen_fixml = True
                            for number_held, content_held in held:
                                yield parse(number_held, content_held)
                            held.clear()
                if seen_fixml and self.blocks and source is rest:
                    break  # the rest of the input goes by whole blocks
            if seen_fixml and self.blocks:
                yield from self._whole_blocks(physical)
                return
        if not seen_fixml:
            if held:
                raise self._unreadable(
                    NO_FIXML, f"none of its {len(held)} non-blank line(s) holds a <FIXML> message"
                )
            raise self._unreadable(EMPTY, "the file holds only an XML declaration")

    def _whole_blocks(self, physical: LineBlockReader) -> Iterator[FixmlRecord | LineBlock]:
        """The rest of a line-mode input: what is left of the current block, then every block
        (the unterminated last line, if any, as a record). Line mode sees no partial lines."""
        rest, physical.rest = physical.rest, None
        if rest is not None and rest[2] < len(rest[1]):
            first, block, start = rest
            yield LineBlock(first, block[start:], self._parse_line, self.max_line_bytes)
        for number, block, kind in physical.blocks:
            if kind == LINES:
                yield LineBlock(number + 1, block, self._parse_line, self.max_line_bytes)
            elif block and not block.isspace():
                yield self._parse_line(number + 1, block)

    def _parse_line(self, number: int, content: bytes) -> FixmlRecord:
        if len(content) > self.max_line_bytes:
            return FixmlRecord(
                number,
                content,
                None,
                f"line of {len(content)} bytes exceeds the limit of {self.max_line_bytes}",
            )
        if self.fast_path:
            fields = read_line(content)
            if fields is not None:
                return FixmlRecord(number, content, None, None, fields)
        if b"<!DOCTYPE" in content:
            return FixmlRecord(number, content, None, "a DOCTYPE is not allowed")
        if content.startswith(b"<?xml"):
            end = content.find(b"?>")
            declared = _DECL_ENCODING.search(content, 0, end if end > 0 else len(content))
            if declared and declared.group(1).lower() not in _UTF8_NAMES:
                name = declared.group(1).decode("ascii")
                message = f"the line declares encoding {name!r}, not UTF-8"
                return FixmlRecord(number, content, None, message)
        try:
            root = etree.fromstring(content, self.parser)
        except etree.XMLSyntaxError as exc:
            return FixmlRecord(number, content, None, f"not well-formed XML: {exc.msg}")
        problem = _envelope_problem(root)
        if problem is not None:
            return FixmlRecord(number, content, None, problem)
        return FixmlRecord(number, content, root[0], None)

    # -- Batch mode -------------------------------------------------------------------------------

    def _batch(
        self,
        physical: LineBlockReader,
        lookahead: list[Line],
        rest: Iterator[Line],
        looked: Line | None,
    ) -> Iterator[FixmlRecord]:
        """Batch mode: the document from its first significant line, read as a stream."""
        from engine.dpl.batch import read_batch  # it imports this module's record type

        physical.deciding = False
        physical.in_pieces = True
        start = next((i for i, x in enumerate(lookahead) if not _is_blank(x.content)), None)
        if start is not None:
            first_line = lookahead[start].number
            head = lookahead[start:]
        else:
            assert looked is not None  # Batch mode was decided on a look at a long first line
            first_line, head = looked.number, []
        pieces = itertools.chain(
            (x.content + x.terminator for x in head),
            (x.content + x.terminator for x in rest),
        )
        children = read_batch(
            pieces,
            first_line=first_line,
            unreadable=self._unreadable,
            fixml_tags=FIXML_TAGS,
            batch_tags=BATCH_TAGS,
        )
        for number, raw, element in children:
            if element.tag not in POSRPT_TAGS:
                problem = f"<{local_name(element.tag)}> in a Batch is not a PosRpt"
                yield FixmlRecord(number, raw, None, problem)
            else:
                yield FixmlRecord(number, raw, element, None)


def _envelope_problem(root: Any) -> str | None:
    """Why a parsed line is not a FIXML envelope around exactly one PosRpt, or None."""
    if root.tag not in FIXML_TAGS:
        if isinstance(root.tag, str) and local_name(root.tag) == "FIXML":
            return f"FIXML in an unsupported namespace {root.tag.partition('}')[0][1:]!r}"
        return f"root element <{local_name(root.tag)}> is not FIXML"
    if len(root) != 1:
        if len(root) == 0:
            return "FIXML holds no PosRpt"
        names = ", ".join(local_name(c.tag) for c in root)
        return f"FIXML must hold exactly one PosRpt, not: {names}"
    posrpt = root[0]
    if posrpt.tag not in POSRPT_TAGS:
        return f"FIXML holds <{local_name(posrpt.tag)}>, not a PosRpt"
    if has_text(root.text) or has_text(posrpt.tail):
        return "text outside the PosRpt element"
    return None


def _is_blank(content: bytes) -> bool:
    return not content or content.isspace()
