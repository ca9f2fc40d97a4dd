"""Reading request bodies: a JSON object (its fields are checked by the
route's declaration, contract.py), and batches of records.

Everything a client can get wrong here is a 400 (or 415 for a body kind the
endpoint does not take) with a message that names the field; nothing reaches
the store before the whole body has been read and checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from flask import request

from audience.server.errors import ApiError, bad_request

JSON_TYPES = ("application/json",)
NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
)
ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"


def _mimetype() -> str:
    return (request.mimetype or "").lower()


def _raw() -> bytes:
    return request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH


def parse_json(data: bytes, what: str = "the body") -> Any:
    try:
        value = json.loads(data)
    except UnicodeDecodeError:
        raise bad_request("bad_json", f"{what} is not UTF-8 text") from None
    except ValueError as exc:
        raise bad_request("bad_json", f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("bad_json", f"{what} nests too deeply") from None
    return value


def json_object() -> dict[str, Any]:
    """The body as a JSON object (400 otherwise)."""
    kind = _mimetype()
    if kind and kind not in JSON_TYPES and not kind.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", f"send application/json, not {kind}")
    data = _raw()
    if not data.strip():
        raise bad_request("bad_json", "the request needs a JSON object body")
    value = parse_json(data)
    if not isinstance(value, dict):
        raise bad_request("bad_json", "the body must be a JSON object")
    return value


@dataclass
class Records:
    """A batch of records for the store: dicts (with each one's index in the
    body) or an Arrow table (row i is index i), plus records refused here."""

    source: list[Any] | pa.Table
    positions: list[int] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # {index, field, reason}

    def index_of(self, line: int) -> int:
        """The body index of the store's reject ``line`` (1-based record
        position for dicts, 0-based row for a table)."""
        if isinstance(self.source, pa.Table):
            return line
        return self.positions[line - 1]


def records() -> Records:
    """The body as records: a JSON array (or one object), NDJSON, or Arrow IPC."""
    kind = _mimetype()
    if kind in (ARROW_STREAM, ARROW_FILE):
        return Records(_arrow(_raw(), kind == ARROW_FILE))
    if kind in NDJSON_TYPES:
        return _ndjson(_raw())
    if kind and kind not in JSON_TYPES and not kind.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"cannot read a {kind} body",
            f"send application/json, application/x-ndjson or {ARROW_STREAM}",
        )
    value = parse_json(_raw())
    if not isinstance(value, list | dict):
        raise bad_request("bad_json", "the body must be a JSON array of records or one record")
    items = value if isinstance(value, list) else [value]
    # every item goes to the store, which rejects (and keeps) a non-object
    return Records(items, list(range(len(items))))


def _ndjson(data: bytes) -> Records:
    out = Records([])
    assert isinstance(out.source, list)
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        try:
            value = parse_json(line, f"line {i + 1}")
        except ApiError as err:
            out.refused.append({"index": i, "field": None, "reason": err.message})
            continue
        if isinstance(value, dict):
            out.source.append(value)
            out.positions.append(i)
        else:
            out.refused.append({"index": i, "field": None, "reason": "a record must be an object"})
    return out


def _arrow(data: bytes, file_format: bool) -> pa.Table:
    try:
        buf = pa.py_buffer(data)
        reader = pa.ipc.open_file(buf) if file_format else pa.ipc.open_stream(buf)
        return reader.read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise bad_request("bad_arrow", f"the body is not Arrow IPC: {exc}") from None


_INT = re.compile(r"-?[0-9]{1,18}", re.ASCII)


def query_int(value: str) -> int | None:
    """A query parameter's integer: ASCII digits with an optional minus sign,
    or None for anything else (``--5``, ``²`` and other Unicode digits included)."""
    return int(value) if _INT.fullmatch(value) else None
