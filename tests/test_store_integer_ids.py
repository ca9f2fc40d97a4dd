"""Dictionaries of integer ids (contact ids written as numbers) are looked
up by exact integer keys: the codes are those the string lookups give, in
every mix of integer and other values, forks and dictionary sizes; only
strings that write an int64 canonically count as integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.store import Store, sources
from audience.runtime.store.coerce import coerce
from audience.runtime.store.dictionaries import HASHED_MIN, DictState
from audience.runtime.store.hashing import integer_keys
from tests.helpers.store_data import dump, schema

CANONICAL = ["0", "7", "-7", "10", "9223372036854775807", "-9223372036854775808"]
NOT_CANONICAL = ["", "-", "-0", "007", "+7", "7 ", " 7", "1e3", "9223372036854775808"]
NOT_CANONICAL += ["-9223372036854775809", "99999999999999999999", "7a", "١٢", "0x10"]


def test_only_canonical_int64_strings_have_integer_keys() -> None:
    keys = integer_keys(pa.array(CANONICAL + NOT_CANONICAL), skip=True)
    assert keys is not None
    assert keys[1].tolist() == [True] * len(CANONICAL) + [False] * len(NOT_CANONICAL)
    assert len(set(keys[0][keys[1]].tolist())) == len(CANONICAL)  # a bijection
    assert integer_keys(pa.array([*CANONICAL, "x"])) is None
    got = integer_keys(pa.array(CANONICAL))
    assert got is not None and got[1].all()
    # a key does not depend on where the string sits
    again = integer_keys(pa.array(CANONICAL[::-1]))
    assert again is not None and again[0].tolist() == got[0].tolist()[::-1]


def _exact(state: DictState, key: str, values: pa.Array) -> np.ndarray:
    return state._encode_exact(key, state.get(key), values)


VALUE = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.integers(0, 3 * HASHED_MIN).map(str),
    st.sampled_from([*NOT_CANONICAL[:6], "a", "b@x.org"]),
)


@settings(max_examples=30, deadline=None)
@given(
    base=st.integers(HASHED_MIN, HASHED_MIN + 50),
    extra=st.lists(VALUE, max_size=10),
    batches=st.lists(
        st.tuples(st.lists(VALUE, min_size=1, max_size=40), st.integers(0, 2 * HASHED_MIN)),
        min_size=1,
        max_size=5,
    ),
    fork=st.booleans(),
)
def test_integer_lookups_give_the_codes_of_exact_ones(
    base: int, extra: list[str], batches: list[tuple[list[str], int]], fork: bool
) -> None:
    start = pa.array(list(dict.fromkeys([str(i) for i in range(0, 2 * base, 2)] + extra)))
    ours, exact = DictState({"k": start}), DictState({"k": start})
    for values, run in batches:
        # a run of consecutive ids makes batches big enough to build the table
        batch = pa.array(values + [str(i) for i in range(run)])
        if fork:
            ours = ours.fork()
        got = ours.encode("k", batch)
        want = _exact(exact, "k", batch)
        assert got.tolist() == want.tolist()
        assert ours.get("k").to_pylist() == exact.get("k").to_pylist()


def test_a_code_a_fork_added_is_compared() -> None:
    """The integer table is shared with forks: a code another fork added is
    only trusted once the strings agree."""
    start = pa.array([str(i) for i in range(HASHED_MIN)])
    state = DictState({"k": start})
    state.encode("k", start)  # builds the table
    a, b = state.fork(), state.fork()
    assert a.encode("k", pa.array(["-5"])).tolist() == [HASHED_MIN]
    # b adds a non-integer at that code, then meets a's integer
    assert b.encode("k", pa.array(["x"] * HASHED_MIN)).tolist() == [HASHED_MIN] * HASHED_MIN
    assert b.encode("k", pa.array(["-5", "3"])).tolist() == [HASHED_MIN + 1, 3]
    assert b.get("k").slice(HASHED_MIN).to_pylist() == ["x", "-5"]


def test_the_next_ingest_reuses_the_table() -> None:
    """A state made from the stored dictionary and the store's tables (the
    next ingest) finds the integers the last one added."""
    start = pa.array([str(i) for i in range(HASHED_MIN)])
    first = DictState({"k": start})
    first.encode("k", pa.array([str(i) for i in range(HASHED_MIN, 2 * HASHED_MIN)]))
    again = DictState({"k": first.get("k")}, first.tables)
    small = pa.array(["17", str(2 * HASHED_MIN - 1), "-1"])
    assert again.encode("k", small).tolist() == [17, 2 * HASHED_MIN - 1, 2 * HASHED_MIN]
    assert again.tables["k#integers"][0] == 2 * HASHED_MIN + 1  # by the integer table


@settings(max_examples=40, deadline=None)
@given(
    ints=st.lists(st.one_of(st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1)), max_size=60),
    nulls=st.booleans(),
    width=st.sampled_from([pa.int64(), pa.int32(), pa.int8(), pa.uint16(), pa.uint64()]),
)
def test_integer_ids_become_the_dictionary_arrow_gives(
    ints: list[int], nulls: bool, width: pa.DataType
) -> None:
    """An integer id column is kept as a dictionary of its values' text:
    values in order of first appearance and row indices, as Arrow has them."""
    bits = width.bit_width
    signed = pa.types.is_signed_integer(width)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = [min(max(i, lo), hi) for i in ints]
    col = pa.array([None if nulls and k % 5 == 2 else v for k, v in enumerate(values)], width)
    got, bad = coerce(col, "string", numbers_as_text=True, keep_dictionary=True)
    want = pc.dictionary_encode(col)
    assert not bad.any()
    assert got.type == pa.dictionary(pa.int32(), pa.string())
    assert got.dictionary.to_pylist() == [str(v) for v in want.dictionary.to_pylist()]
    assert got.indices.to_pylist() == want.indices.to_pylist()


def test_integer_ids_through_big_and_logged_ingests_give_the_store_text_gives(
    tmp_path: Path,
) -> None:
    """A big ingest of integer contact ids, then small ones (the log, with
    its copy of the store's tables), then a big one again: the store the
    same ids written as strings make, codes included."""
    n = 3 * HASHED_MIN
    rng = np.random.default_rng(7)
    steps = [rng.integers(-n, n, size=n), *(rng.integers(-2 * n, 2 * n, size=3) for _ in range(4))]
    steps.append(rng.integers(-3 * n, 3 * n, size=n))

    def table(ids: np.ndarray, text: bool) -> pa.Table:
        cids = pa.array([str(i) for i in ids.tolist()]) if text else pa.array(ids, pa.int64())
        ts = pa.array(np.full(len(ids), 1_760_000_000_000), pa.timestamp("ms", tz="UTC"))
        return pa.table({"contact_id": cids, "type": ["purchased"] * len(ids), "ts": ts})

    dumps = []
    for text in (True, False):
        store = Store.init(tmp_path / f"text-{text}", schema())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sources, "CHUNK_ROWS", HASHED_MIN)
            for ids in steps:
                store.ingest_events(table(ids, text))
        dumps.append(dump(store.snapshot()))
    assert dumps[0] == dumps[1]
