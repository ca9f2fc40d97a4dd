"""Cursors over large audiences, and the per-node cache that keeps them consistent.

A cursor names one evaluation: the node, the store version it read, the
evaluation time (ms), the digest of the segment text and the offset of the
next page.  Every page of a cursor comes from that same version and time, so
paging never skips or repeats a contact while ingests land.  The server
keeps the last audiences it computed and the last snapshots it read; a
cursor whose version is neither cached nor current is answered 410
``cursor_expired`` (start again without a cursor) rather than silently
mixing versions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from audience.runtime.evaluate import Audience
from audience.snapshot import Snapshot

SNAPSHOTS_KEPT = 8


@dataclass(frozen=True)
class Cursor:
    node: str
    version: int
    now_ms: int
    digest: str
    offset: int

    def encode(self) -> str:
        raw = json.dumps(
            [self.node, self.version, self.now_ms, self.digest, self.offset],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """None when ``text`` is not a cursor this server made."""
        if len(text) > 1000:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = json.loads(raw)
        except (binascii.Error, ValueError):
            return None
        if not isinstance(data, list) or len(data) != 5:
            return None
        node, version, now_ms, digest, offset = data
        ints = (version, now_ms, offset)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            return None
        if not isinstance(node, str) or not isinstance(digest, str) or min(version, offset) < 0:
            return None
        return cls(node, version, now_ms, digest, offset)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class AudienceCache:
    """Recent audiences by (version, now_ms, digest) and recent snapshots by
    version, least recently used first out (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.size = max(size, 1)
        self._lock = threading.Lock()
        self._audiences: OrderedDict[tuple[int, int, str], Audience] = OrderedDict()
        self._snapshots: OrderedDict[int, Snapshot] = OrderedDict()

    def keep_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            _put(self._snapshots, snapshot.version, snapshot, SNAPSHOTS_KEPT)

    def snapshot(self, version: int) -> Snapshot | None:
        with self._lock:
            return _get(self._snapshots, version)

    def keep(self, version: int, now_ms: int, digest: str, audience: Audience) -> None:
        with self._lock:
            _put(self._audiences, (version, now_ms, digest), audience, self.size)

    def audience(self, version: int, now_ms: int, digest: str) -> Audience | None:
        with self._lock:
            return _get(self._audiences, (version, now_ms, digest))


def _put(d: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    d[key] = value
    d.move_to_end(key)
    while len(d) > size:
        d.popitem(last=False)


def _get(d: OrderedDict[Any, Any], key: Any) -> Any:
    value = d.get(key)
    if value is not None:
        d.move_to_end(key)
    return value
