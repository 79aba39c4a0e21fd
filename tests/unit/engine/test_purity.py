"""engine/ imports nothing of gateway/ and does no I/O (an import and call scan)."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "engine"
ALLOWED_TOP = {
    "__future__",
    "abc",
    "bisect",
    "collections",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "hashlib",
    "heapq",
    "io",
    "itertools",
    "math",
    "numbers",
    "operator",
    "re",
    "statistics",
    "string",
    "typing",
    "zoneinfo",
    "numpy",
    "lxml",
    "holidays",
    "engine",
    "csv",
    "codecs",
    "unicodedata",
    "html",
    "xml",
    "json",
    "array",
    "struct",
    "types",
    "fractions",
    "textwrap",
    "copy",
    "secrets",
}
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}
FORBIDDEN_ATTRS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("os", "environ"),
    ("os", "getenv"),
    ("Path", "read_text"),
    ("Path", "read_bytes"),
}


def _modules() -> list[Path]:
    files = sorted(ENGINE.rglob("*.py"))
    assert files, "engine/ has no modules"
    return files


def test_engine_imports_only_pure_modules() -> None:
    bad = []
    for file in _modules():
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] not in ALLOWED_TOP:
                    bad.append(f"{file.name}:{node.lineno} imports {name}")
    assert not bad, bad


def test_engine_does_no_io_or_clock_reads() -> None:
    bad = []
    for file in _modules():
        tree = ast.parse(file.read_text(), filename=str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in FORBIDDEN_CALLS:
                    bad.append(f"{file.name}:{node.lineno} calls {node.func.id}()")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (node.value.id, node.attr) in FORBIDDEN_ATTRS:
                    bad.append(f"{file.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, bad


def test_scan_catches_a_gateway_import(tmp_path: Path) -> None:
    tree = ast.parse("from gateway import app\nimport socket\n")
    found = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    tops = {getattr(n, "module", None) or n.names[0].name for n in found}
    assert tops - ALLOWED_TOP == {"gateway", "socket"}
