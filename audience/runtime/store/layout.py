"""Where a store keeps things, and the manifest that names one version of a node.

STORE/store.json            format marker
STORE/definitions.sqlite    saved definitions, shared by the nodes
STORE/nodes/NODE/schema.toml
STORE/nodes/NODE/manifest.json   the current version: every file it lists is immutable
STORE/nodes/NODE/lock            fcntl lock serialising ingests
STORE/nodes/NODE/{partitions,dictionaries,contacts,profiles,rejects,index}/VVVVVVVV-XXXX.arrow

Crash safety: an ingest writes new files (temporary name, fsync, rename),
then the new manifest (temporary name, fsync, os.replace, fsync of the
directory).  Until the replace, readers and a crash see the old version; files
of a version that never landed are swept by the next ingest.  The in-memory
backend keeps the same tables and manifest in dicts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.ipc as ipc

from audience.runtime.store.errors import StoreError

FORMAT = 1
STORE_FILE = "store.json"
DEFINITIONS_FILE = "definitions.sqlite"
MANIFEST = "manifest.json"
KINDS = ("partitions", "dictionaries", "contacts", "profiles", "rejects", "index")


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

    def dict_size(self, key: str) -> int:
        return sum(c for _, c in self.dictionaries.get(key, []))

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = FORMAT
        return json.dumps(data, indent=1)

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
        return Manifest.from_json(self.to_json(), "<copy>")


class Backend(Protocol):
    def read_manifest(self) -> Manifest: ...
    def read_table(self, name: str) -> pa.Table: ...
    def write_table(self, kind: str, version: int, table: pa.Table) -> str: ...
    def commit(self, manifest: Manifest) -> None: ...
    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    def sweep(self, manifest: Manifest) -> None: ...
    def discard(self, names: list[str]) -> None: ...


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


class DiskBackend:
    def __init__(self, node_dir: Path) -> None:
        self.dir = node_dir
        self._thread_lock = threading.Lock()

    def read_manifest(self) -> Manifest:
        p = self.dir / MANIFEST
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"{p}: cannot read the manifest: {exc.strerror}") from None
        return Manifest.from_json(text, str(p))

    def read_table(self, name: str) -> pa.Table:
        p = self.dir / name
        try:
            # Memory-mapped: the columns are views of the page cache, not copies.
            return ipc.open_file(pa.memory_map(str(p), "r")).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"{p}: cannot read a store file: {exc}") from None

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
            os.fsync(f.fileno())
        os.replace(tmp, final)
        return name

    def commit(self, manifest: Manifest) -> None:
        for kind in KINDS:
            if (self.dir / kind).is_dir():
                _fsync_dir(self.dir / kind)
        tmp = self.dir / (MANIFEST + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(manifest.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / MANIFEST)
        _fsync_dir(self.dir)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._thread_lock, open(self.dir / "lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def sweep(self, manifest: Manifest) -> None:
        """Remove what an interrupted ingest left: temporary files, and files of
        versions newer than the manifest's (they never landed).  Runs under the lock."""
        for kind in KINDS:
            # A node made before a kind existed has no directory for it yet.
            if not (self.dir / kind).is_dir():
                continue
            for p in (self.dir / kind).iterdir():
                newer = p.name[:8].isdigit() and int(p.name[:8]) > manifest.version
                if p.name.endswith(".tmp") or newer:
                    with contextlib.suppress(OSError):
                        p.unlink()

    def discard(self, names: list[str]) -> None:
        """Remove files no manifest lists any more (e.g. merged index runs)."""
        for name in names:
            with contextlib.suppress(OSError):
                (self.dir / name).unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_node_dir(node_dir: Path) -> None:
    node_dir.mkdir(parents=True)
    for kind in KINDS:
        (node_dir / kind).mkdir()


def node_dir(store_dir: Path, node: str) -> Path:
    return store_dir / "nodes" / node


def list_nodes(store_dir: Path) -> list[str]:
    """The names of the nodes of the store at ``store_dir`` (empty if it is none)."""
    return sorted(p.name for p in (store_dir / "nodes").glob("*") if (p / MANIFEST).is_file())
