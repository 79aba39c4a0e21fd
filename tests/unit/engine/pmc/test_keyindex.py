"""The hash index of a set's keys agrees with a sorted search, collisions and misses included."""

from __future__ import annotations

import numpy as np

from engine.pmc.keyindex import KeyIndex, pack_bytes


def test_find_matches_sorted_search_with_collisions_and_misses() -> None:
    rng = np.random.default_rng(7)
    # keys spaced by 2**40 differ only in high bits: many share a home slot, so probing is used
    keys = np.unique(np.concatenate([rng.integers(0, 10**12, 3000), np.arange(200) << 40, [0, -5]]))
    values = np.concatenate([rng.choice(keys, 20_000), rng.integers(-(10**12), 10**12, 5000)])
    values = np.concatenate([values, [0, -5, -1, 1 << 50]])
    pos = np.minimum(np.searchsorted(keys, values), keys.size - 1)
    want = np.where(keys[pos] == values, pos, -1)
    got = KeyIndex(keys).find(values)
    assert np.array_equal(got, want)
    assert (got >= 0).sum() > 20_000


def test_zero_not_a_key_is_not_found() -> None:
    index = KeyIndex(np.asarray([3, 7, 11], dtype=np.int64))
    assert index.find(np.asarray([0, 7, 3, 12], dtype=np.int64)).tolist() == [-1, 1, 0, -1]
    assert KeyIndex(np.zeros(0, dtype=np.int64)).find(np.asarray([1])).tolist() == [-1]


def test_pack_bytes_distinct_and_refuses_what_it_cannot_pack() -> None:
    words = np.asarray(["", "A", "AB", "BA", "ABCDEFGH", "é"], dtype=np.str_)
    packed = pack_bytes(words)
    assert packed is not None and np.unique(packed).size == words.size
    assert pack_bytes(np.asarray(["ABCDEFGHI"], dtype=np.str_)) is None
    assert pack_bytes(np.asarray(["Ā"], dtype=np.str_)) is None
    # a wide column whose strings are short still packs
    wide = np.asarray(["ABCDEFGHIJ", "AB"], dtype=np.str_)[1:]
    assert pack_bytes(wide) is not None


def test_set_lookup_by_hash_equals_sorted_search(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from engine.pmc.theo.model import TheoSet
    from tests.benchmarks.bench_margin import synthetic_positions, synthetic_set

    theo = synthetic_set(40, per_group=20)
    b = synthetic_positions(theo, 6000, n_accounts=12)
    cols = (b.account_type, b.symbol, b.security_type, b.put_call, b.series_date, b.strike)
    by_hash = theo.lookup_columns(*cols)
    monkeypatch.setattr(TheoSet, "MANY_RECORDS", 10**9)
    by_search = theo.lookup_columns(*cols)
    assert np.array_equal(by_hash, by_search) and (by_hash >= 0).sum() > 5000


def test_factorize_by_sort_and_hashed_strings_match_unique() -> None:
    from engine.pmc.grouping import factorize, factorize_strings

    rng = np.random.default_rng(3)
    keys = rng.integers(0, 5_000_000, 70_000)  # key space > 8x the keys: the sorted path
    uniq, inv = factorize(keys, 5_000_000)
    want_u, want_i = np.unique(keys, return_inverse=True)
    assert np.array_equal(uniq, want_u) and np.array_equal(inv, want_i.reshape(-1))
    words = np.asarray([f"ACCT{i}" for i in rng.integers(0, 300, 5000)], dtype="<U25")
    su, si = factorize_strings(words)  # 300 distinct in 5000: the hashed path
    wu, wi = np.unique(words, return_inverse=True)
    assert np.array_equal(su, wu) and np.array_equal(si, wi.reshape(-1))


def test_pack_dates_distinct_and_refuses_other_strings() -> None:
    from engine.pmc.keyindex import pack_dates

    days = np.asarray(["", "2026-01-02", "2026-01-20", "2026-10-02", "2062-01-02"], dtype="<U10")
    packed = pack_dates(days)
    assert packed is not None and np.unique(packed).size == days.size and packed[0] == 0
    for odd in ("2026/01/02", "20260102", "2026-1-2", "\x00026-01-02"):
        assert pack_dates(np.asarray(["2026-01-02", odd], dtype="<U10")) is None
    assert pack_dates(np.asarray(["2026-01-02"], dtype="<U11")) is None


def test_factorize_strings_finds_values_its_sample_missed() -> None:
    """Large columns are factorised from a sample of their rows; values only on rows the
    sample skipped (a third firm on one line, rare accounts, a column of nearly all distinct
    values) still come out exactly as ``np.unique`` gives them."""
    from engine.pmc.grouping import factorize_strings

    rng = np.random.default_rng(5)
    n = 200_000
    firms = np.where(rng.random(n) < 0.5, "5", "161").astype("<U5")
    firms[12_345] = "00042"  # not on the sample's stride
    accounts = np.asarray([f"A{i}" for i in rng.integers(0, 500, n)], dtype="<U12")
    rare = rng.choice(n, 300, replace=False)
    accounts[rare] = [f"RARE{i}" for i in range(300)]
    distinct = np.asarray([f"X{i}" for i in rng.permutation(n)], dtype="<U9")
    for column in (firms, accounts, distinct):
        got_u, got_i = factorize_strings(column)
        want_u, want_i = np.unique(column, return_inverse=True)
        assert np.array_equal(got_u, want_u) and np.array_equal(got_i, want_i.reshape(-1))
