"""One ingest as a transaction: batches are validated and encoded in memory,
then ``commit`` writes the new files and switches the manifest once, so an
ingest lands whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.runtime.store.dictionaries import CONTACTS, IDS, TYPES, DictState
from audience.runtime.store.encode import TS, encode_events, sort_partition
from audience.runtime.store.errors import IngestReport, Reject
from audience.runtime.store.layout import Backend, Manifest, PartitionMeta
from audience.runtime.store.profiles import upsert
from audience.runtime.store.sources import Batch
from audience.runtime.store.validate import Checked, validate_events, validate_profiles
from audience.schema import CONTEXTS, Schema

INT64_MAX = np.iinfo(np.int64).max


class Txn:
    def __init__(
        self,
        backend: Backend,
        manifest: Manifest,
        schema: Schema,
        props: Mapping[str, str],
        load_dict: Callable[[str], pa.Array],
    ) -> None:
        self.backend = backend
        self.base = manifest
        self.schema = schema
        self.props = props
        self.dicts = DictState({key: load_dict(key) for key in manifest.dictionaries})
        # Fixed codes for the event types and contexts, in schema order.
        self.dicts.ensure(TYPES, list(schema.events))
        self.dicts.ensure("context", list(CONTEXTS))
        self.n_old = manifest.dict_size(CONTACTS)
        self.buckets: dict[str, list[pa.Table]] = {}
        self.first_seen: list[tuple[np.ndarray, np.ndarray]] = []
        self.profiled: list[np.ndarray] = []
        self.profile_table: pa.Table | None = (
            backend.read_table(manifest.profiles) if manifest.profiles else None
        )
        self.profile_rows = self.profile_table.num_rows if self.profile_table is not None else 0
        self.profile_changed = False
        self.rejects: list[Reject] = []
        # (event ids, encoded rows) of the events accepted, per batch: what the
        # trigger engine matches once the ingest has landed (audience.runtime.triggers)
        self.new_events: list[tuple[pa.Array, pa.Table]] = []

    # ------------------------------------------------------------------ events
    def add_events(self, batch: Batch, source: str) -> IngestReport:
        checked = validate_events(batch.table, self.schema, self.props, batch.pre)
        report = self._rejects(batch, checked, source, "events")
        table = checked.table
        keep = self._new_ids(table.column("id").combine_chunks())
        report.duplicates = int(len(keep) - keep.sum())
        if report.duplicates:
            table = table.filter(pa.array(keep))
        report.accepted = table.num_rows
        if not table.num_rows:
            return report
        enc = encode_events(table, self.schema, self.props, self.dicts)
        self.new_events.append((table.column("id").combine_chunks(), enc))
        ts = enc.column(TS).to_numpy()
        contacts = enc.column("__contact").to_numpy()
        self.first_seen.append((contacts, ts))
        months = ts.astype("datetime64[ms]").astype("datetime64[M]")
        for month in np.unique(months):
            rows = np.flatnonzero(months == month)
            piece = enc if len(rows) == len(ts) else enc.take(pa.array(rows))
            self.buckets.setdefault(str(month), []).append(piece)
        return report

    def _new_ids(self, ids: pa.Array) -> np.ndarray:
        """Rows to keep: no id, or an id seen neither before nor earlier in the batch."""
        n = len(ids)
        keep = np.ones(n, dtype=bool)
        if ids.null_count == n:
            return keep
        has = ids.is_valid().to_numpy(zero_copy_only=False)
        present = ids.filter(pa.array(has))
        idx = pc.index_in(present, value_set=pc.unique(present)).to_numpy()
        first = np.zeros(len(present), dtype=bool)
        first[np.unique(idx, return_index=True)[1]] = True
        fresh = first & ~self.dicts.contains(IDS, present)
        keep[np.flatnonzero(has)] = fresh
        self.dicts.append(IDS, present.filter(pa.array(fresh)))
        return keep

    # ---------------------------------------------------------------- profiles
    def add_profiles(self, batch: Batch, source: str) -> IngestReport:
        checked = validate_profiles(batch.table, self.schema, batch.pre)
        report = self._rejects(batch, checked, source, "profiles")
        table = checked.table
        report.accepted = table.num_rows
        if not table.num_rows:
            return report
        contacts = self.dicts.encode(CONTACTS, table.column("contact_id").combine_chunks())
        n_new = self.dicts.size(CONTACTS)
        self.profile_table = upsert(
            self.profile_table,
            self.profile_rows,
            n_new,
            contacts,
            table,
            self.schema.profile,
            self.dicts,
        )
        self.profile_rows = n_new
        self.profile_changed = True
        self.profiled.append(contacts)
        return report

    def _rejects(self, batch: Batch, checked: Checked, source: str, kind: str) -> IngestReport:
        report = IngestReport()
        for i in sorted(checked.problems):
            fld, reason = checked.problems[i]
            line = int(batch.lines[i])
            report.rejects.append(
                Reject(source, line, f"{batch.label} {line}", fld, reason, batch.raw(i), kind)
            )
        report.rejected = len(report.rejects)
        self.rejects.extend(report.rejects)
        return report

    # ------------------------------------------------------------------ commit
    def changed(self) -> bool:
        return bool(self.buckets or self.rejects or self.profile_changed or self.dicts.added())

    def commit(self) -> Manifest:
        m = self.base.copy()
        v = m.version + 1
        write = self.backend.write_table
        for bucket in sorted(self.buckets):
            table = sort_partition(self.buckets[bucket])
            ts = table.column(TS)
            name = write("partitions", v, table)
            meta = PartitionMeta(
                name, table.num_rows, int(ts[0].as_py()), int(ts[-1].as_py()), bucket
            )
            m.partitions.append(meta)
        if self.profile_changed and self.profile_table is not None:
            m.profiles = write("profiles", v, self.profile_table)
        n = self.dicts.size(CONTACTS)
        if n != self.n_old or self.first_seen or self.profiled:
            m.contacts = write("contacts", v, self._contacts_table(n))
        for key, values in sorted(self.dicts.added().items()):
            name = write("dictionaries", v, pa.table({"value": values}))
            m.dictionaries.setdefault(key, []).append((name, len(values)))
        if self.rejects:
            m.rejects.append((write("rejects", v, rejects_table(self.rejects)), len(self.rejects)))
        m.version = v
        self.backend.commit(m)
        return m

    def _contacts_table(self, n: int) -> pa.Table:
        has_profile = np.zeros(n, dtype=np.uint8)
        first = np.full(n, INT64_MAX, dtype=np.int64)
        if self.base.contacts:
            old = self.backend.read_table(self.base.contacts)
            k = old.num_rows
            has_profile[:k] = old.column("has_profile").to_numpy()
            first[:k] = old.column("first_event_ts").to_numpy()
        for contacts in self.profiled:
            has_profile[contacts] = 1
        for contacts, ts in self.first_seen:
            np.minimum.at(first, contacts, ts)
        return pa.table({"has_profile": pa.array(has_profile), "first_event_ts": pa.array(first)})


REJECT_COLUMNS = ("source", "line", "where", "field", "reason", "raw", "kind")


def rejects_table(rejects: list[Reject]) -> pa.Table:
    return pa.table(
        {
            "source": pa.array([r.source for r in rejects], pa.string()),
            "line": pa.array([r.line for r in rejects], pa.int64()),
            "where": pa.array([r.where for r in rejects], pa.string()),
            "field": pa.array([r.field for r in rejects], pa.string()),
            "reason": pa.array([r.reason for r in rejects], pa.string()),
            "raw": pa.array([r.raw for r in rejects], pa.string()),
            "kind": pa.array([r.kind for r in rejects], pa.string()),
        }
    )


def rejects_from_table(table: pa.Table) -> list[Reject]:
    return [Reject(**row) for row in table.to_pylist()]
