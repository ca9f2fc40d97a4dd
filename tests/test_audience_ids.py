"""An audience's member ids: Arrow taken from the store's contact-id array (no
Python string per contact), a short repr, and the ids/csv/jsonl text written
from Arrow a chunk at a time, byte for byte what the plain writers give."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest

import audience
from audience.runtime.ids import text_chunks, write_ids, write_text
from audience.schema import Schema
from audience.snapshot import LazyStrings

EXAMPLES = Path(audience.__file__).parent / "examples"
NOW = "2026-11-01T12:00:00Z"
# ids that every text format must escape or quote its own way
AWKWARD = ["plain", "com,ma", 'quo"te', "back\\slash", "caffè", "new\nline", " sp ", "x" * 40]


def _store(contacts: list[str]) -> audience.Node:
    n = len(contacts)
    events = pa.table(
        {
            "id": [f"e{i}" for i in range(n)],
            "contact_id": contacts,
            "type": ["purchased" if i % 3 else "viewed_product" for i in range(n)],
            "ts": pa.array([1_793_000_000_000 + i for i in range(n)]).cast(
                pa.timestamp("ms", tz="UTC")
            ),
        }
    )
    return audience.Node.from_arrow(events, None, Schema.load(EXAMPLES / "maison.toml"))


@pytest.fixture(scope="module")
def store() -> audience.Node:
    return _store([f"c{i:05d}" for i in range(3000)])


def test_ids_come_from_the_store_arrow_array_not_python_strings(store: audience.Node) -> None:
    hits = store.compile("did purchased").evaluate(as_of=NOW)
    ids = store.snapshot().contact_ids
    assert isinstance(ids, LazyStrings) and ids.arrow is not None
    want = [f"c{i:05d}" for i in range(3000) if i % 3]
    table = hits.to_arrow()
    assert table.column_names == ["contact_id"]
    assert pa.types.is_dictionary(table.schema.field("contact_id").type)
    assert table.column("contact_id").to_pylist() == want
    assert hits.to_arrow(dictionary=False).schema.field("contact_id").type == pa.string()
    assert hits.to_arrow(dictionary=False).column("contact_id").to_pylist() == want
    assert hits.ids() == want
    assert hits.id_array(5, 8).to_pylist() == want[5:8]
    assert ids._values is None  # the 3,000 contact ids were never made Python strings


def test_an_audience_prints_short(store: audience.Node) -> None:
    hits = store.compile("did purchased").evaluate(as_of=NOW)
    text = repr(hits)
    assert text == (
        "<Audience 2,000 of 3,000 contacts as of 2026-11-01T12:00:00.000Z,"
        " ids=['c00001', 'c00002', 'c00004', ...]>"
    )
    none = store.compile("did email_clicked").evaluate(as_of=NOW)
    assert repr(none) == "<Audience 0 of 3,000 contacts as of 2026-11-01T12:00:00.000Z>"


def _reference(ids: list[str], fmt: str) -> bytes:
    """What writing each id with print, csv.writer and json.dumps gives."""
    out = io.StringIO(newline="")
    if fmt == "ids":
        out.writelines(f"{i}\n" for i in ids)
    elif fmt == "jsonl":
        out.writelines(json.dumps({"contact_id": i}) + "\n" for i in ids)
    else:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["contact_id"])
        w.writerows([i] for i in ids)
    return out.getvalue().encode()


@pytest.mark.parametrize("fmt", ["ids", "csv", "jsonl"])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_text_formats_match_the_plain_writers(fmt: str, chunk: int) -> None:
    plain = [f"c{i}" for i in range(7)]
    for ids in (plain, AWKWARD, plain + AWKWARD, []):
        arr = pa.array(ids, pa.string())
        out = io.BytesIO()
        write_ids(arr, fmt, out, chunk=chunk)
        assert out.getvalue() == _reference(ids, fmt), (fmt, ids)
        # a dictionary array (what to_arrow gives) writes the same text
        dict_arr = pa.array(ids, pa.string()).dictionary_encode()
        assert b"".join(text_chunks(dict_arr, fmt, chunk)) == _reference(ids, fmt)


def test_awkward_ids_through_a_store() -> None:
    store = _store(AWKWARD * 3)
    hits = store.compile("did anything").evaluate(as_of=NOW)
    assert sorted(hits.ids()) == sorted(AWKWARD)
    out = io.BytesIO()
    write_ids(hits.to_arrow().column("contact_id"), "csv", out)
    assert out.getvalue() == _reference(hits.ids(), "csv")


def test_a_text_stream_without_a_buffer_gets_the_same_text() -> None:
    arr = pa.array(AWKWARD, pa.string())
    for fmt in ("ids", "csv", "jsonl"):
        plain = io.StringIO()
        write_text(arr, fmt, plain)
        assert plain.getvalue().encode() == _reference(AWKWARD, fmt)
        wrapped = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
        write_text(arr, fmt, wrapped)
        assert wrapped.buffer.getvalue() == _reference(AWKWARD, fmt)  # type: ignore[attr-defined]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        list(text_chunks(pa.array(["a"]), "xml"))
