"""lxml set up for untrusted input, and the small element functions every DPL reader shares.

Every parser of a DPL file, whether it parses one line (:mod:`engine.dpl.fixml`) or pulls a Batch
document (:mod:`engine.dpl.batch`), is made with ``PARSER_OPTIONS``: no entity resolution, no
network, no DTD, no huge trees, comments and processing instructions dropped, no recovery.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
    "recover": False,
}


def make_parser() -> Any:
    """A new lxml parser for untrusted XML: no entities, no network, no DTD, no huge trees."""
    return etree.XMLParser(**PARSER_OPTIONS)


def local_name(tag: object) -> str:
    """``{ns}Name`` -> ``Name``; non-string tags (never produced by our parser) -> ''."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def has_text(text: str | None) -> bool:
    """Whether an element's text or tail holds more than white space."""
    return text is not None and text != "" and not text.isspace()
