"""The shipped files speak only of posgate: no citation of a document that does not ship.

A rule is stated where it applies ("BizDt is one of the two allowed business days"), never as a
pointer to a section, appendix or figure of an outside document. Random seeds (``seed=7``,
``--seed``) are fine; "seed" as the name of a source document is not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED_ROOTS = (
    "engine",
    "gateway",
    "config",
    "contracts",
    "scripts",
    "tests",
    "systemd",
    "packaging",
)
SKIPPED_PARTS = {"__pycache__", ".venv", ".git", "demo-keys", ".pytest_cache", ".mypy_cache"}
SELF = Path(__file__).resolve()

# Built from pieces so that this file does not match itself.
_SECTION = "\u00a7"
CITATION = re.compile(
    "|".join(
        (
            r"(?-i:\bS" + r"PEC\b)",  # the name in capitals only: "spec" is a common word
            _SECTION,  # any section sign
            r"\bs" + r"eed(?:'s|\s+0\d\d|\s+is\s+silent)",  # a document called the seed
            r"\bthe\s+s" + r"eed\b(?!\s*(?:=|value|of\s+the\s+random))",
            r"\bAppendi" + r"x\s+[A-Z]\b",
            r"\bFigur" + r"e\s+\d+\b",
        )
    ),
    re.IGNORECASE,
)


def shipped_text_files() -> list[Path]:
    files = [p for p in ROOT.glob("*.md")]
    files += [ROOT / name for name in ("pyproject.toml", "setup.py", "MANIFEST.in")]
    for top in SCANNED_ROOTS:
        base = ROOT / top
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if path.is_file() and not SKIPPED_PARTS.intersection(path.parts) and path != SELF:
                files.append(path)
    return sorted(files)


def citations(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []  # binary files (PDF samples, images) carry no prose
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if CITATION.search(line):
            found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_the_scan_covers_the_shipped_files() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in shipped_text_files()}
    assert "README.md" in names
    assert "engine/dpl/validate.py" in names
    assert "config/posgate.toml" in names
    assert any(n.startswith("tests/data/") for n in names)


@pytest.mark.parametrize(
    "line",
    [
        "Every record is checked against S" + "PEC \u00a76.3.",
        "The layout is the s" + "eed's Appendi" + "x A.",
        "Positions (s" + "eed 002): the model.",
        "Where the s" + "eed is silent, posgate decides.",
        "as on the results screen (Figur" + "e 4)",
    ],
)
def test_a_citation_is_recognised(line: str) -> None:
    assert CITATION.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "def build_set(n: int, firms: int, seed: int = 7) -> ExpiringSet:",
        "scripts/chaos kill [--seed 12]",
        "rng = np.random.default_rng(seed)",
        "def seed_cycle(ledger: Ledger) -> list[str]:",
        "_FORMAT_SPEC = re.compile(r'%s')",
    ],
)
def test_a_random_seed_is_not_a_citation(line: str) -> None:
    assert not CITATION.search(line)


def test_no_shipped_file_cites_an_outside_document() -> None:
    found = [hit for path in shipped_text_files() for hit in citations(path)]
    assert not found, "state the rule instead of citing a document that does not ship:\n" + (
        "\n".join(found)
    )
