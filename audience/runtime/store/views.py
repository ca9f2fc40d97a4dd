"""How a Store turns one version (a manifest, and the log of small ingests
after it) into the Snapshot the evaluator reads, with the caches that keep
that cheap: files are immutable, so what was read of them stays right."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from audience.runtime.store.encode import one_array, partition_view
from audience.runtime.store.layout import CONTACTS, TYPES, Backend, Manifest, PartitionMeta
from audience.runtime.store.profiles import profile_columns
from audience.schema import Schema
from audience.snapshot import (
    Column,
    Dictionary,
    LazyPartition,
    LazyStrings,
    Partition,
    Snapshot,
    dictionary_key,
)

if TYPE_CHECKING:
    from audience.runtime.store.wal import TailState

_STRING_KINDS = ("string", "list<string>")
# a contact's first event time when it has none (ingest.py's)
INT64_MAX = np.iinfo(np.int64).max
_NO_VALUES = pa.array([], pa.string())


class SnapshotViews:
    """The snapshot half of ``Store`` (which sets these attributes)."""

    _backend: Backend
    schema: Schema
    _props: Mapping[str, str]
    _partitions: dict[str, Partition]
    _files: dict[str, tuple[str, pa.Table]]
    _profile_cols: tuple[tuple[str | None, int, int], dict[str, Column]] | None
    _arrays: dict[str, tuple[int, pa.Array]]
    _values: dict[str, tuple[int, Sequence[str]]]
    _dictionaries: dict[str, tuple[int, Dictionary]]

    def _build(self, m: Manifest, tail: TailState | None) -> Snapshot:
        keys = ["context"]
        keys += [dictionary_key("event", k) for k, t in self._props.items() if t in _STRING_KINDS]
        keys += [
            dictionary_key("profile", k)
            for k, t in self.schema.profile.items()
            if t in _STRING_KINDS
        ]
        dictionaries = {k: self._dictionary(m, k) for k in keys}
        contact_ids = self._value_list(m, CONTACTS)
        if tail is not None:  # the log's new values, after the manifest's
            for k in keys:
                if tail.dicts.size(k) > len(dictionaries[k]):
                    values = _extend(dictionaries[k].values, tail.dicts.get(k))
                    dictionaries[k] = Dictionary(values)
            if tail.contacts() > len(contact_ids):
                contact_ids = _extend(contact_ids, tail.dicts.get(CONTACTS))
        n = len(contact_ids)
        hp = fe = None
        if m.contacts:
            table = self._file(m.contacts)
            hp = table.column("has_profile").chunk(0).to_numpy().view(np.bool_)
            fe = table.column("first_event_ts").chunk(0).to_numpy()
        if (
            hp is not None
            and fe is not None
            and len(hp) == n
            and (tail is None or tail.first is None)
        ):
            has_profile, first = hp, fe  # the file's own arrays
        else:
            has_profile = np.zeros(n, dtype=bool)
            first = np.full(n, INT64_MAX, dtype=np.int64)
            if hp is not None and fe is not None:
                has_profile[: len(hp)] = hp
                first[: len(fe)] = fe
        if tail is not None and tail.first is not None:
            np.minimum.at(first, *tail.first)
        profile = None
        rows = 0
        if m.profiles:
            profile = self._file(m.profiles)
            rows = profile.num_rows
        partitions = self._partition_views(m)
        if tail is not None:
            partitions += tail.partitions()
        return Snapshot(
            version=m.version + (tail.records if tail is not None else 0),
            schema=self.schema,
            contact_ids=contact_ids,
            event_types=self._dictionary(m, TYPES),
            dictionaries=dictionaries,
            has_profile=has_profile,
            first_event_ts=first,
            profile=self._profile_columns(m.profiles, profile, rows, n),
            partitions=partitions,
        )

    def _profile_columns(
        self, name: str | None, table: pa.Table | None, rows: int, n: int
    ) -> dict[str, Column]:
        """Cached while the profiles file and the number of contacts stay the
        same (the columns are read-only views; each snapshot gets its own dict)."""
        key = (name, rows, n)
        if self._profile_cols is None or self._profile_cols[0] != key:
            cols = profile_columns(table, rows, n, self.schema.profile)
            self._profile_cols = (key, cols)
        return dict(self._profile_cols[1])

    def _file(self, name: str) -> pa.Table:
        """The contacts or profiles table (the last one read of each kind is
        kept: files are immutable, and most ingests change neither)."""
        kind = name.split("/", 1)[0]
        cached = self._files.get(kind)
        if cached is None or cached[0] != name:
            cached = (name, self._backend.read_table(name))
            self._files[kind] = cached
        return cached[1]

    def _partition_views(self, m: Manifest) -> tuple[Partition, ...]:
        parts = tuple(self._partition(p) for p in m.partitions)
        if len(self._partitions) > len(parts):
            # Compaction replaced some: forget them (older snapshots keep theirs).
            self._partitions = {p.file: v for p, v in zip(m.partitions, parts, strict=True)}
        return parts

    def _partition(self, meta: PartitionMeta) -> Partition:
        """The partition of ``meta``, its file mapped now and read at the
        first use of its rows (``LazyPartition``)."""
        part = self._partitions.get(meta.file)
        if part is None:
            table = self._backend.pin_table(meta.file)
            props = self._props
            part = LazyPartition(
                meta.min_ts, meta.max_ts, meta.rows, lambda: partition_view(table(), props)
            )
            self._partitions[meta.file] = part
        return part

    def _dict_array(self, key: str, manifest: Manifest | None = None) -> pa.Array:
        """The whole dictionary as one Arrow array (cached, and extended by the
        values added since: a dictionary only grows, though compaction may
        merge its chunk files)."""
        m = manifest or self._backend.read_manifest()
        total = m.dict_size(key)
        cached = self._arrays.get(key)
        have = cached[0] if cached is not None else 0
        if cached is not None and have >= total:
            return cached[1] if have == total else cached[1].slice(0, total)
        parts = [cached[1]] if cached is not None and have else []
        start = 0
        for name, count in m.dictionaries.get(key, []):
            if start + count > have:
                # the file's own (memory-mapped) array, not a copy of it
                col = one_array(self._backend.read_table(name).column("value"))
                parts.append(col.slice(max(0, have - start)))
            start += count
        # one file (the usual, once compaction merged the chunks): no copy,
        # which at millions of contacts was most of opening a snapshot
        arr = (parts[0] if len(parts) == 1 else pa.concat_arrays(parts)) if parts else _NO_VALUES
        self._arrays[key] = (total, arr)
        return arr

    def _value_list(self, m: Manifest, key: str) -> Sequence[str]:
        count = m.dict_size(key)
        cached = self._values.get(key)
        if cached is not None and cached[0] == count:
            return cached[1]
        # A new sequence each time: an older snapshot keeps the one it was given.
        # Its files are mapped now and read when a query needs its values.
        arrow = self._pinned_dict(m, key, count)
        values = LazyStrings(count, lambda: arrow().to_pylist(), arrow_of=arrow)
        self._values[key] = (count, values)
        return values

    def _pinned_dict(self, m: Manifest, key: str, count: int) -> Callable[[], pa.Array]:
        """``_dict_array(key, m)``'s first ``count`` values, deferred: the
        array when it is held already, else its chunk files mapped now (so a
        later ``collect`` cannot take them away) and read at the call."""
        held = self._arrays.get(key)
        if held is not None and held[0] >= count:
            arr = held[1].slice(0, count)
            return lambda: arr
        files = [self._backend.pin_table(name) for name, _ in m.dictionaries.get(key, [])]
        made: list[pa.Array] = []

        def arrow() -> pa.Array:
            if not made:  # (two first calls make the same array)
                parts = [one_array(table().column("value")) for table in files]
                whole = _NO_VALUES if not parts else parts[0]
                if len(parts) > 1:
                    whole = pa.concat_arrays(parts)
                made.append(whole.slice(0, count))
            return made[0]

        return arrow

    def _dictionary(self, m: Manifest, key: str) -> Dictionary:
        count = m.dict_size(key)
        cached = self._dictionaries.get(key)
        if cached is None or cached[0] != count:
            cached = (count, Dictionary.from_values(self._value_list(m, key)))
            self._dictionaries[key] = cached
        return cached[1]


def _extend(prefix: Sequence[str], values: pa.Array) -> LazyStrings:
    """``values`` (a whole dictionary) as strings, reusing ``prefix``'s."""
    return LazyStrings(len(values), values.slice(len(prefix)).to_pylist, prefix, values)
