"""How the files a firm gets back for one upload are named (every flow: dpl, pmc, ebe).

The rule
--------
Every output of an upload is ``<base>.<kind>`` in the flow's ``outbound/<flow>/`` folder, where
``<kind>`` says what it is (``receipt.json``, ``rejects.fixml``, ``results.csv``, ...) and
``<base>`` is the uploaded file's *full* name (``same.fixml`` and ``same.xml`` get
``same.fixml.receipt.json`` and ``same.xml.receipt.json``: two names never share outputs).

A name is re-used when a firm uploads ``a.fixml`` again while outputs of the earlier ``a.fixml``
are still in the folder (not fetched and removed). Those outputs are never overwritten or
deleted: the new upload's base becomes ``a.fixml.2`` (then ``.3``, ...), the first base with no
output in the folder. Once a firm has removed the earlier outputs, the plain name is free again.
A base is taken when any entry of the folder starts with ``<base>.``, so an upload literally named
``a.fixml.2`` can never collide with the second ``a.fixml`` either.

The base is chosen once per upload and kept in the ledger (``files.output_base``), so processing
the same upload again after a crash rewrites the same outputs instead of choosing a new name.
Choices are serialised in this process, and a base chosen but not yet written counts as taken.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

_LOCK = threading.Lock()
_RESERVED: set[tuple[str, str]] = set()


def _taken(folder: Path, base: str, entries: list[str]) -> bool:
    prefix = base + "."
    return (str(folder), base) in _RESERVED or any(e.startswith(prefix) for e in entries)


def choose_output_base(folder: Path, name: str) -> str:
    """The base for a new upload called ``name`` whose outputs go to ``folder`` (see the rule).

    The base stays reserved until ``release_output_base``; call that once the outputs are written
    (or the upload is given up)."""
    name = Path(name).name or "upload"
    with _LOCK:
        try:
            entries = os.listdir(folder)
        except FileNotFoundError:
            entries = []
        base = name
        n = 1
        while _taken(folder, base, entries):
            n += 1
            base = f"{name}.{n}"
        _RESERVED.add((str(folder), base))
        return base


def release_output_base(folder: Path, base: str) -> None:
    with _LOCK:
        _RESERVED.discard((str(folder), base))


class _BaseStore(Protocol):
    def output_base(self, file_id: int) -> str | None: ...

    def set_output_base(self, file_id: int, base: str) -> None: ...


@contextlib.contextmanager
def upload_output_base(ledger: _BaseStore, file_id: int, name: str, folder: Path) -> Iterator[str]:
    """The output base of upload ``file_id`` (chosen and recorded on first use), reserved while
    the caller writes its outputs into ``folder``."""
    known = ledger.output_base(file_id)
    if known is not None:
        yield known
        return
    base = choose_output_base(folder, name)
    try:
        ledger.set_output_base(file_id, base)
        yield base
    finally:
        release_output_base(folder, base)
