"""The contrary-intention file as tests see it: every ``CIR_<YYYYMMDD>.fixml`` a test produces is
checked line by line against ``contracts/fixml/contrary-intention-report.xsd`` (lxml XMLSchema)
before the test looks at its values."""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

SCHEMA = (
    Path(__file__).resolve().parents[2] / "contracts" / "fixml" / "contrary-intention-report.xsd"
)
FIXML_NS = "http://www.fixprotocol.org/FIXML-5-0-SP2"
NS = {"f": FIXML_NS}


@functools.cache
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(SCHEMA), parser))


def schema_errors(data: bytes) -> list[str]:
    """Every schema problem of a contrary-intention file, as ``line N: message``."""
    if data and not data.endswith(b"\n"):
        return ["the file does not end with a line feed"]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    problems = []
    for number, line in enumerate(data.split(b"\n")[:-1] if data else [], start=1):
        try:
            doc = etree.fromstring(line, parser)
        except etree.XMLSyntaxError as exc:
            problems.append(f"line {number}: not XML ({exc})")
            continue
        checker = schema()
        if not checker.validate(doc):
            problems += [f"line {number}: {e.message}" for e in checker.error_log]
    return problems


def valid_reports(data: bytes) -> list[etree._Element]:
    """The ``ContIntRpt`` elements of a file that the schema accepts (AssertionError if not)."""
    problems = schema_errors(data)
    assert not problems, "\n".join(problems[:20])
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return [
        etree.fromstring(line, parser).find("f:ContIntRpt", NS)
        for line in data.split(b"\n")
        if line
    ]
