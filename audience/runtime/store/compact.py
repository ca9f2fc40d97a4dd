"""Compaction: small ingests must not leave a node with thousands of files.

Every ingest that accepts events writes at least one partition and one chunk
of the ``__ids__`` dictionary (plus chunks of any dictionary it grew).  A
stream of single-event ingests would leave one tiny file per event, and the
manifest, the snapshot and every scan would grow with them.  So at each
commit, the newest few entries are merged once they have together caught up
with the one before them (``merge_groups``), as in an LSM tree: a node then
holds a logarithmic number of small files, and each row is rewritten a
logarithmic number of times.

Partitions merge only within their time bucket (a calendar month) and only
below ``PARTITION_ROWS``; dictionary chunks merge in order, so a value keeps
its position (its code).  The files merged away are deleted later, with any
other file no version names (``Backend.collect``).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from audience.runtime.store.encode import TS, sort_partition
from audience.runtime.store.layout import Manifest, PartitionMeta

FANOUT = 4
PARTITION_ROWS = 256 * 1024  # bigger partitions come from big ingests: left alone
CHUNK_VALUES = 1 << 16  # a big ingest writes bigger chunks: never rewritten

Write = Callable[[str, pa.Table], str]  # (kind, table) -> file name
Read = Callable[[str], pa.Table]


def merge_groups(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """Ranges ``[i, j)`` of consecutive entries to merge into one each.

    A stack of (start, end, size): each entry is pushed, then the newest
    ``k >= FANOUT`` entries (the fewest that qualify) become one while the
    oldest of them is no bigger than the others together, all under
    ``limit``.  Afterwards every entry but the newest ``FANOUT - 1`` is bigger
    than all newer ones together, so sizes at least double going back: a
    list holds at most ``FANOUT + log2(total)`` entries under the limit, and
    each row is rewritten about log2(limit) times.  (A plain size-tier rule
    never merges a list whose sizes alternate, such as 16, 1, 16, 1.)  On a
    list that was compacted before, only its tail can change."""
    stack: list[tuple[int, int, int]] = []
    for i, size in enumerate(sizes):
        stack.append((i, i + 1, size))
        while True:
            newer = 0
            for k in range(2, len(stack) + 1):
                start, _, oldest = stack[-k]
                newer += stack[-k + 1][2]
                if oldest >= limit or stack[-k + 1][2] >= limit:
                    k = 0
                    break
                if k >= FANOUT and oldest <= newer:
                    break
            else:
                k = 0
            if k == 0:
                break
            end = stack[-1][1]
            del stack[-k:]
            stack.append((start, end, oldest + newer))
    return [(a, b) for a, b, _ in stack if b - a > 1]


def compact(m: Manifest, read: Read, write: Write) -> list[str]:
    """Merge ``m``'s small partitions and dictionary chunks in place; return
    the files merged away (the caller adds them to the garbage)."""
    gone: list[str] = []
    gone += _partitions(m, read, write)
    for key in sorted(m.dictionaries):
        gone += _chunks(m, key, read, write)
    return gone


def _partitions(m: Manifest, read: Read, write: Write) -> list[str]:
    by_bucket: dict[str, list[int]] = {}
    for i, p in enumerate(m.partitions):
        by_bucket.setdefault(p.bucket, []).append(i)
    replace: dict[int, PartitionMeta | None] = {}
    gone: list[str] = []
    for bucket, idx in sorted(by_bucket.items()):
        for a, b in merge_groups([m.partitions[i].rows for i in idx], PARTITION_ROWS):
            members = [m.partitions[i] for i in idx[a:b]]
            table = sort_partition([read(p.file) for p in members])
            ts = table.column(TS).chunk(0)
            meta = PartitionMeta(
                write("partitions", table),
                table.num_rows,
                int(ts[0].as_py()),
                int(ts[-1].as_py()),
                bucket,
            )
            replace[idx[a]] = meta  # the merged one takes the first one's place
            for i in idx[a + 1 : b]:
                replace[i] = None
            gone += [p.file for p in members]
    if replace:
        kept = [replace.get(i, p) for i, p in enumerate(m.partitions)]
        m.partitions = [p for p in kept if p is not None]
    return gone


def _chunks(m: Manifest, key: str, read: Read, write: Write) -> list[str]:
    chunks = m.dictionaries[key]
    groups = merge_groups([c for _, c in chunks], CHUNK_VALUES)
    if not groups:
        return []
    gone: list[str] = []
    out: list[tuple[str, int]] = []
    pos = 0
    for a, b in groups:
        out += chunks[pos:a]
        values = pa.concat_arrays(
            [read(name).column("value").combine_chunks() for name, _ in chunks[a:b]]
        )
        out.append((write("dictionaries", pa.table({"value": values})), len(values)))
        gone += [name for name, _ in chunks[a:b]]
        pos = b
    out += chunks[pos:]
    m.dictionaries[key] = out
    return gone
