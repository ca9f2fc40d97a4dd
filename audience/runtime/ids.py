"""An audience's member ids as Arrow, and its ids/csv/jsonl text.

The store keeps the contact ids as one Arrow string array (the contacts
dictionary; dense index i -> id i).  The members' ids are that array taken at
the members' indexes, or, cheaper still, a dictionary array whose indices are
those indexes (no id copied: a million members in a millisecond or two); no
Python string per member either way.  The text outputs are made a chunk at a
time by Arrow kernels, so writing millions of ids streams with bounded memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import IO

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc

# ids per chunk of text output (and per Arrow batch of the HTTP stream)
CHUNK = 65_536
FORMATS = ("ids", "csv", "jsonl")


def arrow_of(contact_ids: Sequence[str]) -> pa.Array | None:
    """The Arrow string array behind a snapshot's contact ids, when it has one."""
    arr = getattr(contact_ids, "arrow", None)
    if not isinstance(arr, pa.Array) or len(arr) != len(contact_ids) or arr.null_count:
        return None
    return arr if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else None


def member_ids(
    contact_ids: Sequence[str], idx: np.ndarray, *, dictionary: bool = False
) -> pa.Array:
    """The ids of the contacts at dense indexes ``idx``: an Arrow string
    array, or with ``dictionary`` a dictionary array whose dictionary is every
    contact id of the snapshot and whose indices are ``idx``."""
    arr = arrow_of(contact_ids)
    if arr is None:  # a snapshot made of Python strings (tests, subsets)
        arr = pa.array([contact_ids[i] for i in idx.tolist()], pa.string())
        if not dictionary:
            return arr
        idx = np.arange(len(idx), dtype=np.int64)
    if not dictionary:
        return arr.take(pa.array(idx))
    narrow = len(arr) <= np.iinfo(np.int32).max
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32) if narrow else idx), arr)


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data bytes) of a string or large_string array, as numpy views."""
    _, off_buf, data_buf = arr.buffers()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(off_buf, dtype=dtype)[arr.offset : arr.offset + len(arr) + 1]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return offsets, data


# --------------------------------------------------------------------------- text
def _data(arr: pa.Array) -> memoryview:
    """The bytes of a string array's values, back to back."""
    offsets, data = _string_parts(arr)
    return memoryview(data[offsets[0] : offsets[-1]].data)


def _plain(arr: pa.Array, forbidden: bytes) -> bool:
    """No value empty, every byte printable ASCII and none of ``forbidden``."""
    offsets, data = _string_parts(arr)
    if len(arr) and np.any(offsets[1:] == offsets[:-1]):
        return False
    body = data[offsets[0] : offsets[-1]]
    bad = (body < 0x20) | (body > 0x7E)
    for b in forbidden:
        bad |= body == b
    return not bool(bad.any())


def _suffixed(arr: pa.Array, prefix: str, suffix: str) -> bytes:
    """``prefix + value + suffix`` for every value, joined (Arrow's kernel:
    the bytes are copied once, no Python string per value)."""
    return bytes(_data(pc.binary_join_element_wise(prefix, arr, suffix, "")))


def _text(arr: pa.Array, fmt: str) -> bytes:
    if fmt == "ids":
        return _suffixed(arr, "", "\n")
    if fmt == "jsonl":
        if _plain(arr, b'"\\'):
            return _suffixed(arr, '{"contact_id": "', '"}\n')
        return "".join(json.dumps({"contact_id": i}) + "\n" for i in arr.to_pylist()).encode()
    if _plain(arr, b',"'):
        return _suffixed(arr, "", "\n")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([i] for i in arr.to_pylist())
    return buf.getvalue().encode()


def text_chunks(ids: pa.Array | pa.ChunkedArray, fmt: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """The lines of ``fmt`` (ids, csv or jsonl) for ``ids`` (strings, or a
    dictionary array of strings, decoded a chunk at a time), ``chunk`` ids at
    a time; csv starts with its header.  The same bytes as writing each id
    with ``print``, ``csv.writer`` and ``json.dumps`` (UTF-8)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if fmt == "csv":
        yield b"contact_id\n"
    for start in range(0, len(ids), chunk):
        part = ids.slice(start, chunk)
        if pa.types.is_dictionary(part.type):
            part = part.dictionary_decode()
        yield _text(part, fmt)


def write_ids(
    ids: pa.Array | pa.ChunkedArray, fmt: str, out: IO[bytes], chunk: int = CHUNK
) -> None:
    """Write ``ids`` as ``fmt`` (ids, csv or jsonl) to a binary stream."""
    for part in text_chunks(ids, fmt, chunk):
        out.write(part)


def write_text(ids: pa.Array | pa.ChunkedArray, fmt: str, stream: IO[str]) -> None:
    """Write ``ids`` as ``fmt`` to a text stream: as bytes to its binary
    buffer when it has one (stdout), else decoded."""
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        write_ids(ids, fmt, buffer)
        buffer.flush()
        return
    for part in text_chunks(ids, fmt):
        stream.write(part.decode("utf-8"))
