"""Reading ingest sources into Arrow batches with their line numbers.

JSON Lines and iterables of dicts are parsed record by record (a JSON value
of the wrong kind is caught here, where its Python type is known); CSV,
Parquet and Arrow tables are read by Arrow and checked by validate.py.  Every
batch knows, per row, its line (or row) in the source and how to show the raw
record, for the rejects.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from audience.runtime.store.ahead import ahead
from audience.runtime.store.coerce import describe
from audience.runtime.store.errors import StoreError
from audience.runtime.store.validate import Problem

if TYPE_CHECKING:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

CHUNK_ROWS = 500_000
JSON_CHUNK = 200_000
# The Arrow type a JSON column is gathered into; dates and datetimes stay text
# for the vectorised parser (an epoch-ms integer is written as its digits).
_JSON_ARROW: dict[str, pa.DataType] = {
    "id": pa.string(),
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.string(),
    "datetime": pa.string(),
    "list<string>": pa.list_(pa.string()),
}


@dataclass
class Batch:
    table: pa.Table
    lines: np.ndarray  # per row: its line / row number in the source
    label: str  # "line", "row", "row index", "record"
    raw: Callable[[int], str]  # the record as text, for a rejected row
    pre: dict[int, Problem] = field(default_factory=dict)  # rows already known bad
    units: int = 0  # progress made by this batch (rows or bytes)


@dataclass
class Source:
    name: str
    batches: Iterator[Batch]
    total: int | None  # progress units in all, when known


def open_source(
    source: Any,
    field_types: Mapping[str, str],
    dictionaries: Collection[str] = (),
    small_dictionaries: Collection[str] = (),
) -> Source:
    """``field_types``: the JSON-level type of each known field ("id" for
    string-or-integer ids); ``dictionaries``: string columns to read from
    Parquet as dictionary arrays; ``small_dictionaries``: those read so when
    the file keeps them as small dictionaries (``small_dictionary``).  A
    ``Source`` (batches already read, as a sharded node hands each shard its
    part) is taken as it is."""
    if isinstance(source, Source):
        return source
    if isinstance(source, pa.Table):
        return Source("<arrow table>", _table_batches(source, "row index", 0), source.num_rows)
    if isinstance(source, pa.RecordBatch):
        t = pa.Table.from_batches([source])
        return Source("<arrow table>", _table_batches(t, "row index", 0), t.num_rows)
    if isinstance(source, str | Path):
        path = Path(source)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise StoreError(f"{path}: no such file")
        if suffix in (".jsonl", ".ndjson", ".json"):
            return Source(str(path), _jsonl_batches(path, field_types), path.stat().st_size)
        if suffix == ".csv":
            table, lines = _read_csv(path)
            return Source(str(path), _csv_batches(table, lines), table.num_rows)
        if suffix in (".parquet", ".pq"):
            try:
                pf = _parquet_file(path, dictionaries, small_dictionaries)
            except (OSError, pa.ArrowException) as exc:
                raise StoreError(f"{path}: cannot read as Parquet: {exc}") from None
            return Source(str(path), _parquet_batches(path, pf), pf.metadata.num_rows)
        raise StoreError(f"{path}: unknown file kind '{suffix}'; use .jsonl, .csv or .parquet")
    if isinstance(source, Iterable) and not isinstance(source, bytes | Mapping):
        return Source("<records>", _record_batches(iter(source), field_types), None)
    raise StoreError(
        f"cannot ingest a {type(source).__name__}: give a path, an Arrow table or dicts"
    )


# ---------------------------------------------------------------- Arrow / Parquet
def _table_batches(table: pa.Table, label: str, base: int) -> Iterator[Batch]:
    for start in range(0, max(table.num_rows, 1), CHUNK_ROWS):
        part = table.slice(start, CHUNK_ROWS)
        n = part.num_rows
        if n == 0:
            return
        yield Batch(
            part,
            np.arange(start + base, start + base + n, dtype=np.int64),
            label,
            _row_json(part),
            units=n,
        )


def _parquet_file(
    path: Path, dictionaries: Collection[str], small: Collection[str] = ()
) -> pq.ParquetFile:
    """The file, its top-level string columns named in ``dictionaries`` (or
    in ``small``, with a small dictionary) read as dictionary arrays: decoded
    straight from the file's dictionary pages, never materialized as strings
    per row."""
    # imported here: a process that only evaluates never reads a file
    # (pyarrow.parquet brings pyarrow's file systems along)
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)  # read once: handed to the reader below
    text = (pa.types.is_string, pa.types.is_large_string)
    schema = meta.schema.to_arrow_schema()
    names = [
        f.name
        for f in schema
        if any(t(f.type) for t in text)
        and (f.name in dictionaries or (f.name in small and small_dictionary(meta, f.name)))
    ]
    return pq.ParquetFile(path, metadata=meta, read_dictionary=names or None)


# A dictionary page at most this big (compressed) holds some thousands of
# values at most.  A column of mostly distinct values (emails) fills its
# page up to the writer's limit and goes on in plain pages, which a reader
# asked for a dictionary would hash into one row by row: slower than
# reading the strings.
SMALL_DICTIONARY_BYTES = 64 * 1024


def small_dictionary(meta: pq.FileMetaData, name: str) -> bool:
    """Whether every row group keeps column ``name`` as a small dictionary."""
    if meta.num_row_groups == 0:
        return False
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        chunks = [group.column(i) for i in range(group.num_columns)]
        chunk = next((c for c in chunks if c.path_in_schema == name), None)
        if chunk is None or not chunk.has_dictionary_page:
            return False
        size = chunk.data_page_offset - (chunk.dictionary_page_offset or 0)
        if not 0 < size <= SMALL_DICTIONARY_BYTES:
            return False
    return True


def _parquet_batches(path: Path, pf: pq.ParquetFile) -> Iterator[Batch]:
    """The file streamed batch by batch (memory follows the batch, not the
    file); the next batch is decoded in a thread while this one is ingested
    (Arrow releases the GIL while it decodes)."""
    start = 0
    # Row group by row group: asked for the whole file at once, the reader
    # pre-buffers every row group's compressed bytes (the size of the file).
    groups = (
        rb
        for g in range(pf.num_row_groups)
        for rb in pf.iter_batches(batch_size=CHUNK_ROWS, row_groups=[g])
    )
    items = ahead(groups, "parquet-read")
    try:
        for item in items:
            part = pa.Table.from_batches([item])
            n = part.num_rows
            if n:
                lines = np.arange(start, start + n, dtype=np.int64)
                yield Batch(part, lines, "row index", _row_json(part), units=n)
            start += n
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: cannot read as Parquet: {exc}") from None
    finally:
        items.close()  # its thread stops before the file is closed
        pf.close()


def _row_json(table: pa.Table) -> Callable[[int], str]:
    def raw(i: int) -> str:
        row = table.slice(i, 1).to_pylist()[0]
        return json.dumps(row, default=str, ensure_ascii=False)

    return raw


# ------------------------------------------------------------------------ CSV
def _read_csv(path: Path) -> tuple[pa.Table, np.ndarray]:
    import pyarrow.csv as pcsv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read as CSV: {exc}") from None
    if not header:
        raise StoreError(f"{path}: an empty CSV file (a header row is needed)")
    skipped: list[int] = []

    def invalid(row: pcsv.InvalidRow) -> str:
        skipped.append(-1 if row.number is None else row.number - 1)
        return "skip"

    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: cannot read as CSV: {exc}") from None
    # Data rows are numbered from 1 after the header; rows Arrow skipped
    # (wrong number of cells) keep their numbers and are rejected separately.
    gone = set(skipped)
    lines = np.empty(table.num_rows, dtype=np.int64)
    row, i = 1, 0
    while i < table.num_rows:
        if row not in gone:
            lines[i] = row
            i += 1
        row += 1
    if gone:
        bad = pa.table({"__bad_row__": pa.array(sorted(gone), pa.int64())})
        table = _with_bad_rows(table, bad)
        lines = np.concatenate([lines, np.array(sorted(gone), dtype=np.int64)])
    return table, lines


def _with_bad_rows(table: pa.Table, bad: pa.Table) -> pa.Table:
    # Rows with the wrong number of cells ride along as all-null rows marked in
    # a column of their own, so the batch reports them with their row number.
    n_bad = bad.num_rows
    cols = {
        name: pa.concat_arrays([table.column(name).combine_chunks(), pa.nulls(n_bad, pa.string())])
        for name in table.column_names
    }
    marker = np.concatenate([np.zeros(table.num_rows, bool), np.ones(n_bad, bool)])
    cols["__bad_row__"] = pa.array(marker)
    return pa.table(cols)


def _csv_batches(table: pa.Table, lines: np.ndarray) -> Iterator[Batch]:
    for start in range(0, table.num_rows, CHUNK_ROWS):
        part = table.slice(start, CHUNK_ROWS)
        pre: dict[int, Problem] = {}
        if "__bad_row__" in part.column_names:
            marks = part.column("__bad_row__").to_numpy()
            for i in np.flatnonzero(marks):
                pre[int(i)] = (None, "wrong number of cells for the header")
            part = part.drop_columns(["__bad_row__"])
        yield Batch(
            part, lines[start : start + part.num_rows], "row", _row_csv(part), pre, part.num_rows
        )


def _row_csv(table: pa.Table) -> Callable[[int], str]:
    def raw(i: int) -> str:
        row = table.slice(i, 1).to_pylist()[0]
        out = io.StringIO()
        csv.writer(out).writerow(["" if v is None else v for v in row.values()])
        return out.getvalue().rstrip("\r\n")

    return raw


# ---------------------------------------------------------------- JSON records
def _jsonl_batches(path: Path, field_types: Mapping[str, str]) -> Iterator[Batch]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in the finally below, across yields
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        pending: list[tuple[int, str, Any]] = []
        units = 0
        for number, raw_line in enumerate(f, start=1):
            units += len(raw_line)
            try:
                text = raw_line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                pending.append((number, repr(raw_line)[2:-1], _Bad("not UTF-8 text")))
                continue
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except ValueError as exc:
                rec = _Bad(f"not valid JSON: {getattr(exc, 'msg', exc)}")
            pending.append((number, text, rec))
            if len(pending) >= JSON_CHUNK:
                yield _records_batch(pending, field_types, "line", units)
                pending, units = [], 0
        if pending or units:
            yield _records_batch(pending, field_types, "line", units)
    finally:
        f.close()


def _record_batches(records: Iterator[Any], field_types: Mapping[str, str]) -> Iterator[Batch]:
    pending: list[tuple[int, str, Any]] = []
    for number, rec in enumerate(records, start=1):
        pending.append((number, json.dumps(rec, default=str, ensure_ascii=False), rec))
        if len(pending) >= JSON_CHUNK:
            yield _records_batch(pending, field_types, "record", len(pending))
            pending = []
    if pending:
        yield _records_batch(pending, field_types, "record", len(pending))


class _Bad:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def flatten_record(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields, then ``properties`` (which wins on a clash); nested
    objects become dotted names."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if k != "properties":
            _flatten_into(out, str(k), v)
    props = rec.get("properties")
    if isinstance(props, Mapping):
        for k, v in props.items():
            _flatten_into(out, str(k), v)
    elif props is not None:
        out["properties"] = props
    return out


def _flatten_into(out: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten_into(out, f"{key}.{k}", v)
    else:
        out[key] = value


def _records_batch(
    pending: list[tuple[int, str, Any]], field_types: Mapping[str, str], label: str, units: int
) -> Batch:
    n = len(pending)
    lines = np.fromiter((p[0] for p in pending), dtype=np.int64, count=n)
    texts = [p[1] for p in pending]
    pre: dict[int, Problem] = {}
    columns: dict[str, list[Any]] = {}
    for i, (_, _, rec) in enumerate(pending):
        if isinstance(rec, _Bad):
            pre[i] = (None, rec.reason)
            continue
        if not isinstance(rec, Mapping):
            pre[i] = (None, "a record must be a JSON object")
            continue
        for k, v in flatten_record(rec).items():
            if v is None:
                continue
            col = columns.get(k)
            if col is None:
                col = columns[k] = [None] * n
            col[i] = v
    arrays: dict[str, pa.Array] = {}
    for key, values in columns.items():
        ftype = field_types.get(key)
        if ftype is None:
            # Unknown here; validation rejects the rows that carry a value.
            arrays[key] = pa.array([None if v is None else True for v in values], pa.bool_())
            continue
        check = _CHECKS[ftype]
        for i, v in enumerate(values):
            if v is None:
                continue
            ok, conv = check(v)
            if ok:
                values[i] = conv
            else:
                values[i] = None
                if i not in pre:
                    pre[i] = (key, _wrong(key, ftype, v))
        arrays[key] = pa.array(values, type=_JSON_ARROW[ftype])
    # With no field at all the rows still count (each is then missing contact_id).
    table = pa.table(arrays) if arrays else pa.table({"contact_id": pa.nulls(n, pa.string())})
    return Batch(table, lines, label, texts.__getitem__, pre, units)


def _wrong(key: str, ftype: str, v: Any) -> str:
    if key == "ts":
        return (
            f"ts: cannot parse {describe(v)} as a timestamp "
            "(ISO 8601 with an offset, or epoch milliseconds)"
        )
    if ftype == "id":
        return f"{key}: expected a string or an integer, got {describe(v)}"
    return f"{key}: expected {ftype}, got {describe(v)}"


_I64 = 2**63


def _check_id(v: Any) -> tuple[bool, Any]:
    if isinstance(v, str):
        return True, v
    if isinstance(v, int) and not isinstance(v, bool):
        return True, str(v)
    return False, None


def _check_string(v: Any) -> tuple[bool, Any]:
    return isinstance(v, str), v


def _check_int(v: Any) -> tuple[bool, Any]:
    if isinstance(v, bool):
        return False, None
    if isinstance(v, int):
        return -_I64 <= v < _I64, v
    if isinstance(v, float) and v.is_integer() and abs(v) < _I64:
        return True, int(v)
    return False, None


def _check_float(v: Any) -> tuple[bool, Any]:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False, None
    return True, float(v)


def _check_bool(v: Any) -> tuple[bool, Any]:
    return isinstance(v, bool), v


def _check_datetime(v: Any) -> tuple[bool, Any]:
    if isinstance(v, str):
        return True, v
    if isinstance(v, int) and not isinstance(v, bool):
        return True, str(v)
    return False, None


def _check_list(v: Any) -> tuple[bool, Any]:
    return isinstance(v, list) and all(isinstance(x, str) for x in v), v


_CHECKS: dict[str, Callable[[Any], tuple[bool, Any]]] = {
    "id": _check_id,
    "string": _check_string,
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "date": _check_string,
    "datetime": _check_datetime,
    "list<string>": _check_list,
}
