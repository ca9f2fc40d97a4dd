"""The embedded Python API of SPEC 8: audience.open, Store.from_arrow, store.compile."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import audience
from audience.dsl.errors import DslError
from audience.runtime.saved import segment_from_text
from audience.schema import Schema, with_tracking_events

EXAMPLES = Path(audience.__file__).parent / "examples"
NOW = "2026-11-01T12:00:00Z"


@pytest.fixture(scope="module")
def store() -> audience.Node:
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
    return audience.Node.from_arrow(events, None, Schema.load(EXAMPLES / "maison.toml"))


def test_compile_evaluate_ids_arrow(store: audience.Node) -> None:
    seg = store.compile('did viewed_product where product_name = "Red Shoes" at least 2 times')
    hits = seg.evaluate(as_of=NOW)
    assert len(hits) == 1 and hits.ids() == ["angela"]
    assert hits.to_arrow().column("contact_id").to_pylist() == ["angela"]
    assert seg.evaluate(as_of=NOW, explain=True).explain["count"] == 1


def test_a_repeated_text_is_compiled_once(store: audience.Node) -> None:
    text = "did purchased in last 30 days"
    assert store.compile(text) is store.compile(text)
    spaced = store.compile("did   purchased\n in last 30 days")
    assert spaced.compiled is store.compile(text).compiled  # same plan: the AST is the key


def test_a_text_of_several_definitions_is_refused(store: audience.Node) -> None:
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


# ------------------------------------------------------------------ the public names


def test_dir_shows_only_the_public_api() -> None:
    assert dir(audience) == [
        "DslError",
        "Node",
        "Schema",
        "SchemaError",
        "Store",
        "StoreError",
        "__version__",
        "open",
    ]
    for name in ("Any", "TYPE_CHECKING", "annotations", "nope"):
        if name != "annotations":
            with pytest.raises(AttributeError):
                getattr(audience, name)


def test_the_errors_and_schema_are_exported() -> None:
    from audience.runtime.store.errors import StoreError
    from audience.schema import SchemaError

    assert audience.Schema is Schema
    assert audience.DslError is DslError
    assert audience.SchemaError is SchemaError
    assert audience.StoreError is StoreError
    namespace: dict[str, object] = {}
    exec("from audience import *", namespace)
    assert {"Store", "Schema", "DslError", "SchemaError", "StoreError", "open"} <= set(namespace)
    with pytest.raises(audience.SchemaError):
        audience.Schema.from_toml("[profile]\nx = 'nope'\n")


def test_import_audience_stays_cheap() -> None:
    # A fresh process: numpy and pyarrow load on first use of the store only.
    code = (
        "import sys, audience; heavy = {'numpy', 'pyarrow', 'lark'} & set(sys.modules);"
        "audience.Schema; audience.DslError; audience.SchemaError;"
        "heavy |= {'numpy', 'pyarrow'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ from_arrow's schema

TS = pa.timestamp("ms", tz="UTC")


def _events() -> pa.Table:
    return pa.table(
        {
            "id": ["e1", "e2", "e3"],
            "contact_id": ["angela", "angela", "bruno"],
            "type": pa.array(["viewed_product", "purchased", "viewed_product"]).dictionary_encode(),
            "ts": pa.array([1_793_000_000_000, 1_793_100_000_000, 1_793_200_000_000]).cast(TS),
            "properties": pa.array(
                [
                    {"product_name": "Red Shoes", "price": 90.0},
                    {"product_name": None, "price": 120.5},
                    {"product_name": "Blue Bag", "price": None},
                ]
            ),
            "quantity": pa.array([None, 2, None], pa.int32()),
        }
    )


def _profiles() -> pa.Table:
    return pa.table(
        {
            "contact_id": ["angela", "bruno"],
            "city": pa.array(["Milan", "Rome"]).dictionary_encode(),
            "loyalty_points": pa.array([10, 0], pa.int64()),
            "newsletter": [True, False],
            "birth_date": pa.array([dt.date(1990, 5, 1), None], pa.date32()),
            "signup_ts": pa.array([1_700_000_000_000, None]).cast(pa.timestamp("us")),
            "tags": pa.array([["vip"], []], pa.list_(pa.string())),
            "score": pa.array([1.5, 2.0], pa.float32()),
            "nothing": pa.nulls(2),
        }
    )


def test_from_arrow_without_a_schema_reads_one_off_the_types() -> None:
    store = audience.Node.from_arrow(_events(), _profiles())
    assert store.schema == Schema(
        profile={
            "city": "string",
            "loyalty_points": "int",
            "newsletter": "bool",
            "birth_date": "date",
            "signup_ts": "datetime",
            "tags": "list<string>",
            "score": "float",
        },
        events={
            # A type declares the properties that hold a value in one of its rows.
            "purchased": {"price": "float", "quantity": "int"},
            "viewed_product": {"product_name": "string", "price": "float"},
        },
    )
    assert store.rejected() == []

    def ids(text: str) -> list[str]:
        return sorted(store.compile(text).evaluate(as_of=NOW).ids())

    assert ids('did viewed_product where product_name = "Blue Bag"') == ["bruno"]
    assert ids("did purchased where quantity = 2 and newsletter") == ["angela"]
    assert ids('tags contains "vip" and city = "Milan" and birth_date before 2000-01-01') == [
        "angela"
    ]


def test_a_map_properties_column_is_read_as_its_keys() -> None:
    events = pa.table(
        {
            "contact_id": ["angela", "bruno"],
            "type": ["form_compiled", "form_compiled"],
            "ts": pa.array([1_793_000_000_000, 1_793_100_000_000]).cast(TS),
            "properties": pa.array(
                [[("form_name", "newsletter")], [("form_name", "contest"), ("page", "home")]],
                pa.map_(pa.string(), pa.string()),
            ),
        }
    )
    store = audience.Node.from_arrow(events)
    # the email tracking event types are in every schema (docs/tracking.md)
    assert store.schema.events == with_tracking_events(
        {"form_compiled": {"form_name": "string", "page": "string"}}
    )
    seg = store.compile('did form_compiled where form_name = "contest"')
    assert seg.evaluate(as_of=NOW).ids() == ["bruno"]
    # With a schema given, the map is read the same way: its keys are checked
    # as properties (maison.toml has no `page`).
    given_schema = audience.Node.from_arrow(events, None, Schema.load(EXAMPLES / "maison.toml"))
    [reject] = given_schema.rejected()
    assert (reject.where, reject.reason) == ("row index 1", "unknown property 'page'")
    again = given_schema.compile('did form_compiled where form_name = "newsletter"')
    assert again.evaluate(as_of=NOW).ids() == ["angela"]


def test_an_arrow_type_without_a_schema_type_is_an_error_naming_the_column() -> None:
    events = _events().append_column("blob", pa.array([b"x", b"y", b"z"], pa.binary()))
    with pytest.raises(audience.StoreError, match=r"column 'blob'.*binary"):
        audience.Node.from_arrow(events)
    with pytest.raises(audience.StoreError, match="no 'type' column"):
        audience.Node.from_arrow(_events().drop_columns(["type"]))


def test_no_tables_and_no_schema_is_an_empty_store() -> None:
    store = audience.Node.from_arrow(None)
    assert store.schema == Schema()
    assert len(store.compile("did anything").evaluate(as_of=NOW)) == 0


def test_the_schema_may_be_a_schema_a_path_or_toml_text(tmp_path: Path) -> None:
    path = EXAMPLES / "maison.toml"
    want = Schema.load(path)
    text = path.read_text(encoding="utf-8")
    for given_schema in (want, path, str(path), text):
        assert audience.Node.from_arrow(None, None, given_schema).schema == want
    with pytest.raises(audience.StoreError, match="not valid TOML"):
        audience.Node.from_arrow(None, None, "[profile]\nx = \n")
    with pytest.raises(audience.StoreError, match="cannot read the schema"):
        audience.Node.from_arrow(None, None, str(tmp_path / "missing.toml"))
