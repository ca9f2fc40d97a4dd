"""Shared data for the store tests: a small schema, one set of events written
as JSONL, CSV and Parquet, and a comparable dump of a Snapshot."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audience.schema import Schema
from audience.snapshot import Column, Snapshot

SCHEMA_TOML = """
[profile]
email = "string"
city = "string"
birth_date = "date"
signup_ts = "datetime"
tags = "list<string>"
points = "int"
vip = "bool"

[events.viewed_product]
product_name = "string"
category = "string"
price = "float"

[events.purchased]
order_id = "string"
amount = "float"
items = "int"
category = "string"

[events.form_compiled]
form_name = "string"
at = "datetime"
day = "date"
flags = "list<string>"
ok = "bool"
"""

PROPS = ["product_name", "category", "price", "order_id", "amount", "items"]
PROPS += ["form_name", "at", "day", "flags", "ok"]


def schema() -> Schema:
    return Schema.from_toml(SCHEMA_TOML)


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


EVENTS: list[dict[str, Any]] = [
    {
        "id": "e1",
        "contact_id": "c1",
        "type": "viewed_product",
        "ts": "2026-10-20T10:00:00Z",
        "context": "WEB",
        "properties": {"product_name": "Red Shoes", "category": "shoes", "price": 89.5},
    },
    {
        "id": "e2",
        "contact_id": "c2",
        "type": "purchased",
        "ts": "2026-09-03T08:30:00+02:00",
        "properties": {"order_id": "o1", "amount": 120.0, "items": 2, "category": "bags"},
    },
    {
        "id": "e3",
        "contact_id": "c1",
        "type": "form_compiled",
        "ts": "2026-10-01T00:00:00.250Z",
        "context": "MOBILE",
        "properties": {
            "form_name": "newsletter",
            "at": "2026-10-01T00:00:00Z",
            "day": "2026-09-30",
            "flags": ["a", "b"],
            "ok": True,
        },
    },
    {
        "id": "e4",
        "contact_id": "c3",
        "type": "viewed_product",
        "ts": "2026-10-20T09:00:00Z",
        "product_name": "Blue Bag",
        "category": "bags",
    },
    {
        "contact_id": "c2",
        "type": "form_compiled",
        "ts": "2026-11-02T12:00:00Z",
        "properties": {"form_name": "survey", "flags": [], "ok": False},
    },
    {
        "id": "e6",
        "contact_id": "c4",
        "type": "purchased",
        "ts": "2026-10-20T10:00:00Z",
        "context": "RETAIL",
        "properties": {"order_id": "o2", "amount": 15.25, "items": 1},
    },
]

PROFILES: list[dict[str, Any]] = [
    {"contact_id": "c1", "email": "a@example.com", "city": "Milan", "tags": ["vip"], "points": 10},
    {
        "contact_id": "c9",
        "city": "Rome",
        "birth_date": "1990-05-17",
        "vip": True,
        "signup_ts": "2026-01-01T00:00:00Z",
    },
]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def flat(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in rec.items() if k != "properties"}
    out.update(rec.get("properties", {}))
    return out


def write_csv(path: Path, records: list[dict[str, Any]], columns: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for rec in records:
            row = flat(rec)
            cells = []
            for c in columns:
                v = row.get(c)
                if v is None:
                    cells.append("")
                elif isinstance(v, list):
                    cells.append(json.dumps(v))
                elif isinstance(v, bool):
                    cells.append("true" if v else "false")
                else:
                    cells.append(str(v))
            w.writerow(cells)
    return path


EVENT_COLUMNS = ["id", "contact_id", "type", "ts", "context", *PROPS]


def events_table(records: list[dict[str, Any]] = EVENTS) -> pa.Table:
    rows = [flat(r) for r in records]

    def col(name: str) -> list[Any]:
        return [r.get(name) for r in rows]

    def ts(values: list[Any]) -> pa.Array:
        return pa.array(
            [None if v is None else dt.datetime.fromisoformat(v) for v in values],
            pa.timestamp("ms", tz="UTC"),
        )

    return pa.table(
        {
            "id": pa.array(col("id"), pa.string()),
            "contact_id": pa.array(col("contact_id"), pa.string()),
            "type": pa.array(col("type"), pa.string()),
            "ts": ts(col("ts")),
            "context": pa.array(col("context"), pa.string()),
            "product_name": pa.array(col("product_name"), pa.string()),
            "category": pa.array(col("category"), pa.string()),
            "price": pa.array(col("price"), pa.float64()),
            "order_id": pa.array(col("order_id"), pa.string()),
            "amount": pa.array(col("amount"), pa.float64()),
            "items": pa.array(col("items"), pa.int64()),
            "form_name": pa.array(col("form_name"), pa.string()),
            "at": ts(col("at")),
            "day": pa.array(
                [None if v is None else dt.date.fromisoformat(v) for v in col("day")], pa.date32()
            ),
            "flags": pa.array(col("flags"), pa.list_(pa.string())),
            "ok": pa.array(col("ok"), pa.bool_()),
        }
    )


def write_parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def _col(c: Column) -> dict[str, Any]:
    valid = np.ones(len(c.valid if c.valid is not None else c.values), bool)
    if c.kind == "list":
        assert c.offsets is not None
        valid = np.ones(len(c.offsets) - 1, bool) if c.valid is None else c.valid
        lists = [
            c.values[c.offsets[i] : c.offsets[i + 1]].tolist() if valid[i] else None
            for i in range(len(valid))
        ]
        return {"kind": c.kind, "lists": lists}
    if c.valid is not None:
        valid = c.valid
    return {
        "kind": c.kind,
        "values": [v if ok else None for v, ok in zip(c.values.tolist(), valid, strict=True)],
    }


def dump(snap: Snapshot) -> dict[str, Any]:
    """Everything a Snapshot says, as plain Python (the version aside)."""
    return {
        "contact_ids": list(snap.contact_ids),
        "event_types": list(snap.event_types.values),
        "dictionaries": {k: list(d.values) for k, d in snap.dictionaries.items()},
        "has_profile": snap.has_profile.tolist(),
        "first_event_ts": snap.first_event_ts.tolist(),
        "profile": {k: _col(c) for k, c in snap.profile.items()},
        "partitions": [
            {
                "min_ts": p.min_ts,
                "max_ts": p.max_ts,
                "ts": p.ts.tolist(),
                "contact": p.contact.tolist(),
                "type": p.type.tolist(),
                "columns": {k: _col(c) for k, c in p.columns.items()},
            }
            for p in snap.partitions
        ],
    }


def decoded_events(snap: Snapshot) -> list[dict[str, Any]]:
    """Events back as readable rows (strings decoded), for assertions."""
    out = []
    for p in snap.partitions:
        for i in range(len(p)):
            row: dict[str, Any] = {
                "contact_id": snap.contact_ids[p.contact[i]],
                "type": snap.event_types.values[p.type[i]],
                "ts": int(p.ts[i]),
            }
            for name, c in p.columns.items():
                if c.valid is not None and not c.valid[i]:
                    continue
                key = name
                if c.kind == "code":
                    row[name] = snap.dictionaries[key].values[c.values[i]]
                elif c.kind == "list":
                    assert c.offsets is not None
                    codes = c.values[c.offsets[i] : c.offsets[i + 1]]
                    row[name] = [snap.dictionaries[key].values[k] for k in codes]
                else:
                    row[name] = c.values[i].item()
            out.append(row)
    return out


def profiles_table(records: list[dict[str, Any]] = PROFILES) -> pa.Table:
    keys = ["contact_id", "email", "city", "birth_date", "signup_ts", "tags", "points", "vip"]
    return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records])
