"""A FIXML file's physical layer: byte chunks of any size -> checked, numbered lines.

Theory of operation. ``LineBlockReader.blocks`` cuts the chunks at their last line feed, so it
hands on runs of complete lines (``LINES``) about one per chunk; the unterminated rest of the input
comes last (``FINAL``). Every chunk is checked on the way (``BINARY``: a NUL byte; ``ENCODING``: not
UTF-8, or a UTF-16/32 byte order mark) and a file with nothing in it is ``EMPTY``; the UTF-8 byte
order mark is dropped. A line still unfinished after ``PIECE_BYTES`` is shown once as a look at
its first bytes (``PARTIAL``) while ``deciding`` (the reader of records is deciding the file's
mode), and handed on in pieces of that size when ``in_pieces`` (Batch mode), so that a huge line is
never held whole. ``lines`` gives the same input one line at a time, and ``rest`` says where the
rest of the current block starts, for a reader that switches from lines to whole blocks
(:mod:`engine.dpl.fixml`).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from engine.dpl.batch import Unreadable

# Reasons of UnreadableInput raised here.
EMPTY = "EMPTY"
BINARY = "BINARY"
ENCODING = "ENCODING"

_BOM_UTF8 = codecs.BOM_UTF8
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)

# A line still unfinished at this size is shown to the mode decision as it is (a Batch on one
# line must not be held whole), and in Batch mode handed on in pieces of this size.
PIECE_BYTES = 1 << 20
# What the physical layer hands on: complete lines, the unterminated last line, a look at a
# line not finished yet.
LINES, FINAL, PARTIAL = 0, 1, 2


class Line(NamedTuple):
    number: int
    content: bytes
    terminator: bytes
    # The first bytes of a line not finished yet: while the mode is being decided, a look at
    # them (the line comes again whole, or in pieces in Batch mode); in Batch mode, a piece.
    partial: bool = False


class LineBlockReader:
    """One pass over the chunks of one file; not shared between threads.

    ``unreadable(reason, message, line)`` builds the error raised for the whole file.
    """

    def __init__(self, chunks: Iterable[bytes], unreadable: Unreadable) -> None:
        self.unreadable = unreadable
        self.deciding = True  # the mode is not decided yet: one look at a long first line
        self.in_pieces = False  # Batch mode: long lines are handed on in pieces
        self.rest: tuple[int, bytes, int] | None = None
        self.blocks: Iterator[tuple[int, bytes, int]] = self._read_blocks(chunks)

    def _read_blocks(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes, int]]:
        """``(lines before, data, kind)``: ``data`` is a run of complete lines, each ending with
        LF (``LINES``), the unterminated rest of the input, one line (``FINAL``), or the first
        bytes of a line not finished yet (``PARTIAL``, see ``Line.partial``)."""
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        # The unfinished last line, as pieces: joined once its end arrives, so that a huge line
        # fed in many chunks costs linear, not quadratic, time. It never holds a newline.
        carry: list[bytes] = []
        carried = 0  # bytes in carry
        number = 0
        offset = 0  # bytes of the input consumed before the current chunk
        started = False
        head = b""
        for raw_chunk in chunks:
            chunk = bytes(raw_chunk)
            if not started:
                # Hold the first bytes until a BOM can be recognised whole.
                head += chunk
                if len(head) < 4:
                    continue
                chunk, started = self._strip_bom(head), True
                offset = len(head) - len(chunk)
            if not chunk:
                continue
            self._check_text(decoder, chunk, offset, number)
            offset += len(chunk)
            if b"\n" not in chunk:
                carry.append(chunk)
                carried += len(chunk)
                if carried >= PIECE_BYTES and (self.deciding or self.in_pieces):
                    joined = b"".join(carry)
                    if self.in_pieces:
                        carry.clear()
                        carried = 0
                    else:
                        carry[:] = [joined]
                        self.deciding = False
                    yield number, joined, PARTIAL
                continue
            cut = chunk.rfind(b"\n") + 1
            if carry:
                carry.append(chunk[:cut])
                block = b"".join(carry)
                carry.clear()
            else:
                block = chunk if cut == len(chunk) else chunk[:cut]
            carried = len(chunk) - cut
            if carried:
                carry.append(chunk[cut:])
            yield number, block, LINES
            number += block.count(b"\n")
        if not started:
            chunk = self._strip_bom(head)
            offset = len(head) - len(chunk)
            if head and not chunk:
                raise self.unreadable(EMPTY, "the file holds only a byte order mark", None)
            if not head:
                raise self.unreadable(EMPTY, "the file is empty (0 bytes)", None)
            self._check_text(decoder, chunk, offset, number)
            carry = [chunk]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self.unreadable(
                ENCODING, "not UTF-8: the file ends inside a multi-byte character", number + 1
            ) from None
        if carry:
            yield number, b"".join(carry), FINAL

    def lines(self) -> Iterator[Line]:
        """The lines of ``self.blocks``; ``self.rest`` says where the rest of the current
        block starts (line number, block, offset), for a switch to whole blocks."""
        for number, block, kind in self.blocks:
            if kind != LINES:
                self.rest = None
                yield Line(number + 1, block, b"", partial=kind == PARTIAL)
                continue
            start, size = 0, len(block)
            while start < size:
                end = block.index(b"\n", start)
                part = block[start:end]
                start = end + 1
                number += 1
                self.rest = (number + 1, block, start)
                if part.endswith(b"\r"):
                    yield Line(number, part[:-1], b"\r\n")
                else:
                    yield Line(number, part, b"\n")
            self.rest = None

    def _strip_bom(self, head: bytes) -> bytes:
        for bom, encoding in _WIDE_BOMS:
            if head.startswith(bom):
                raise self.unreadable(
                    ENCODING, f"the file is {encoding} (byte order mark); expected UTF-8", 1
                )
        return head[len(_BOM_UTF8) :] if head.startswith(_BOM_UTF8) else head

    def _check_text(self, decoder: Any, chunk: bytes, offset: int, lines_before: int) -> None:
        """BINARY or ENCODING for a chunk; ``lines_before`` complete lines precede it."""
        nul = chunk.find(b"\x00")
        if nul >= 0:
            line = lines_before + chunk[:nul].count(b"\n") + 1
            raise self.unreadable(
                BINARY, f"NUL byte at byte offset {offset + nul}: a binary file, not text", line
            )
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            # exc.start indexes the decoder's pending bytes followed by this chunk.
            pending = len(exc.object) - len(chunk)
            at = max(exc.start - pending, 0)
            line = lines_before + chunk[:at].count(b"\n") + 1
            bad = bytes(exc.object[exc.start : exc.start + 4])
            raise self.unreadable(
                ENCODING,
                f"not UTF-8: invalid byte(s) {bad!r} at byte offset {offset + at}",
                line,
            ) from None
