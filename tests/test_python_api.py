"""The embedded Python API of SPEC 8: audience.open, Store.from_arrow, store.compile."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import audience
from audience.dsl.errors import DslError
from audience.runtime.saved import segment_from_text
from audience.schema import Schema

EXAMPLES = Path(audience.__file__).parent / "examples"
NOW = "2026-11-01T12:00:00Z"


@pytest.fixture(scope="module")
def store() -> audience.Store:
    events = pa.table(
        {
            "id": ["e1", "e2", "e3"],
            "contact_id": ["angela", "angela", "bruno"],
            "type": ["viewed_product", "viewed_product", "purchased"],
            "ts": pa.array([1_793_000_000_000, 1_793_100_000_000, 1_793_200_000_000]).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "product_name": ["Red Shoes", "Red Shoes", None],
        }
    )
    return audience.Store.from_arrow(events, None, Schema.load(EXAMPLES / "maison.toml"))


def test_compile_evaluate_ids_arrow(store: audience.Store) -> None:
    seg = store.compile('did viewed_product where product_name = "Red Shoes" at least 2 times')
    hits = seg.evaluate(as_of=NOW)
    assert len(hits) == 1 and hits.ids() == ["angela"]
    assert hits.to_arrow().column("contact_id").to_pylist() == ["angela"]
    assert seg.evaluate(as_of=NOW, explain=True).explain["count"] == 1


def test_a_repeated_text_is_compiled_once(store: audience.Store) -> None:
    text = "did purchased in last 30 days"
    assert store.compile(text) is store.compile(text)
    spaced = store.compile("did   purchased\n in last 30 days")
    assert spaced.compiled is store.compile(text).compiled  # same plan: the AST is the key


def test_a_text_of_several_definitions_is_refused(store: audience.Store) -> None:
    with pytest.raises(DslError) as err:
        store.compile('segment "A" { did purchased }\nsegment "B" { did purchased }')
    assert err.value.first.code == "not_one_segment"
    with pytest.raises(DslError) as err:
        segment_from_text("A", 'segment "Z" { did purchased }')
    assert err.value.first.code == "name_mismatch"
    assert segment_from_text("A", "did purchased").name == "A"


def test_open_reads_a_store_directory(tmp_path: Path) -> None:
    audience.Store.init(tmp_path / "shop", EXAMPLES / "maison.toml")
    opened = audience.open(str(tmp_path / "shop"))
    assert len(opened.compile("did purchased").evaluate(as_of=NOW)) == 0
