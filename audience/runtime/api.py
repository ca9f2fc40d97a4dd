"""``node.compile(text)`` (audience.runtime.node): parse, check and compile a
segment text once, then evaluate it against the node's current version as
often as asked.

Repeated compiles of the same text are free: the result is cached per node by
the text, the schema version and the versions of the saved segments it may
reference (a saved segment that changes invalidates what inlined it).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from audience.dsl.ast import Program, Segment
from audience.dsl.check import check
from audience.dsl.errors import DslError
from audience.dsl.parser import parse
from audience.runtime.evaluate import AsOf, Audience, CompiledSegment, compile_cached
from audience.runtime.saved import one_segment, saved_segments

if TYPE_CHECKING:
    from audience.runtime.node import Node

_CACHE_MAX = 256


class StoreSegment:
    """A compiled segment bound to a store: ``evaluate`` reads the newest version."""

    def __init__(self, store: Node, segment: Segment, compiled: CompiledSegment) -> None:
        self.store = store
        self.segment = segment
        self.compiled = compiled

    @property
    def name(self) -> str:
        return self.segment.name

    @property
    def plan_text(self) -> str:
        return self.compiled.plan_text

    def evaluate(self, as_of: AsOf = None, *, explain: bool = False) -> Audience:
        return self.compiled.evaluate(self.store.snapshot(), as_of, explain=explain)

    def __repr__(self) -> str:
        return f"<StoreSegment {self.segment.name!r}>"


class SegmentCompiler:
    """Per-store cache of compiled texts (thread-safe)."""

    def __init__(self, store: Node) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str, tuple[tuple[str, int], ...]], StoreSegment] = {}
        self._resolver: _Resolver | None = None

    def _resolver_for(self, versions: tuple[tuple[str, int], ...]) -> _Resolver:
        # One resolver object per set of saved versions: compile_cached keys on its
        # identity, so texts that differ only in layout share the compiled plan.
        with self._lock:
            if self._resolver is None or self._resolver.versions != versions:
                self._resolver = _Resolver(saved_segments(self.store), versions)
            return self._resolver

    def compile(self, text: str, *, filename: str = "<segment>") -> StoreSegment:
        saved_versions = tuple((s.name, s.version) for s in self.store.list_segments())
        key = (text, filename, self.store.schema.version, saved_versions)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        program = parse(text, filename=filename)
        segment = one_segment(program, text, filename, name="<condition>")
        bound = self._compile(segment, text, filename, saved_versions)
        with self._lock:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = bound
        return bound

    def compile_segment(
        self,
        segment: Segment,
        *,
        text: str,
        filename: str,
        siblings: Mapping[str, Segment] | None = None,
    ) -> StoreSegment:
        """Check and compile an already parsed segment; ``text`` is its source, for
        errors.  ``siblings`` are the other segments of the same file: ``in segment``
        sees them before the saved ones, as ``audience check`` does."""
        versions = tuple((s.name, s.version) for s in self.store.list_segments())
        return self._compile(segment, text, filename, versions, siblings)

    def _compile(
        self,
        segment: Segment,
        text: str,
        filename: str,
        versions: tuple[tuple[str, int], ...],
        siblings: Mapping[str, Segment] | None = None,
    ) -> StoreSegment:
        resolver = self._resolver_for(versions)
        if siblings:  # a resolver of its own: it must not be shared through the cache
            resolver = _Resolver({**resolver.saved, **siblings}, versions)
        found = check(
            Program(definitions=(segment,)), self.store.schema, known_segments=resolver.saved
        )
        if found:
            raise DslError(found, text, filename)
        compiled = compile_cached(
            segment.cond, self.store.schema, timezone=segment.tz_name, segment_resolver=resolver
        )
        return StoreSegment(self.store, segment, compiled)


class _Resolver:
    """The saved segments as of one version set.  Equal version sets make equal
    resolvers, so the compile cache is shared across texts that reference them."""

    def __init__(self, saved: dict[str, Segment], versions: tuple[tuple[str, int], ...]) -> None:
        self.saved = saved
        self.versions = versions

    def __call__(self, name: str) -> Segment | None:
        return self.saved.get(name)
