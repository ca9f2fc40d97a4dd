"""A segment compiled once for every shard: plain, picklable data.

The compiled program names event types, properties and string literals by
their text: each is resolved against the dictionaries of the snapshot it
runs over (engine.strings builds a lookup table per dictionary, cached), so
one program serves shards whose dictionaries differ.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from audience.compiler.physical import Program
from audience.engine.context import EvalContext
from audience.engine.execute import run_program
from audience.engine.strings import LutCache
from audience.runtime.ids import member_ids

if TYPE_CHECKING:
    from audience.runtime.store import Store
    from audience.schema import Schema
    from audience.snapshot import Snapshot

# Lookup tables of this process, for every shard it evaluates (keyed by the
# dictionary object, so a shard's new version never reads a stale one).
_LUTS = LutCache()
# id(schema) -> (the schema, kept alive so the id stays its own; its version)
_versions: dict[int, tuple[Schema, str]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ShardProgram:
    """What a shard needs to evaluate a segment: the physical program, the
    definition's time zone (for ``as_of`` text without an offset) and the
    schema version it was checked against."""

    program: Program
    timezone: str
    schema_version: str
    plan_text: str


def run_on(
    snapshot: Snapshot, program: ShardProgram, now_ms: int, *, explain: bool = False
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The member mask of one shard's snapshot (and its explain report)."""
    if _version(snapshot.schema) != program.schema_version:
        raise ValueError(
            f"the program was compiled for schema {program.schema_version}, "
            f"the shard has {snapshot.schema.version}"
        )
    return run_program(program.program, EvalContext(snapshot, now_ms, _LUTS), explain=explain)


def _version(schema: Schema) -> str:
    """``schema.version`` (a hash of its JSON), computed once per schema object:
    a shard's snapshots share their store's schema."""
    with _lock:
        hit = _versions.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
    version = schema.version
    with _lock:
        if len(_versions) >= 64:
            _versions.clear()
        _versions[id(schema)] = (schema, version)
    return version


def shard_members(store: Store, program: ShardProgram, as_of_ms: int) -> pa.Array:
    """The member contact ids of one shard (an Arrow string array) as of
    ``as_of_ms`` (epoch milliseconds), read from its newest version."""
    snap = store.snapshot()
    mask, _ = run_on(snap, program, int(as_of_ms))
    return member_ids(snap.contact_ids, np.flatnonzero(mask))
