"""The Store: the storage of a node of a store directory (or an in-memory
one), its ingests and the Snapshots the evaluator reads.  What a node does
with it (compiled segments, triggers, saved segments) is audience.runtime.node's."""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.definitions import Definitions
from audience.runtime.store.encode import (
    ID,
    event_property_types,
    one_array,
)
from audience.runtime.store.errors import IngestReport, Reject, StoreError
from audience.runtime.store.layout import (
    DEFINITIONS_FILE,
    FORMAT,
    IDS,
    MANIFEST,
    STORE_FILE,
    Backend,
    DiskBackend,
    Manifest,
    MemoryBackend,
    create_node_dir,
    node_dir,
)
from audience.runtime.store.views import SnapshotViews
from audience.schema import Schema, SchemaError

# The write path (ingest, the log of small ingests, the duplicate index, the
# readers of input files and their kernels) is imported by the methods that
# write: opening a store and reading its snapshot need none of it.
if TYPE_CHECKING:
    from audience.runtime.store.dedup import SortedIds
    from audience.runtime.store.dictionaries import HashTables
    from audience.runtime.store.ingest import Txn
    from audience.runtime.store.sources import Batch, Source
    from audience.runtime.store.wal import Tail
from audience.snapshot import (
    Column,
    Dictionary,
    Partition,
    Snapshot,
)

_NODE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A progress bar only pays off on big inputs.
PROGRESS_MIN_UNITS = 200_000


class EventWatcher(Protocol):
    """What watches a node's ingests (its trigger engine, set by the node
    above the store: audience.runtime.node).  ``before_commit`` runs under
    the ingest lock before the manifest switch, with the accepted events;
    ``after_commit`` once the ingest has landed, outside the lock, with what
    ``before_commit`` returned (when not None): its result is the report's
    ``triggers``."""

    def discard_after(self, version: int) -> None: ...  # at the start, under the lock

    def before_commit(self, version: int, new_events: list[tuple[pa.Array, pa.Table]]) -> Any: ...

    def after_commit(self, pending: Any) -> Any: ...


class Store(SnapshotViews):
    """The storage of one node of a store.  ``path`` is the store directory
    (None in memory).  Its node's triggers match what it ingests through
    ``watcher``; a Store opened without its node ingests unwatched."""

    def __init__(
        self,
        backend: Backend,
        schema: Schema,
        node: str,
        path: Path | None,
        definitions: Definitions,
    ) -> None:
        self._backend = backend
        self.schema = schema
        self.node = node
        self.path = path
        self.definitions = definitions
        # The directory of this node's files (a shard's own, on a sharded node).
        self.home = backend.dir if isinstance(backend, DiskBackend) else None
        self._props = event_property_types(schema)
        self._snap_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._partitions: dict[str, Partition] = {}
        self._files: dict[str, tuple[str, pa.Table]] = {}
        self._profile_cols: tuple[tuple[str | None, int, int], dict[str, Column]] | None = None
        self._arrays: dict[str, tuple[int, pa.Array]] = {}
        self._values: dict[str, tuple[int, Sequence[str]]] = {}
        self._dictionaries: dict[str, tuple[int, Dictionary]] = {}
        self._hash_tables: HashTables = {}  # kept across ingests (dictionaries.py)
        self._wal_lock = threading.Lock()
        self._tail: Tail | None = None  # the log of small ingests, replayed (wal.py)
        # the watcher of an ingest, None when nothing watches (asked at each ingest)
        self.watcher: Callable[[], EventWatcher | None] | None = None

    # -------------------------------------------------------------- creation
    @classmethod
    def init(cls, path: str | Path, schema: Schema | str | Path, node: str = "main") -> Store:
        root = Path(path)
        schema, defs = init_root(root, schema, node)
        nd = node_dir(root, node)
        create_node_dir(nd)
        _write_atomic(nd / "schema.toml", schema.to_toml())
        return cls.init_dir(nd, schema, node, root, defs)

    @classmethod
    def init_dir(
        cls, directory: Path, schema: Schema, node: str, root: Path, defs: Definitions
    ) -> Store:
        """An empty node (or shard of one) in ``directory``, made by ``create_node_dir``."""
        from audience.runtime.store.ingest import Txn

        backend = DiskBackend(directory)
        store = cls(backend, schema, node, root, defs)
        Txn(backend, Manifest(), schema, store._props, store._dict_array).commit()
        return store

    @classmethod
    def open(cls, path: str | Path, node: str = "main") -> Store:
        root = Path(path)
        marker = root / STORE_FILE
        if not marker.is_file():
            raise StoreError(
                f"{root}: not an audience store (no {STORE_FILE}); create one with 'audience init'"
            )
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{marker}: unreadable store marker: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreError(f"{marker}: unsupported store format {meta!r}")
        nd = node_dir(root, node)
        if not (nd / MANIFEST).is_file():
            if (nd / "shards.json").is_file():
                raise StoreError(
                    f"{root}: node '{node}' is sharded: open it with audience.open (a ShardedNode)"
                )
            nodes = sorted(p.name for p in (root / "nodes").glob("*") if (p / MANIFEST).is_file())
            raise StoreError(f"{root}: no node '{node}' (nodes: {', '.join(nodes) or 'none'})")
        try:
            schema = Schema.load(nd / "schema.toml")
        except SchemaError as exc:
            raise StoreError(str(exc)) from None
        return cls(DiskBackend(nd), schema, node, root, Definitions(root / DEFINITIONS_FILE))

    @classmethod
    def from_arrow(
        cls,
        events: pa.Table | None,
        profiles: pa.Table | None = None,
        schema: Schema | str | Path | None = None,
    ) -> Store:
        """An in-memory store, encoded and validated exactly as a disk ingest:
        rows that do not fit are left out and listed by ``rejected()``.

        ``schema``: a ``Schema``, the path of a schema file, or the TOML text
        of one (a string holding a line break or starting with ``[``).  Without
        one, the schema is read off the tables' Arrow types:

        - string (or dictionary of strings) -> ``string``; any integer ->
          ``int``; float or decimal -> ``float``; bool -> ``bool``; date32/64
          -> ``date``; timestamp -> ``datetime``; list of strings ->
          ``list<string>``; a column of nulls only is left out; any other type
          is an error naming the column;
        - event types: the distinct values of ``type``; their properties: the
          columns other than ``id``, ``contact_id``, ``type``, ``ts`` and
          ``context``, with a struct or map (string keys) ``properties`` column's
          fields at the top level and other structs as dotted names
          (``product.name``); a type declares the properties that hold a value
          in at least one of its rows;
        - profile properties: the profile table's columns but ``contact_id``.

        A map column is read as a struct of its keys, with or without a schema."""
        from audience.runtime.store.infer import infer_schema, maps_to_structs
        from audience.runtime.store.ingest import Txn

        if events is not None:
            events = maps_to_structs(events)
        if profiles is not None:
            profiles = maps_to_structs(profiles)
        schema = infer_schema(events, profiles) if schema is None else _schema(schema)
        event_property_types(schema, "schema")
        backend = MemoryBackend()
        store = cls(backend, schema, "main", None, Definitions(None))
        Txn(backend, Manifest(), schema, store._props, store._dict_array).commit()
        if profiles is not None:
            store.ingest_profiles(profiles)
        if events is not None:
            store.ingest_events(events)
        return store

    # ---------------------------------------------------------------- ingest
    def ingest_events(self, source: Any, *, progress: bool = False) -> IngestReport:
        """Events from a .jsonl/.ndjson/.csv/.parquet path, an Arrow table or
        an iterable of dicts.  Bad records are rejected and kept; the rest land
        together.  Raises StoreError when the source cannot be read at all."""
        return self._ingest(source, "events", progress)

    def ingest_checked_events(self, source: Any) -> IngestReport:
        """Events a sharded node's ingest routed to this shard once it had
        decided their duplicates over every shard (audience.runtime.shards):
        the duplicate index takes their ids without looking them up again."""
        return self._ingest(source, "events", False, ids_checked=True)

    def ingest_profiles(
        self, source: Any, *, progress: bool = False, merge_lists: Collection[str] = ()
    ) -> IngestReport:
        """Profiles, upserted field by field (a null leaves the field as it was).
        ``merge_lists``: list properties whose given values are added to the
        stored list rather than replacing it, read and written under the
        ingest lock (so two writers adding tags never lose one)."""
        for name in merge_lists:
            if self.schema.profile.get(name) != "list<string>":
                raise StoreError(f"merge_lists: '{name}' is not a list profile property")
        return self._ingest(source, "profiles", progress, merge_lists)

    def _ingest(
        self,
        source: Any,
        kind: str,
        progress: bool,
        merge_lists: Collection[str] = (),
        *,
        ids_checked: bool = False,
    ) -> IngestReport:
        src = self.open_input(source, kind)
        report = IngestReport()
        pending = None
        engine: EventWatcher | None = None
        with self._backend.locked():
            manifest = self._backend.read_manifest()
            self._backend.sweep(manifest)
            try:
                tail = self._tail_for(manifest, writer=True)
                engine = self.watcher() if self.watcher is not None else None
                if engine is not None:
                    engine.discard_after(tail.version if tail else manifest.version)
                batches: Iterator[Batch] = src.batches
                head = list(itertools.islice(batches, 2))
                logged = None
                if kind == "events" and tail is not None and len(head) == 1:
                    # One small batch without rejects goes to the log (wal.py).
                    logged = self._log(head[0], manifest, tail, engine)
                if logged is not None:
                    report, pending = logged
                elif head:
                    if tail is not None and tail.records:
                        manifest = self._checkpoint(manifest, tail)
                    batches = itertools.chain(head, batches)
                    report, pending = self._regular(
                        manifest, kind, batches, src, progress, merge_lists, engine, ids_checked
                    )
            except BaseException:
                # The hash tables may cover dictionary values that never landed,
                # and the log's replay state values that were never logged.
                self._hash_tables.clear()
                with self._wal_lock:
                    self._tail = None
                raise
        if pending is not None and engine is not None:
            report.triggers = engine.after_commit(pending)
        return report

    def open_input(self, source: Any, kind: str) -> Source:
        """``source`` read as batches of ``kind`` ("events" or "profiles")."""
        from audience.runtime.store.sources import open_source

        if kind == "events":
            types = {"id": "id", "contact_id": "id", "type": "string", "ts": "datetime"}
            types |= {"context": "string", **self._props}
        else:
            types = {"contact_id": "id", **self.schema.profile}
        # String columns a Parquet file holds dictionary-encoded are read so
        # (a profile's only when small: its contact_id, emails, are unique per row).
        if kind == "events":
            strings = [k for k, v in types.items() if v == "string" or k == "contact_id"]
            return open_source(source, types, strings)
        strings = [k for k, v in types.items() if v == "string"]
        return open_source(source, types, small_dictionaries=strings)

    def _regular(
        self,
        manifest: Manifest,
        kind: str,
        batches: Iterator[Batch],
        src: Any,
        progress: bool,
        merge_lists: Collection[str],
        engine: EventWatcher | None,
        ids_checked: bool = False,
    ) -> tuple[IngestReport, Any]:
        """An ingest that writes partitions and a new manifest; ``engine``: the
        watcher (the node's trigger engine), when there is one."""
        from audience.runtime.store.ahead import ahead

        report = IngestReport()
        txn = self._txn(manifest)
        txn.ids_checked = ids_checked
        if kind == "events":
            # Each batch is checked, then deduplicated, each a batch ahead in
            # a thread of its own, of its encoding into the store (the other
            # cores at work; the codes stay in order).
            checked = ahead((txn.check(b, src.name) for b in batches), "ingest-check")
            prepared = ahead((txn.dedup(c) for c in checked), "ingest-dedup")
            try:
                for one in _progress(prepared, src.total, src.name, progress):
                    report.merge(txn.apply(one))
            finally:
                # on a failure, the threads stop now
                prepared.close()
                checked.close()
                txn.close()
        else:
            for batch in _progress(batches, src.total, src.name, progress):
                report.merge(txn.add_profiles(batch, src.name, merge_lists))
        pending = None
        if txn.changed():
            # Triggers: the accepted events are journaled before the manifest
            # switch (so a crash before they are matched is caught up later),
            # and matched once the ingest has landed, outside the lock.
            if engine is not None and txn.new_events:
                pending = engine.before_commit(txn.version, txn.new_events)
            txn.commit()
        return report, pending

    def _txn(self, manifest: Manifest, version: int | None = None) -> Txn:
        from audience.runtime.store.ingest import Txn

        return Txn(
            self._backend,
            manifest,
            self.schema,
            self._props,
            lambda key: self._dict_array(key, manifest),
            self._hash_tables,
            version,
        )

    # ------------------------------------------------------------------ the log
    def _tail_for(self, manifest: Manifest, *, writer: bool = False) -> Tail | None:
        """The log of ``manifest``'s version, replayed up to its last complete
        record (None: this backend keeps no log).  Only a writer (under the
        ingest lock) may copy the store's hash tables: an ingest changes them."""
        from audience.runtime.store.dictionaries import DictState
        from audience.runtime.store.wal import Tail, TailState, copy_tables

        path = self._backend.wal_path(manifest.version)
        if path is None:
            return None
        with self._wal_lock:
            tail = self._tail
            if tail is None or tail.base != manifest.version:
                keys = [k for k in manifest.dictionaries if k != IDS]
                dicts = DictState({k: self._dict_array(k, manifest) for k in keys})
                tail = Tail(manifest.version, path, self.schema, self._props, TailState(dicts))
                if self._tail is None or self._tail.base < manifest.version:
                    self._tail = tail  # (a reader that read an older manifest keeps its own)
            if writer and not tail.tables_copied:
                # The store's tables of the manifest's values, so the log's
                # first encode does not hash a whole dictionary again.
                sizes = {k: manifest.dict_size(k) for k in manifest.dictionaries}
                for key, entry in copy_tables(self._hash_tables, sizes).items():
                    tail.dicts.tables.setdefault(key, entry)
                tail.tables_copied = True
            tail.replay()
            return tail

    def _log(
        self, batch: Batch, manifest: Manifest, tail: Tail, engine: EventWatcher | None
    ) -> tuple[IngestReport, Any] | None:
        """Append a small events batch to the log; None when it must take the
        regular path (too big, rejects to keep, or the log is full)."""
        from audience.runtime.store import wal
        from audience.runtime.store.coerce import decode_dictionaries
        from audience.runtime.store.dedup import IdFiles, sort_ids
        from audience.runtime.store.validate import validate_events

        if batch.pre or batch.table.num_rows > wal.MAX_ROWS:
            return None
        checked = validate_events(batch.table, self.schema, self._props)
        table = decode_dictionaries(checked.table)  # the log's records hold plain strings
        if checked.problems or tail.rows + table.num_rows > wal.CHECKPOINT_ROWS:
            return None
        report = IngestReport()
        ids = one_array(table.column("id"))
        index = IdFiles(self._backend, manifest, manifest.version + 1).index
        keep = index.fresh(sort_ids(ids), 0)
        keep &= ~np.fromiter((i in tail.ids for i in ids.to_pylist()), bool, len(ids))
        report.duplicates = int(len(keep) - keep.sum())
        if report.duplicates:
            table = table.filter(pa.array(keep))
        report.accepted = table.num_rows
        if not table.num_rows:
            return report, None
        with self._wal_lock:
            work, start, version = tail.dicts.fork(), tail.offset, tail.version + 1
        enc = tail.encode(table, work)
        pending = None
        if engine is not None:
            new = [(one_array(enc.column(ID)), enc.drop_columns([ID]))]
            pending = engine.before_commit(version, new)
        end = wal.append_record(tail.path, table, start)
        with self._wal_lock:
            if self._tail is tail and tail.offset == start:  # else a reader replayed it
                tail.apply(table, enc, work)
                tail.offset = end
        return report, pending

    def _checkpoint(self, manifest: Manifest, tail: Tail) -> Manifest:
        """Write the log's rows as a regular ingest landing at its last version."""
        txn = self._txn(manifest, version=tail.version)
        report = IngestReport()
        txn.add_valid(tail.state.table(), report)
        if report.accepted != tail.rows:
            raise StoreError(
                f"internal: checkpoint of {tail.path} kept {report.accepted} of {tail.rows} rows"
            )
        m = txn.commit()
        with self._wal_lock:
            self._tail = None
        return m

    def checkpoint(self) -> None:
        """Fold the log of small ingests into partitions now (it happens by
        itself once the log is big, or on a big ingest)."""
        with self._backend.locked():
            manifest = self._backend.read_manifest()
            tail = self._tail_for(manifest, writer=True)
            if tail is not None and tail.records:
                self._checkpoint(manifest, tail)

    def known_ids(self, ids: pa.Array, hashed: SortedIds | None = None) -> np.ndarray:
        """Whether each event id (strings) is held already, in the partitions
        or the log of small ingests, or stands on an earlier row of ``ids``.
        Exact (a hash match is confirmed).  ``hashed``: ``sort_ids(ids)``,
        when the caller has it."""
        return self.id_lookup()(ids, hashed)

    def id_lookup(self) -> Callable[[pa.Array, SortedIds | None], np.ndarray]:
        """``known_ids`` for batch after batch while nothing lands here (a
        sharded node's ingest, under the node's lock, asks every shard about
        every batch): the duplicate index is read, its filter built and the
        log's ids gathered once, not once a batch."""
        from audience.runtime.store.dedup import IdFiles, sort_ids

        manifest = self._backend.read_manifest()
        index = IdFiles(self._backend, manifest, manifest.version + 1).index
        tail = self._tail_for(manifest)
        logged = pa.array(list(tail.ids), pa.string()) if tail is not None and tail.ids else None

        def known_ids(ids: pa.Array, hashed: SortedIds | None = None) -> np.ndarray:
            known = index.known(hashed or sort_ids(ids))
            if logged is not None:
                known |= pc.fill_null(pc.is_in(ids, value_set=logged), False).to_numpy(
                    zero_copy_only=False
                )
            return known

        return known_ids

    def rejected(self, limit: int | None = None) -> list[Reject]:
        """The rejected records kept by the store, oldest first."""
        from audience.runtime.store.ingest import rejects_from_table

        out: list[Reject] = []
        for name, _ in self._backend.read_manifest().rejects:
            out.extend(rejects_from_table(self._backend.read_table(name)))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    # -------------------------------------------------------------- snapshot
    def snapshot(self) -> Snapshot:
        """The current version (cached until an ingest lands; thread-safe)."""
        with self._snap_lock:
            manifest = self._backend.read_manifest()
            tail = self._tail_for(manifest) if self._logged(manifest) else None
            state = None
            if tail is not None:
                with self._wal_lock:  # one whole state, even while a writer applies
                    state = tail.state
            version = manifest.version + (state.records if state is not None else 0)
            if self._snapshot is not None and self._snapshot.version == version:
                return self._snapshot
            self._snapshot = self._build(manifest, state if state and state.records else None)
            return self._snapshot

    def _logged(self, manifest: Manifest) -> bool:
        """Whether ``manifest``'s version may have a log of small ingests to
        replay: a log file that is not empty, or one replayed already.  When
        not, the snapshot is the manifest's, as a replay of nothing gives (and
        a reader does not import the log's machinery, which is the ingest's)."""
        path = self._backend.wal_path(manifest.version)
        if path is None:
            return False
        with self._wal_lock:
            if self._tail is not None:
                return True
        try:
            return os.stat(path).st_size > 0
        except FileNotFoundError:
            return False
        except OSError:
            return True  # the replay reports it

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "memory"
        return f"Store({where}, node={self.node!r})"


def init_root(root: Path, schema: Schema | str | Path, node: str) -> tuple[Schema, Definitions]:
    """The checks and the store-level files before a node is added to ``root``
    (created when new): the schema read and the shared definitions."""
    from audience.runtime.tracking.config import secret as tracking_secret

    schema = _schema(schema)
    _check_node(node)
    event_property_types(schema, "schema")  # a bad schema fails before anything is written
    if (root / STORE_FILE).is_file():
        if node_dir(root, node).exists():
            raise StoreError(f"{root}: already a store with a node '{node}'")
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise StoreError(f"{root}: exists and is not an empty directory")
    else:
        root.mkdir(parents=True, exist_ok=True)
        _write_atomic(root / STORE_FILE, json.dumps({"format": FORMAT, "kind": "audience-store"}))
    defs = Definitions(root / DEFINITIONS_FILE)
    defs.list_segments()  # creates the database and runs the migrations
    tracking_secret(root)  # the key tracking links are signed with (docs/tracking.md)
    return schema, defs


def _schema(schema: Schema | str | Path) -> Schema:
    """A Schema, a schema file's path, or (a str with a line break or a leading
    ``[``: no path looks so) the TOML text of one."""
    if isinstance(schema, Schema):
        return schema
    try:
        if isinstance(schema, str) and ("\n" in schema or schema.lstrip().startswith("[")):
            return Schema.from_toml(schema)
        return Schema.load(schema)
    except SchemaError as exc:
        raise StoreError(str(exc)) from None


def _check_node(node: str) -> None:
    if not _NODE_NAME.match(node):
        raise StoreError(f"bad node name {node!r}: use letters, digits, '_' and '-'")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Units(Protocol):
    @property
    def units(self) -> int: ...  # progress made by one batch


B = TypeVar("B", bound=_Units)


def _progress(batches: Iterator[B], total: int | None, name: str, show: bool) -> Iterator[B]:
    if not show or (total is not None and total < PROGRESS_MIN_UNITS):
        yield from batches
        return
    from rich.progress import Progress

    with Progress(transient=True) if show else nullcontext() as bar:
        assert bar is not None
        task = bar.add_task(f"ingesting {name}", total=total)
        for batch in batches:
            yield batch
            bar.advance(task, batch.units)
