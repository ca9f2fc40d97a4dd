"""Creating, scheduling and queueing syncs, with every check made before anything is
written: an unknown node, segment, field or integration, a match key that is not a
string field, a consent field that is not a bool, a bad destination or schedule are
refused with a stable code (``SyncError.code``)."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audience.dsl.errors import DslError
from audience.integrations.meta.sync.definitions import (
    DIFF,
    REPLACE,
    SOURCES,
    Job,
    Sync,
    SyncDefinitions,
    SyncError,
)
from audience.runtime.plans.clock import Clock
from audience.runtime.store.errors import StoreError
from audience.runtime.store.layout import list_nodes
from audience.runtime.triggers.definitions import check_name
from audience.timecalc import iso_utc

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_EVERY = re.compile(r"every\s+(\d{1,4})\s+(hour|day)s?", re.IGNORECASE)


@dataclass(frozen=True)
class SyncSpec:
    """What a new sync is made of (the CLI's options, the API's body)."""

    name: str
    node: str
    segment: str
    integration: str
    email_field: str | None = None
    phone_field: str | None = None
    consent_field: str | None = None
    audience_id: str | None = None
    audience_name: str | None = None
    customer_file_source: str = "USER_PROVIDED_ONLY"
    country_code: str = "1"
    schedule: str | None = None


def parse_every(text: str) -> int:
    """``every N hours`` / ``every N days`` as milliseconds (N from 1)."""
    m = _EVERY.fullmatch(text.strip())
    if m is None or int(m.group(1)) < 1:
        raise SyncError(
            "bad_schedule", f"bad schedule {text!r}: write 'every N hours' or 'every N days'"
        )
    return int(m.group(1)) * (HOUR_MS if m.group(2).lower() == "hour" else DAY_MS)


def every_text(ms: int | None) -> str | None:
    if ms is None:
        return None
    n, unit = (ms // DAY_MS, "day") if ms % DAY_MS == 0 else (ms // HOUR_MS, "hour")
    return f"every {n} {unit}{'' if n == 1 else 's'}"


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(ms, "seconds")


def sync_view(s: Sync) -> dict[str, Any]:
    """A sync as JSON (the CLI's ``--format json`` and the API)."""
    out = s.to_dict()
    out["schedule"] = every_text(s.every_ms)
    out["next_due"] = _iso(s.next_due_ms)
    out["match_keys"] = [k.lower() for k in s.keys]
    del out["every_ms"], out["next_due_ms"]
    return out


def job_view(j: Job) -> dict[str, Any]:
    out = j.to_dict()
    for k in ("created", "started", "finished"):
        out[k] = _iso(out.pop(f"{k}_ms"))
    return out


def segment_condition(store_segments: set[str], segment: str) -> str:
    """The condition text a sync evaluates: a saved segment by name, or the text itself."""
    if segment in store_segments:
        escaped = segment.replace("\\", "\\\\").replace('"', '\\"')
        return f'in segment "{escaped}"'
    return segment


class SyncService:
    def __init__(self, root: Path | str, clock: Clock) -> None:
        self.root = Path(root)
        self.defs = SyncDefinitions(self.root)
        self.clock = clock

    def create(self, spec: SyncSpec) -> Sync:
        try:
            name = check_name(spec.name, "sync")
        except StoreError as err:
            raise SyncError("bad_name", str(err)) from err
        if self.defs.find(name) is not None:
            raise SyncError("sync_exists", f"sync {name!r} already exists")
        self._check_integration(spec.integration)
        self._check_store(spec)
        audience_id, audience_name = _destination(spec)
        if spec.customer_file_source not in SOURCES:
            raise SyncError(
                "bad_source",
                f"bad customer_file_source {spec.customer_file_source!r}: one of "
                + ", ".join(SOURCES),
            )
        if not spec.country_code.isdigit() or spec.country_code.startswith("0"):
            raise SyncError(
                "bad_country_code",
                f"bad country code {spec.country_code!r}: digits without a leading 0",
            )
        every = parse_every(spec.schedule) if spec.schedule else None
        now = self.clock()
        return self.defs.insert(
            {
                "name": name,
                "node": spec.node,
                "segment": spec.segment,
                "consent_field": spec.consent_field,
                "email_field": spec.email_field,
                "phone_field": spec.phone_field,
                "country_code": spec.country_code,
                "integration": spec.integration,
                "audience_id": audience_id,
                "audience_name": audience_name,
                "customer_file_source": spec.customer_file_source,
                "every_ms": every,
                "next_due_ms": None if every is None else now + every,
                "created_ms": now,
                "updated_ms": now,
            }
        )

    def schedule(self, name: str, every: str | None) -> Sync:
        """Repeat every period from now (None: only when asked)."""
        sync = self.defs.get(name)
        ms = parse_every(every) if every else None
        now = self.clock()
        self.defs.update(
            sync.id, every_ms=ms, next_due_ms=None if ms is None else now + ms, updated_ms=now
        )
        return self.defs.get(name)

    def run(self, name: str, *, replace: bool = False) -> tuple[Job, bool]:
        """Queue a run now; the open job instead (False) when one is queued or running."""
        sync = self.defs.get(name)
        return self.defs.queue(sync, REPLACE if replace else DIFF, "manual", self.clock())

    def queue_due(self) -> list[Job]:
        """Queue the scheduled syncs that are due and move their next due time on
        (past the present: a long pause queues one run, not one per missed period)."""
        now = self.clock()
        queued = []
        for sync in self.defs.due(now):
            assert sync.every_ms is not None and sync.next_due_ms is not None
            job, fresh = self.defs.queue(sync, DIFF, "schedule", now)
            missed = (now - sync.next_due_ms) // sync.every_ms + 1
            self.defs.update(sync.id, next_due_ms=sync.next_due_ms + missed * sync.every_ms)
            if fresh:
                queued.append(job)
        return queued

    # ---- checks -----------------------------------------------------------------
    def _check_integration(self, name: str) -> None:
        try:
            with self.defs.db() as db:
                found = db.execute("select 1 from integrations where name = ?", (name,)).fetchone()
        except sqlite3.OperationalError:  # no integration was ever connected
            found = None
        if found is None:
            raise SyncError("no_integration", f"no integration named {name!r}")

    def _check_store(self, spec: SyncSpec) -> None:
        from audience.runtime.node import open_node

        if spec.node not in list_nodes(self.root):
            raise SyncError("no_node", f"no node named {spec.node!r} in this store")
        store = open_node(self.root, spec.node)
        fields = store.schema.profile
        if not spec.email_field and not spec.phone_field:
            raise SyncError(
                "no_match_key", "give a match key: an email field, a phone field or both"
            )
        for what, f in (("email", spec.email_field), ("phone", spec.phone_field)):
            if f is None:
                continue
            if f not in fields:
                raise SyncError("no_field", f"{what} field {f!r} is not a profile field")
            if fields[f] != "string":
                raise SyncError(
                    "field_not_string", f"{what} field {f!r} is a {fields[f]}, not a string"
                )
        c = spec.consent_field
        if c is not None:
            if c not in fields:
                raise SyncError("no_field", f"consent field {c!r} is not a profile field")
            if fields[c] != "bool":
                raise SyncError(
                    "consent_not_bool", f"consent field {c!r} is a {fields[c]}, not a bool"
                )
        saved = {s.name for s in store.list_segments()}
        if spec.segment in saved:
            return
        try:
            store.segment_compiler.compile(spec.segment, filename="<sync segment>")
        except DslError as err:
            if re.fullmatch(r"[\w.-]+", spec.segment.strip()):  # meant as a name
                raise SyncError(
                    "no_segment", f"no saved segment named {spec.segment!r} (nor a condition)"
                ) from err
            raise SyncError("bad_segment", f"the segment does not check:\n{err}") from err


def _destination(spec: SyncSpec) -> tuple[str | None, str | None]:
    if (spec.audience_id is None) == (spec.audience_name is None):
        raise SyncError(
            "bad_destination", "give either an existing audience id or a new audience's name"
        )
    if spec.audience_id is not None:
        if not spec.audience_id.isdigit():
            raise SyncError("bad_destination", f"bad audience id {spec.audience_id!r}: digits")
        return spec.audience_id, None
    assert spec.audience_name is not None
    if not spec.audience_name.strip():
        raise SyncError("bad_destination", "the new audience's name is empty")
    return None, spec.audience_name.strip()
