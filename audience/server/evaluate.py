"""``POST /v1/evaluate``: a segment or condition as DSL text -> its audience.

The answer is one page of contact ids (``limit``, default 1000) with a
``next`` cursor while more remain; every page of a cursor reads the same store
version at the same time (see paging.py).  ``"format": "arrow"`` streams the
ids from the cursor's offset (0 without one) to the end as Arrow IPC instead,
ignoring ``limit``.  The saved segments' ``/audience`` endpoint shares this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import pyarrow as pa
from flask import Blueprint, Response, jsonify

from audience.runtime.api import StoreSegment
from audience.runtime.evaluate import Audience, parse_as_of
from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards.program import ShardProgram
from audience.runtime.shards.segment import ShardedSegment
from audience.server.bodies import ARROW_STREAM
from audience.server.context import current_node, requires
from audience.server.contract import (
    Body,
    Setting,
    Values,
    accepts,
    choice,
    flag,
    integer,
    text,
    time,
)
from audience.server.errors import ApiError, bad_request
from audience.server.nodes import NodeRuntime
from audience.server.paging import Cursor, text_digest
from audience.snapshot import Snapshot
from audience.timecalc import iso_utc

bp = Blueprint("evaluate", __name__)
log = logging.getLogger("audience.server")

MAX_TEXT = 100_000
# as_of is kept to years 1900..9999, where every window computation stays in range
MIN_AS_OF_MS = -2_208_988_800_000
MAX_AS_OF_MS = 253_402_300_799_999
ARROW_BATCH = 65_536
CURSOR = text(
    1000,
    description="the 'next' of a previous page: the same store version and time (as_of is "
    "then ignored); 410 once that version is no longer kept",
)
LIMIT = integer(0, Setting("max_limit"), Setting("default_limit"), description="ids per page")
EXPLAIN = flag(description="with a report of how each part of the segment was evaluated")
EVALUATE = Body(
    "EvaluateRequest",
    {
        "segment": text(MAX_TEXT, required=True, description="DSL text: a condition or a segment"),
        "as_of": time(),
        "limit": LIMIT,
        "cursor": CURSOR,
        "explain": EXPLAIN,
        "format": choice("json", "arrow", description="arrow: every id as an Arrow IPC stream"),
    },
)


@dataclass(frozen=True)
class Query:
    text: str
    filename: str
    as_of: str | int | None = None
    limit: int = 1000
    cursor: str | None = None
    explain: bool = False
    fmt: str = "json"
    saved: bool = False  # the text of a saved segment (which may change under a cursor)


@bp.post("/v1/evaluate")
@requires("read")
@accepts(EVALUATE)
def evaluate(body: Values) -> Response:
    query = Query(
        text=body["segment"],
        filename="<segment>",
        as_of=body["as_of"],
        limit=body["limit"],
        cursor=body["cursor"],
        explain=body["explain"],
        fmt=body["format"],
    )
    return run_query(current_node(), query)


def out_of_range(exc: Exception) -> ApiError:
    # Dates and durations at the edge of what datetime holds (9999-12-31, or
    # 99999999 months before now) can overflow while checking or evaluating;
    # that is the request's range, not a server fault.
    log.warning("out of range: %r", exc)
    return bad_request("out_of_range", f"a date or duration is out of range: {exc}")


def compile_text(store: Node, text: str, filename: str) -> StoreSegment:
    """``store.compile``; a DslError propagates (a 400 with line and column)."""
    try:
        return store.compile(text, filename=filename)
    except (OverflowError, ValueError) as exc:
        raise out_of_range(exc) from None


def run_query(node: NodeRuntime, q: Query) -> Response:
    seg = compile_text(node.store, q.text, q.filename)
    digest = text_digest(q.text)
    cache = node.audiences
    if q.cursor is not None:
        cursor = Cursor.decode(q.cursor)
        if q.saved and cursor is not None and cursor.digest != digest:
            raise ApiError(
                410,
                "cursor_expired",
                "the saved segment changed since this cursor was made",
                "evaluate again without a cursor",
            )
        if cursor is None or cursor.node != node.store.node or cursor.digest != digest:
            raise bad_request(
                "bad_cursor",
                "this cursor was not made for this segment text on this node",
                "send the same segment text the cursor came with",
            )
        version, now_ms, offset = cursor.version, cursor.now_ms, cursor.offset
        aud = cache.audience(version, now_ms, digest)
        if (aud is None or (q.explain and aud.explain is None)) and sharded(node.store):
            aud = _again_sharded(node.store, seg, version, now_ms, q.explain)
            cache.keep(version, now_ms, digest, aud)
        elif aud is None or (q.explain and aud.explain is None):
            snap = cache.snapshot(version)
            if snap is None:
                current = node.store.snapshot()
                snap = current if current.version == version else None
            if snap is None:
                raise _expired(version)
            aud = _run(seg, snap, now_ms, q.explain)
            cache.keep(version, now_ms, digest, aud)
    elif node.cluster is not None:
        # the shards' workers answer from each shard's newest version: the
        # cursor's version is theirs (a cursor whose audience left the cache
        # is answered again here, in process, from those same versions)
        now_ms, offset = _now_ms(q.as_of, seg), 0
        aud, version = _on_cluster(node.cluster, _on_shards(seg).program, now_ms, q.explain)
        cache.keep(version, now_ms, digest, aud)
    elif sharded(node.store):
        snaps = node.store.snapshots()  # the shards' newest versions, one each
        version, now_ms, offset = node.store.version_of(snaps), _now_ms(q.as_of, seg), 0
        aud = _guarded(lambda: _on_shards(seg).evaluate_on(snaps, now_ms, explain=q.explain))
        cache.keep(version, now_ms, digest, aud)
    else:
        snap = node.store.snapshot()
        cache.keep_snapshot(snap)
        version, now_ms, offset = snap.version, _now_ms(q.as_of, seg), 0
        aud = _run(seg, snap, now_ms, q.explain)
        cache.keep(version, now_ms, digest, aud)
    if q.fmt == "arrow":
        return _arrow(aud, version, offset)
    count = len(aud)
    # the page's ids only, taken from the store's Arrow array (not the whole
    # audience, nor every contact id made a Python string)
    page = aud.id_array(offset, offset + q.limit).to_pylist()
    end = offset + len(page)
    more = end < count and q.limit > 0
    nxt = Cursor(node.store.node, version, now_ms, digest, end).encode() if more else None
    body: dict[str, Any] = {
        "count": count,
        "ids": page,
        "next": nxt,
        "as_of": iso_ms(now_ms),
        "version": version,
        "explain": plain(aud.explain) if q.explain else None,
    }
    return jsonify(body)


def _run(seg: StoreSegment, snap: Snapshot, now_ms: int, explain: bool) -> Audience:
    return _guarded(lambda: seg.compiled.evaluate(snap, now_ms, explain=explain))


def _guarded(run: Callable[[], Audience]) -> Audience:
    try:
        return run()
    except (OverflowError, ValueError) as exc:
        raise out_of_range(exc) from None


def _on_cluster(
    cluster: Any, program: ShardProgram, now_ms: int, explain: bool
) -> tuple[Audience, int]:
    """The audience from the shards' workers (with ``explain``: their reports
    summed), and the node's version it was read from (the shards' versions
    summed, as ``ShardedNode.version_of``)."""
    from audience.dist import ClusterError
    from audience.dist.details import explained

    try:
        if explain:
            return explained(cluster, program, now_ms)
        aud, times = cluster.run(program, now_ms)
    except (OverflowError, ValueError) as exc:
        raise out_of_range(exc) from None
    except ClusterError as exc:
        raise ApiError(503, "cluster_unavailable", str(exc)) from None
    return aud, sum(times.versions)


def sharded(store: Any) -> TypeGuard[ShardedNode]:
    return isinstance(store, ShardedNode)


def _again_sharded(
    store: ShardedNode, seg: Any, version: int, now_ms: int, explain: bool
) -> Audience:
    """A cursor's audience again: only the shards' versions it was made on
    give it, and a sharded node keeps only its newest ones."""
    snaps = store.snapshots()
    if store.version_of(snaps) != version:
        raise _expired(version)
    return _guarded(lambda: _on_shards(seg).evaluate_on(snaps, now_ms, explain=explain))


def _on_shards(seg: Any) -> ShardedSegment:
    assert isinstance(seg, ShardedSegment)  # what a ShardedNode compiles
    return seg


def _expired(version: int) -> ApiError:
    return ApiError(
        410,
        "cursor_expired",
        f"store version {version} of this cursor is no longer kept",
        "evaluate again without a cursor",
    )


def _now_ms(as_of: str | int | None, seg: StoreSegment) -> int:
    try:
        ms = parse_as_of(as_of, seg.compiled.timezone)
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad_request("bad_as_of", str(exc), "e.g. 2026-11-01T00:00:00Z") from None
    if not MIN_AS_OF_MS <= ms <= MAX_AS_OF_MS:
        raise bad_request("bad_as_of", "as_of must fall between the years 1900 and 9999")
    return ms


def iso_ms(ms: int) -> str:
    return iso_utc(ms)


def plain(value: Any) -> Any:
    """JSON-ready copy of an explain report (numpy scalars become numbers)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _arrow(aud: Audience, version: int, offset: int) -> Response:
    count = len(aud)
    schema = pa.schema([("contact_id", pa.string())])

    def chunks() -> Iterator[bytes]:
        sink = _Sink()
        with pa.ipc.new_stream(sink, schema) as writer:
            yield sink.take()
            for start in range(offset, count, ARROW_BATCH):
                # a batch's ids taken from the store's Arrow array
                part = aud.id_array(start, start + ARROW_BATCH).cast(pa.string())
                writer.write_batch(pa.record_batch([part], schema))
                yield sink.take()
        yield sink.take()

    headers = {
        "X-Audience-Count": str(len(aud)),
        "X-Store-Version": str(version),
        "X-As-Of": iso_ms(aud.now_ms),
    }
    return Response(chunks(), mimetype=ARROW_STREAM, headers=headers)


class _Sink:
    """A file-like object collecting what the Arrow writer writes, taken per batch."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: Any) -> int:
        b = bytes(data)
        self._parts.append(b)
        return len(b)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out
