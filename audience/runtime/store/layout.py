"""Where a store keeps things, and the manifest that names one version of a node.

STORE/store.json            format marker
STORE/definitions.sqlite    saved definitions, shared by the nodes
STORE/nodes/NODE/schema.toml
STORE/nodes/NODE/manifest.json   the current version: every file it lists is immutable
STORE/nodes/NODE/lock            fcntl lock serialising ingests
STORE/nodes/NODE/{partitions,dictionaries,contacts,profiles,rejects,index}/VVVVVVVV-XXXX.arrow
STORE/nodes/NODE/wal/VVVVVVVV.log   small ingests after manifest version VVVVVVVV (wal.py)

Crash safety: an ingest writes new files (temporary name, rename; each
fsynced, a big one by a thread as soon as it is written, a small one at the
commit, which waits for all of them), then the new manifest (temporary name,
fsync, os.replace, fsync of the directory).  Until the replace, readers and a
crash see the old version; files of a version that never landed, and the
temporary files of a writer killed mid-way (the manifest's among them), are
swept by the next ingest, and files no version names any more are deleted a
grace period later (``collect``).  The in-memory backend keeps the same tables
and manifest in dicts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc

from audience.runtime.store.errors import StoreError

# Keys of the dictionaries the store keeps besides the property ones (here, not
# in dictionaries.py, which loads the kernels of an ingest: reading a snapshot
# needs the names only).
CONTACTS = "__contacts__"
TYPES = "__types__"
IDS = "__ids__"  # every accepted event id: the duplicate index

FORMAT = 1
STORE_FILE = "store.json"
DEFINITIONS_FILE = "definitions.sqlite"
MANIFEST = "manifest.json"
# Files at least this big are fsynced as written, smaller ones together at
# the commit, on up to SYNC_THREADS threads (fsync releases the GIL).
SYNC_NOW_BYTES = 1 << 20
SYNC_THREADS = 8
# The first byte of the lock file: did the last ingest end cleanly?
CLEAN, DIRTY = b"0", b"1"
# Tables kept open by DiskBackend.read_table.
OPENED_FILES = 256
# Files no version names any more are deleted once this old (see ``collect``),
# looked for at most this often.
GRACE_S = 60.0
COLLECT_EVERY_S = 10.0
KINDS = ("partitions", "dictionaries", "contacts", "profiles", "rejects", "index", "wal")


@dataclass
class PartitionMeta:
    file: str
    rows: int
    min_ts: int
    max_ts: int
    bucket: str  # calendar month of the events, "YYYY-MM" (UTC)


@dataclass
class Manifest:
    version: int = 0
    partitions: list[PartitionMeta] = field(default_factory=list)
    # key -> files of its chunks, in order, each with its number of values
    dictionaries: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    contacts: str | None = None  # has_profile + first_event_ts per contact
    profiles: str | None = None  # encoded profile columns per contact
    rejects: list[tuple[str, int]] = field(default_factory=list)
    # runs of the duplicate index (dedup.py), each with its number of ids
    id_index: list[tuple[str, int]] = field(default_factory=list)

    def files(self) -> set[str]:
        """Every file this version names."""
        out = {p.file for p in self.partitions}
        out.update(name for chunks in self.dictionaries.values() for name, _ in chunks)
        out.update(name for name, _ in self.rejects)
        out.update(name for name, _ in self.id_index)
        out.update(name for name in (self.contacts, self.profiles) if name is not None)
        out.add(f"wal/{self.version:08d}.log")  # its log of small ingests (wal.py)
        return out

    def dict_size(self, key: str) -> int:
        return sum(c for _, c in self.dictionaries.get(key, []))

    def to_json(self) -> str:
        # Built by hand and without indent: ``asdict`` and an indented dump
        # (pure-Python encoder) cost milliseconds per ingest once the manifest
        # lists thousands of files, and the manifest is written on every ingest.
        data = {
            "version": self.version,
            "partitions": [
                {
                    "file": p.file,
                    "rows": p.rows,
                    "min_ts": p.min_ts,
                    "max_ts": p.max_ts,
                    "bucket": p.bucket,
                }
                for p in self.partitions
            ],
            "dictionaries": self.dictionaries,
            "contacts": self.contacts,
            "profiles": self.profiles,
            "rejects": self.rejects,
            "id_index": self.id_index,
            "format": FORMAT,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(
                version=int(data["version"]),
                partitions=[PartitionMeta(**p) for p in data["partitions"]],
                dictionaries={
                    k: [(str(f), int(c)) for f, c in v] for k, v in data["dictionaries"].items()
                },
                contacts=data["contacts"],
                profiles=data["profiles"],
                rejects=[(str(f), int(c)) for f, c in data["rejects"]],
                id_index=[(str(f), int(c)) for f, c in data.get("id_index", [])],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{where}: damaged manifest ({exc})") from None

    def copy(self) -> Manifest:
        """A copy an ingest may change (the lists are new; their entries are immutable)."""
        return Manifest(
            version=self.version,
            partitions=list(self.partitions),
            dictionaries={k: list(v) for k, v in self.dictionaries.items()},
            contacts=self.contacts,
            profiles=self.profiles,
            rejects=list(self.rejects),
            id_index=list(self.id_index),
        )


class Backend(Protocol):
    def read_manifest(self) -> Manifest: ...
    def read_table(self, name: str) -> pa.Table: ...
    def pin_table(self, name: str) -> Callable[[], pa.Table]: ...
    def write_table(self, kind: str, version: int, table: pa.Table) -> str: ...
    def commit(self, manifest: Manifest) -> None: ...
    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    def sweep(self, manifest: Manifest) -> None: ...
    def discard(self, names: list[str]) -> None: ...
    def collect(self, manifest: Manifest) -> None: ...
    def dropped(self, names: set[str]) -> None: ...
    def wal_path(self, version: int) -> Path | None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self._tables: dict[str, pa.Table] = {}
        self._manifest = Manifest()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._count = 0

    def read_manifest(self) -> Manifest:
        return self._manifest

    def read_table(self, name: str) -> pa.Table:
        return self._tables[name]

    def pin_table(self, name: str) -> Callable[[], pa.Table]:
        table = self._tables[name]  # held: ``collect`` may drop it from the dict
        return lambda: table

    def write_table(self, kind: str, version: int, table: pa.Table) -> str:
        table = table.combine_chunks()
        with self._write_lock:  # an ingest writes partitions from a second thread
            self._count += 1
            name = f"{kind}/{version:08d}-{self._count}"
            self._tables[name] = table
        return name

    def commit(self, manifest: Manifest) -> None:
        self._manifest = manifest

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def sweep(self, manifest: Manifest) -> None:
        return None

    def discard(self, names: list[str]) -> None:
        for name in names:
            self._tables.pop(name, None)

    def wal_path(self, version: int) -> Path | None:
        return None  # nothing to make durable: small ingests take the regular path

    def dropped(self, names: set[str]) -> None:
        return None  # snapshots hold their tables themselves

    def collect(self, manifest: Manifest) -> None:
        """Drop the tables no version after ``manifest`` can need (snapshots
        hold their own references)."""
        keep = manifest.files()
        self.discard([name for name in self._tables if name not in keep])


class DiskBackend:
    def __init__(self, node_dir: Path) -> None:
        self.dir = node_dir
        self._manifest_path: tuple[Path, Path] | None = None
        self._wal_path: tuple[int, Path, Path] | None = None
        self._thread_lock = threading.Lock()
        # Files and directories written since the last commit whose fsync
        # waits for it: the commit syncs them all at once (concurrently, so a
        # small ingest pays about one fsync round, not one per file), before
        # the manifest names them.
        self._unsynced: set[Path] = set()
        # Big files are synced as soon as written, by a thread of their own
        # (the fsync of a partition or of a batch's ids held up the thread
        # that wrote it, a stage of the ingest's pipeline, for the disk):
        # the commit waits for these first.
        self._syncing: list[Future[None]] = []
        self._syncer: ThreadPoolExecutor | None = None
        self._sync_lock = threading.Lock()  # partitions are written by a second thread
        self._manifest: tuple[str, Manifest] | None = None  # the last one parsed
        self._opened: OrderedDict[str, pa.Table] = OrderedDict()  # read_table's cache
        self._swept = False  # swept once by this process (see ``locked``)
        self._collected = 0.0  # when ``collect`` last listed the directories
        self._unclean = True

    def read_manifest(self) -> Manifest:
        # read at every evaluation (a snapshot checks its version): the path
        # made once, and read without pathlib's per-call parsing
        hit = self._manifest_path
        if hit is None or hit[0] is not self.dir:
            hit = self._manifest_path = (self.dir, self.dir / MANIFEST)
        p = hit[1]
        try:
            with open(p, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise StoreError(f"{p}: cannot read the manifest: {exc.strerror}") from None
        # Parsing costs milliseconds once a node has thousands of files; the
        # text is compared, so a manifest switched meanwhile is never missed.
        # Callers treat the manifest as read-only (an ingest changes a copy).
        cached = self._manifest
        if cached is not None and cached[0] == text:
            return cached[1]
        manifest = Manifest.from_json(text, str(p))
        self._manifest = (text, manifest)
        return manifest

    def read_table(self, name: str) -> pa.Table:
        # Files never change once written, so the last few hundred opened are
        # kept: an ingest reads the index runs and the contacts table every
        # time, and opening a map costs a quarter of a millisecond.
        with self._sync_lock:
            table = self._opened.get(name)
            if table is not None:
                self._opened.move_to_end(name)
                return table
        return self.pin_table(name)()

    def pin_table(self, name: str) -> Callable[[], pa.Table]:
        """``read_table``, deferred: the file is mapped now, so it stays
        readable once no version names it and ``collect`` deletes it, and
        read (its footer and record batch, ~0.5 ms for a partition's) when
        called, by a snapshot's reader that needs it and keeps it."""
        with self._sync_lock:
            table = self._opened.get(name)
            if table is not None:
                self._opened.move_to_end(name)
                return lambda: table
        p = self.dir / name
        try:
            # Memory-mapped: the columns are views of the page cache, not copies.
            mapped = pa.memory_map(str(p), "r")
        except OSError as exc:
            raise StoreError(f"{p}: cannot read a store file: {exc}") from None

        def table_of() -> pa.Table:
            # read at each call: its callers keep what it returns (a
            # LazyPartition's view, a snapshot's dictionary array)
            try:
                table = ipc.open_file(mapped).read_all()
            except (OSError, pa.ArrowInvalid) as exc:
                raise StoreError(f"{p}: cannot read a store file: {exc}") from None
            with self._sync_lock:
                self._opened[name] = table
                while len(self._opened) > OPENED_FILES:
                    self._opened.popitem(last=False)
            return table

        return table_of

    def write_table(self, kind: str, version: int, table: pa.Table) -> str:
        name = f"{kind}/{version:08d}-{uuid.uuid4().hex[:12]}.arrow"
        final = self.dir / name
        tmp = final.with_name(final.name + ".tmp")
        final.parent.mkdir(exist_ok=True)
        table = table.combine_chunks()
        with open(tmp, "wb") as f:
            with ipc.new_file(f, table.schema) as writer:
                # One record batch per file, so every column is one zero-copy buffer.
                writer.write_table(table, max_chunksize=max(table.num_rows, 1))
            f.flush()
            # A big file is synced now, by the sync thread, while the ingest
            # goes on; a small one at the commit.
            big = f.tell() >= SYNC_NOW_BYTES
            fd = os.dup(f.fileno()) if big else -1
        os.replace(tmp, final)
        with self._sync_lock:
            if big:
                if self._syncer is None:
                    self._syncer = ThreadPoolExecutor(1, "store-sync")
                self._syncing.append(self._syncer.submit(_fsync_close, fd))
            else:
                self._unsynced.add(final)
            self._unsynced.add(final.parent)
        return name

    def _synced(self, *, raise_errors: bool = True) -> None:
        """Wait for the big files' fsyncs under way (raising the first error)."""
        with self._sync_lock:
            pending, self._syncing = self._syncing, []
        errors = [exc for f in pending if (exc := f.exception()) is not None]
        if errors and raise_errors:
            raise errors[0]

    def commit(self, manifest: Manifest) -> None:
        tmp = self.dir / (MANIFEST + ".tmp")
        text = manifest.to_json()
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        self._synced()
        with self._sync_lock:
            paths, self._unsynced = sorted(self._unsynced | {tmp}), set()
        # Every file the manifest names, its directory entry, and the new
        # manifest itself are durable before the switch.
        if len(paths) == 1:
            fsync_path(paths[0])
        else:
            list(_sync_pool().map(fsync_path, paths))
        os.replace(tmp, self.dir / MANIFEST)
        fsync_path(self.dir)
        self._manifest = (text, manifest)  # the committer does not change it any more

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The ingest lock.  Its file also says whether the last holder left
        cleanly ("0"): if not (killed, or failed), or on this process's first
        ingest, ``sweep`` lists the directories; otherwise it has nothing to
        find and is skipped (it costs milliseconds on a node of many files)."""
        with self._thread_lock:
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    self._unclean = not self._swept or os.pread(fd, 1, 0) != CLEAN
                    os.pwrite(fd, DIRTY, 0)
                    self._synced(raise_errors=False)  # a failed ingest's files
                    with self._sync_lock:  # ... are swept, not synced
                        self._unsynced = set()
                    yield
                    os.pwrite(fd, CLEAN, 0)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def sweep(self, manifest: Manifest) -> None:
        """Remove what an interrupted ingest left: temporary files (the new
        manifest's too, in the node directory itself: a writer killed between
        writing it and the switch), and files of versions newer than the
        manifest's (they never landed).  Runs under the lock, which every
        writer of these files holds, so none of them is a live writer's."""
        if not self._unclean:
            return
        self._swept = True
        with contextlib.suppress(FileNotFoundError):
            (self.dir / (MANIFEST + ".tmp")).unlink()
        for kind in KINDS:
            # A node made before a kind existed has no directory for it yet.
            if not (self.dir / kind).is_dir():
                continue
            for p in (self.dir / kind).iterdir():
                newer = p.name[:8].isdigit() and int(p.name[:8]) > manifest.version
                if p.name.endswith(".tmp") or newer:
                    with contextlib.suppress(OSError):
                        p.unlink()

    def wal_path(self, version: int) -> Path | None:
        # asked at every evaluation (``Store.snapshot``): the last one kept
        hit = self._wal_path
        if hit is None or hit[0] != version or hit[1] is not self.dir:
            hit = self._wal_path = (version, self.dir, self.dir / "wal" / f"{version:08d}.log")
        return hit[2]

    def dropped(self, names: set[str]) -> None:
        """Files the version being committed stops naming: their grace period
        (``collect`` goes by the modification time) starts now, not when they
        were written."""
        now = time.time()
        for name in names:
            with contextlib.suppress(OSError):
                os.utime(self.dir / name, (now, now))

    def collect(self, manifest: Manifest) -> None:
        """Delete the files ``manifest`` (just committed) does not name and
        that no version has named for ``GRACE_S`` (compaction merged them
        away, a newer contacts table or a checkpoint replaced them; see
        ``dropped``): a reader in another process that read an older manifest
        a moment ago still finds its files.  Runs under
        the ingest lock, at most every ``COLLECT_EVERY_S`` per process."""
        now = time.time()
        if now - self._collected < COLLECT_EVERY_S:
            return
        self._collected = now
        keep = manifest.files()
        for kind in KINDS:
            d = self.dir / kind
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if f"{kind}/{p.name}" in keep or p.name.endswith(".tmp"):
                    continue
                with contextlib.suppress(OSError):
                    if now - p.stat().st_mtime >= GRACE_S:
                        self.discard([f"{kind}/{p.name}"])

    def discard(self, names: list[str]) -> None:
        """Remove files no manifest lists any more (e.g. merged index runs)."""
        for name in names:
            with self._sync_lock:
                self._opened.pop(name, None)
            with contextlib.suppress(OSError):
                (self.dir / name).unlink()


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _sync_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="fsync")
        return _POOL


def create_node_dir(node_dir: Path) -> None:
    node_dir.mkdir(parents=True)
    for kind in KINDS:
        (node_dir / kind).mkdir()


def node_dir(store_dir: Path, node: str) -> Path:
    return store_dir / "nodes" / node


def list_nodes(store_dir: Path) -> list[str]:
    """The names of the nodes of the store at ``store_dir`` (empty if it is none),
    sharded ones (a ``shards.json``, audience.runtime.shards) included."""
    return sorted(
        p.name
        for p in (store_dir / "nodes").glob("*")
        if (p / MANIFEST).is_file() or (p / "shards.json").is_file()
    )
