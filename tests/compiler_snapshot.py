"""Test helper: encode plain Python records into a Snapshot (the encodings of
audience/snapshot.py), so compiler tests do not depend on the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from audience.schema import Schema
from audience.snapshot import Column, Dictionary, Partition, Snapshot, dictionary_key

DAY_MS = 86_400_000
EPOCH_DAY = dt.date(1970, 1, 1)


def ms(value: str | int | dt.datetime) -> int:
    """Epoch ms of an ISO string (naive: UTC), a datetime or an int."""
    if isinstance(value, int):
        return value
    d = (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    )
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class _Dicts:
    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.index: dict[str, dict[str, int]] = {}

    def code(self, key: str, value: str) -> int:
        idx = self.index.setdefault(key, {})
        if value not in idx:
            idx[value] = len(idx)
            self.values.setdefault(key, []).append(value)
        return idx[value]

    def build(self) -> dict[str, Dictionary]:
        return {k: Dictionary.from_values(tuple(v)) for k, v in self.values.items()}


def _encode(kind: str, values: list[Any], dicts: _Dicts, key: str) -> Column:
    valid = np.array([v is not None for v in values], dtype=np.bool_)
    if kind == "list<string>":
        offsets = [0]
        codes: list[int] = []
        for v in values:
            for s in v or ():
                codes.append(dicts.code(key, s))
            offsets.append(len(codes))
        return Column(
            "list", np.array(codes, dtype=np.int32), valid, np.array(offsets, dtype=np.int32)
        )
    if kind == "string":
        arr = np.array([-1 if v is None else dicts.code(key, v) for v in values], dtype=np.int32)
        return Column("code", arr, valid)
    if kind == "int":
        return Column("int", np.array([v or 0 for v in values], dtype=np.int64), valid)
    if kind == "float":
        return Column("float", np.array([v or 0.0 for v in values], dtype=np.float64), valid)
    if kind == "bool":
        return Column("bool", np.array([bool(v) for v in values], dtype=np.bool_), valid)
    if kind == "date":
        days = [
            0
            if v is None
            else (dt.date.fromisoformat(v) if isinstance(v, str) else v).toordinal()
            - EPOCH_DAY.toordinal()
            for v in values
        ]
        return Column("date", np.array(days, dtype=np.int32), valid)
    if kind == "datetime":
        return Column(
            "datetime", np.array([0 if v is None else ms(v) for v in values], dtype=np.int64), valid
        )
    raise ValueError(kind)


def build_snapshot(
    schema: Schema,
    events: Iterable[Mapping[str, Any]] = (),
    profiles: Iterable[Mapping[str, Any]] = (),
    *,
    partition_ms: int = 7 * DAY_MS,
    contacts: Iterable[str] = (),
) -> Snapshot:
    """Events: ``{"contact_id", "type", "ts", "context"?, prop: value...}``
    (ts an ISO string or epoch ms); profiles: ``{"contact_id", prop: value}``."""
    events = list(events)
    profiles = list(profiles)
    ids: dict[str, int] = {}
    for c in contacts:
        ids.setdefault(c, len(ids))
    for rec in profiles:
        ids.setdefault(str(rec["contact_id"]), len(ids))
    for rec in events:
        ids.setdefault(str(rec["contact_id"]), len(ids))
    n = len(ids)
    dicts = _Dicts()
    types = Dictionary.from_values(tuple(schema.events))
    has_profile = np.zeros(n, dtype=np.bool_)
    by_contact = {str(r["contact_id"]): r for r in profiles}
    profile_cols: dict[str, Column] = {}
    for i, cid in enumerate(ids):
        has_profile[i] = cid in by_contact
    order = list(ids)
    for name, kind in schema.profile.items():
        vals = [by_contact.get(cid, {}).get(name) for cid in order]
        profile_cols[name] = _encode(kind, vals, dicts, dictionary_key("profile", name))
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    prop_kinds: dict[str, str] = {}
    for props in schema.events.values():
        for name, kind in props.items():
            prop_kinds.setdefault(name, kind)
    buckets: dict[int, list[Mapping[str, Any]]] = {}
    for rec in events:
        t = ms(rec["ts"])
        idx = ids[str(rec["contact_id"])]
        first[idx] = min(int(first[idx]), t)
        buckets.setdefault(t // partition_ms, []).append(rec)
    parts = []
    for key in sorted(buckets):
        recs = sorted(buckets[key], key=lambda r: ms(r["ts"]))
        ts = np.array([ms(r["ts"]) for r in recs], dtype=np.int64)
        cols = {"context": _encode("string", [r.get("context") for r in recs], dicts, "context")}
        for name, kind in prop_kinds.items():
            cols[name] = _encode(
                kind, [r.get(name) for r in recs], dicts, dictionary_key("event", name)
            )
        parts.append(
            Partition(
                int(ts[0]),
                int(ts[-1]),
                ts,
                np.array([ids[str(r["contact_id"])] for r in recs], dtype=np.int32),
                np.array([types.code(r["type"]) for r in recs], dtype=np.int32),
                cols,
            )
        )
    return Snapshot(
        1,
        schema,
        tuple(order),
        types,
        dicts.build(),
        has_profile,
        first,
        profile_cols,
        tuple(parts),
    )
