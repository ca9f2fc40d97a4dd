"""The rows last uploaded (one Arrow file per sync) and the difference a run uploads.

The file holds the hashed rows the audience holds after the last successful run.
It is replaced (written aside, then renamed) only once the platform acknowledged a
run's last batch.  A run that failed part-way cannot know exactly what the platform
kept, so the file then becomes a superset (what was there plus what the run meant to
add) marked inexact: the next run removes everything in it that is not eligible and
adds every eligible row again (adding a member twice changes nothing), which
leaves no contact without consent in the audience, whatever the failure was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from audience.integrations.meta.sync.eligible import KEY, unique_rows

ADD = "add"
REMOVE = "remove"
REPLACE = "replace"


@dataclass(frozen=True)
class Changes:
    removes: pa.Table
    adds: pa.Table


def diff(previous: pa.Table | None, target: pa.Table, exact: bool) -> Changes:
    """Rows to remove (uploaded before, not eligible now) and to add (eligible, not
    uploaded before; every eligible row when the previous file is inexact)."""
    if previous is None or previous.num_rows == 0:
        return Changes(target.slice(0, 0), target)
    previous = previous.select(target.column_names)
    gone = pc.invert(pc.is_in(previous[KEY], value_set=target[KEY]))
    removes = previous.filter(gone)
    if not exact:
        return Changes(removes, target)
    new = pc.invert(pc.is_in(target[KEY], value_set=previous[KEY]))
    return Changes(removes, target.filter(new))


def union(a: pa.Table | None, b: pa.Table) -> pa.Table:
    if a is None or a.num_rows == 0 or a.column_names != b.column_names:
        return b
    return unique_rows(pa.concat_tables([a, b]).combine_chunks())


def read_table(path: Path) -> pa.Table | None:
    if not path.exists():
        return None
    with ipc.open_file(path) as reader:
        return reader.read_all()


def write_table(path: Path, table: pa.Table) -> None:
    """Written aside and renamed: a reader sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
