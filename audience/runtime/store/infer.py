"""A schema read off Arrow tables, for ``Store.from_arrow`` without one.

The mapping from Arrow types to schema types (docs/schema.md):

==============================================  ================
Arrow type                                      schema type
==============================================  ================
string, large_string, dictionary of strings     ``string``
int8..int64, uint8..uint64                      ``int``
float16/32/64, decimal                          ``float``
bool                                            ``bool``
date32, date64                                  ``date``
timestamp (any unit, any zone)                  ``datetime``
list / large_list of strings                    ``list<string>``
null (a column with no value at all)            left out
==============================================  ================

Events: the event types are the distinct values of the ``type`` column; the
properties are the columns other than ``id``, ``contact_id``, ``type``, ``ts``
and ``context``, with the fields of a struct ``properties`` column at the top
level and other structs as dotted names (``product.name``), as ingest reads
them; a map ``properties`` column (string keys) counts as a struct of its keys.
Each type declares the properties that hold a value in at least one of its rows.
Profiles: every column but ``contact_id`` is a profile property.
Any other Arrow type is an error that names the column.
"""

from __future__ import annotations

import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.errors import StoreError
from audience.runtime.store.validate import flatten_structs
from audience.schema import EVENT_BUILTINS, Schema


def maps_to_structs(table: pa.Table) -> pa.Table:
    """Every column of map type with string keys as a struct of its keys (the
    first value of a key repeated in one map wins), so ingest reads it as one."""
    if not any(pa.types.is_map(f.type) for f in table.schema):
        return table
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_map(col.type):
            cols[name] = col
            continue
        if not (
            pa.types.is_string(col.type.key_type) or pa.types.is_large_string(col.type.key_type)
        ):
            raise StoreError(f"column '{name}': a map needs string keys, not {col.type.key_type}")
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        keys = pc.unique(arr.keys).to_pylist() if len(arr) else []
        fields = [pc.map_lookup(arr, pa.scalar(k, col.type.key_type), "first") for k in keys]
        if fields:
            cols[name] = pa.StructArray.from_arrays(fields, names=keys, mask=arr.is_null())
        # A map with no key at all holds nothing: the column is dropped.
    return pa.table(cols)


def schema_type(name: str, t: pa.DataType) -> str | None:
    """The schema type of a column of Arrow type ``t`` (None: all null, no type)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "datetime"
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t)
    if is_list and schema_type(name, t.value_type) in ("string", None):
        return "list<string>"
    raise StoreError(
        f"column '{name}': cannot tell a schema type from the Arrow type {t}; "
        "give the schema (strings, numbers, booleans, dates, timestamps and lists "
        "of strings are understood)"
    )


def infer_schema(events: pa.Table | None, profiles: pa.Table | None) -> Schema:
    """The schema of ``events`` and ``profiles`` (see the module's table)."""
    profile: dict[str, str] = {}
    if profiles is not None:
        flat = flatten_structs(maps_to_structs(profiles))
        for f in flat.schema:
            ftype = schema_type(f.name, f.type)
            if f.name != "contact_id" and ftype is not None:
                profile[f.name] = ftype
    return Schema(profile=profile, events=_event_types(events))


def _event_types(events: pa.Table | None) -> dict[str, dict[str, str]]:
    if events is None or events.num_rows == 0:
        return {}
    flat = flatten_structs(maps_to_structs(events))
    if "type" not in flat.column_names:
        raise StoreError("the events have no 'type' column: cannot tell their event types")
    props: dict[str, str] = {}
    for f in flat.schema:
        ftype = schema_type(f.name, f.type)
        if f.name not in EVENT_BUILTINS and ftype is not None:
            props[f.name] = ftype
    types = flat.column("type")
    if pa.types.is_dictionary(types.type):
        types = types.cast(types.type.value_type)
    if not (pa.types.is_string(types.type) or pa.types.is_large_string(types.type)):
        raise StoreError(f"column 'type': event types are strings, not {types.type}")
    # One row per event type: how many of its rows hold each property.
    table = pa.table({"type": types, **{p: flat.column(p) for p in props}})
    counts = table.group_by("type").aggregate([(p, "count") for p in props])
    out: dict[str, dict[str, str]] = {}
    for row in counts.to_pylist():
        etype = row.pop("type")
        if etype is None or etype == "":
            continue  # rejected at ingest: no type
        out[etype] = {p: props[p] for p in props if row[f"{p}_count"]}
    return dict(sorted(out.items()))
