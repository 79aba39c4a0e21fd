"""The fast path reads only records in the exact Appendix A shape (the rest take the tree walk)."""

from __future__ import annotations

from engine.dpl.fastpath import read_fast

from .support import SEED_CM


def test_plain_records_take_the_fast_path_and_others_the_tree_walk() -> None:
    assert read_fast(SEED_CM) is not None
    assert read_fast(SEED_CM.replace(b"Goldman", b"&#71;oldman")) is None
    assert read_fast(SEED_CM.replace(b'ReqTyp="6" ModelTyp', b'ModelTyp="1" ReqTyp="6" X')) is None
    assert read_fast(SEED_CM.replace(b' Long="100"', b"")) is None
