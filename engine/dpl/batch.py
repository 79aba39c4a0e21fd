"""Batch documents read as a stream: memory independent of the document's size.

Theory of operation. The document is fed, in slices of at most ``SLICE_BYTES``, to two push
parsers at once. lxml's pull parser builds the tree of each Batch child (the element validation
walks); expat reports the byte offset and line of each child's start and end tags, which lxml does
not keep, so every record carries its exact bytes. A child is handed out once both parsers have
finished it and the next event has fixed its tail text; it is cut from the tree before it is handed
out, and the bytes before the oldest child still wanted are dropped. So the reader holds one slice,
the children finished but not yet paired, and the root and Batch elements: never the document.

The outcome is the one a parse of the whole document gives: the same records and the same reason.
A problem stops the records, but the rest of the input is still read and the most telling problem
wins: a byte the file cannot hold (BINARY, ENCODING: raised by the source of the pieces), then a
DOCTYPE anywhere, then a document that is not well-formed (``TRUNCATED_BATCH`` when expat finds it
only cut short, else ``MALFORMED_BATCH``), then its shape (a FIXML root holding exactly one Batch,
no text between elements, at least one child). Records handed out before a problem is found are
provisional, as for every input fed in several chunks (see :mod:`engine.dpl.fixml`).
"""

from __future__ import annotations

import re
import xml.parsers.expat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lxml import etree

from engine.dpl.safe_xml import PARSER_OPTIONS, has_text, local_name
from engine.errors import EngineBug, UnreadableInput

SLICE_BYTES = 1 << 20
TRUNCATED_BATCH = "TRUNCATED_BATCH"
MALFORMED_BATCH = "MALFORMED_BATCH"

_DOCTYPE = b"<!DOCTYPE"
# A start tag at a known offset of a well-formed document; group 1 is "/" for an empty element.
_START_TAG = re.compile(rb"<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")

_TRUNCATION_ERRORS = frozenset(
    xml.parsers.expat.errors.codes[message]
    for message in (
        xml.parsers.expat.errors.XML_ERROR_NO_ELEMENTS,
        xml.parsers.expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        xml.parsers.expat.errors.XML_ERROR_PARTIAL_CHAR,
        xml.parsers.expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    )
)

# Shape problems, most telling first: the one a whole-document check reports first wins.
_ROOT, _ONE_BATCH, _TEXT, _CHILD_TAIL, _NO_CHILD = range(5)

Unreadable = Callable[[str, str, "int | None"], UnreadableInput]
# (line, raw bytes, element) of one Batch child, in document order.
BatchChild = tuple[int, bytes, Any]


def read_batch(
    pieces: Iterable[bytes],
    *,
    first_line: int,
    unreadable: Unreadable,
    fixml_tags: frozenset[str],
    batch_tags: frozenset[str],
) -> Iterator[BatchChild]:
    """Every child of the Batch document made of ``pieces``, which starts on ``first_line``.

    ``unreadable(reason, message, line)`` builds the error raised for the whole document.
    """
    reader = _BatchReader(first_line, unreadable, fixml_tags, batch_tags)
    return reader.run(pieces)


class _BatchReader:
    """State of one pass over one Batch document; not shared between threads."""

    def __init__(
        self,
        first_line: int,
        unreadable: Unreadable,
        fixml_tags: frozenset[str],
        batch_tags: frozenset[str],
    ) -> None:
        self.first_line = first_line
        self.unreadable = unreadable
        self.fixml_tags = fixml_tags
        self.batch_tags = batch_tags
        self.tree = etree.XMLPullParser(events=("start", "end"), **PARSER_OPTIONS)
        self.expat = xml.parsers.expat.ParserCreate()
        self.expat.StartElementHandler = self._expat_start
        self.expat.EndElementHandler = self._expat_end
        # The bytes still wanted: buf[0] is byte ``base`` of the document.
        self.buf = bytearray()
        self.base = 0
        # expat's side: element depth, the open child, finished children's spans.
        self.level = 0
        self.root_closed = False
        self.mark = 0  # where the token of expat's last event at depth 3 or less starts
        self.open_child: tuple[int, int, bool] | None = None
        self.spans: deque[tuple[int, int, int]] = deque()
        # lxml's side.
        self.depth = 0
        self.root: Any = None
        self.batch: Any = None
        self.root_children = 0
        self.children = 0
        self.last_child: Any = None  # finished, its tail text not yet final
        self.ready: deque[Any] = deque()
        self.paired = 0
        # What went wrong, if anything.
        self.doctype = False
        self.tree_error: etree.XMLSyntaxError | None = None
        self.expat_error: xml.parsers.expat.ExpatError | None = None
        self.shape: tuple[int, str, int] | None = None

    @property
    def failed(self) -> bool:
        return (
            self.doctype
            or self.tree_error is not None
            or self.expat_error is not None
            or self.shape is not None
        )

    # -- the stream -------------------------------------------------------------------------------

    def run(self, pieces: Iterable[bytes]) -> Iterator[BatchChild]:
        tail = b""
        for data in _slices(pieces):
            if self.doctype:
                continue  # only read on: the source checks every byte
            if _DOCTYPE in tail + data[: len(_DOCTYPE)] or _DOCTYPE in data:
                self.doctype = True
                self._drop_everything()
                continue
            tail = data[-len(_DOCTYPE) :]
            yield from self._feed(data, final=False)
        if not self.doctype:
            yield from self._feed(b"", final=True)
        self._raise_problem()
        if self.ready or self.spans:  # pragma: no cover - both parsers read the same document
            raise EngineBug(
                f"expat saw {self.paired + len(self.spans)} Batch children, lxml {self.children}"
            )

    def _feed(self, data: bytes, *, final: bool) -> Iterator[BatchChild]:
        if not self.failed:
            self.buf += data
        if self.expat_error is None:
            try:
                self.expat.Parse(data, final)
            except xml.parsers.expat.ExpatError as exc:
                self.expat_error = exc
        if self.tree_error is None:
            try:
                if final:
                    self.tree.close()
                else:
                    self.tree.feed(data)
            except etree.XMLSyntaxError as exc:
                self.tree_error = exc
            self._tree_events()
        if self.failed:
            self._drop_everything()
            return
        while self.ready and self.spans:
            element = self.ready.popleft()
            begin, end, line = self.spans.popleft()
            self.paired += 1
            raw = bytes(self.buf[begin - self.base : end - self.base])
            self.batch.remove(element)  # the tree keeps no finished child
            yield self.first_line + line - 1, raw, element
        keep = self.mark
        if self.spans:
            keep = min(keep, self.spans[0][0])
        if self.open_child is not None:
            keep = min(keep, self.open_child[0])
        if keep > self.base:
            del self.buf[: keep - self.base]
            self.base = keep

    def _drop_everything(self) -> None:
        """After a problem: keep no bytes and no children (only finished ones leave the tree)."""
        self.buf = bytearray()
        self.spans.clear()
        while self.ready:
            self.batch.remove(self.ready.popleft())

    def _raise_problem(self) -> None:
        first = self.first_line
        if self.doctype:
            raise self.unreadable(MALFORMED_BATCH, "a DOCTYPE is not allowed", first)
        if self.tree_error is not None:
            exc = self.tree_error
            line = first + exc.lineno - 1 if exc.lineno else None
            error = self.expat_error
            if error is not None and error.code in _TRUNCATION_ERRORS and not self.root_closed:
                raise self.unreadable(
                    TRUNCATED_BATCH, f"the Batch document ends early ({exc.msg})", line
                )
            raise self.unreadable(
                MALFORMED_BATCH, f"the Batch document is not well-formed XML: {exc.msg}", line
            )
        if self.shape is not None:
            _, message, line = self.shape
            raise self.unreadable(MALFORMED_BATCH, message, line)
        if self.expat_error is not None:  # pragma: no cover - lxml accepted it
            raise self.unreadable(
                MALFORMED_BATCH,
                f"the Batch document is not well-formed XML: {self.expat_error}",
                first,
            )

    # -- lxml: the tree and its shape -------------------------------------------------------------

    def _problem(self, rank: int, message: str, line: int | None = None) -> None:
        if self.shape is None or rank < self.shape[0]:
            self.shape = (rank, message, line if line is not None else self.first_line)

    def _tree_events(self) -> None:
        for event, element in self.tree.read_events():
            if event == "start":
                self.depth += 1
                if self.depth <= 3:
                    self._start(self.depth, element)
            else:
                if self.depth <= 3:
                    self._end(self.depth, element)
                self.depth -= 1

    def _start(self, depth: int, element: Any) -> None:
        if depth == 1:
            self.root = element
            if element.tag not in self.fixml_tags:
                self._problem(_ROOT, f"root element <{local_name(element.tag)}> is not FIXML")
        elif depth == 2:
            self.root_children += 1
            if self.root_children > 1 or element.tag not in self.batch_tags:
                self._problem(_ONE_BATCH, "the FIXML document must hold exactly one Batch")
                return
            self.batch = element
            if has_text(self.root.text):
                self._problem(_TEXT, "text outside any element")
        elif element.getparent() is self.batch:
            if self.children == 0 and has_text(self.batch.text):
                self._problem(_TEXT, "text outside any element")
            self._settle_last_child()

    def _end(self, depth: int, element: Any) -> None:
        if depth == 3 and element.getparent() is self.batch:
            self.children += 1
            self.last_child = element
        elif depth == 2 and element is self.batch:
            if self.children == 0 and has_text(self.batch.text):
                self._problem(_TEXT, "text outside any element")
            self._settle_last_child()
        elif depth == 1:
            if self.root_children == 0:
                self._problem(_ONE_BATCH, "the FIXML document must hold exactly one Batch")
            elif self.batch is not None:
                if has_text(self.batch.tail):
                    self._problem(_TEXT, "text outside any element")
                if self.children == 0:
                    self._problem(_NO_CHILD, "the Batch holds no PosRpt")

    def _settle_last_child(self) -> None:
        """The last finished child's tail is final now: check it, then it may be handed out."""
        child = self.last_child
        if child is None:
            return
        self.last_child = None
        if has_text(child.tail):
            line = self.first_line + (child.sourceline or 1) - 1
            self._problem(
                _CHILD_TAIL, f"text after <{local_name(child.tag)}> inside the Batch", line
            )
        if self.failed:
            self.batch.remove(child)
        else:
            self.ready.append(child)

    # -- expat: byte offsets ----------------------------------------------------------------------

    def _expat_start(self, _name: str, _attrs: object) -> None:
        self.level += 1
        if self.level > 3:
            return  # inside a child: its span is all that is wanted
        at = self.expat.CurrentByteIndex
        self.mark = at
        if self.level == 3 and not self.failed:
            tag = _START_TAG.match(self.buf, at - self.base)
            empty = tag is not None and tag.group(1) == b"/"
            self.open_child = (at, self.expat.CurrentLineNumber, empty)

    def _expat_end(self, _name: str) -> None:
        if self.level > 3:
            self.level -= 1
            return
        at = self.expat.CurrentByteIndex
        self.mark = at
        if self.level == 3 and self.open_child is not None:
            begin, line, empty = self.open_child
            self.open_child = None
            if not self.failed:
                stop = at if empty else self.buf.index(b">", at - self.base) + 1 + self.base
                self.spans.append((begin, stop, line))
        self.level -= 1
        self.root_closed = self.root_closed or self.level == 0


def _slices(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The bytes of ``pieces`` again, regrouped into slices of about ``SLICE_BYTES``."""
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        if len(piece) > SLICE_BYTES:
            if pending:
                yield b"".join(pending)
                pending, size = [], 0
            view = memoryview(piece)
            for i in range(0, len(piece), SLICE_BYTES):
                yield bytes(view[i : i + SLICE_BYTES])
            continue
        pending.append(piece)
        size += len(piece)
        if size >= SLICE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)
