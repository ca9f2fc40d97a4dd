"""What one batch of journey moves reads from the store, fetched once for all
its contacts (columnar): their dense indexes, and per delivery their email and
rendered message (audience.runtime.plans.render, the same rendering plans use).
Profile changes made by ``add_tag`` / ``set`` actions are gathered here and
written after the batch's transaction, by one profile ingest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.dsl.errors import DslError
from audience.runtime.plans.frozen import frozen_table, strings
from audience.runtime.plans.render import Renderer, RunFailed
from audience.runtime.plans.service import parse_delivery
from audience.runtime.triggers.actions import ProfileUpdates

if TYPE_CHECKING:
    from audience.runtime.node import Node
    from audience.runtime.plans.definitions import PlanDefinitions
    from audience.snapshot import Snapshot


@dataclass(frozen=True)
class Message:
    """One contact's message of a delivery: ``error`` says why none can be sent."""

    email: str | None
    payload: dict[str, Any]
    error: str | None = None


@dataclass
class Context:
    store: Node
    plan_defs: PlanDefinitions
    contacts: set[str]
    now: int = 0
    dry: bool = False  # a dry run: profile changes are only reported
    updates: ProfileUpdates = field(default_factory=ProfileUpdates)
    # addresses on the suppression list, of those looked up (by the mover)
    unsub: dict[str, str] = field(default_factory=dict)  # address -> the list's reason
    unsub_checked: set[str] = field(default_factory=set)
    # delivery key -> (kind, ts, link, link text) of its clicks and opens, for
    # the keys the batch's runs may watch (None: read one by one)
    signals: dict[str, list[tuple[str, int, str | None, str | None]]] | None = None
    _snapshot: Snapshot | None = None
    _index: dict[str, int] | None = None
    messages: dict[str, dict[str, Message]] = field(default_factory=dict)
    _delivery_errors: dict[str, str] = field(default_factory=dict)

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self._snapshot = self.store.snapshot()
        return self._snapshot

    def know(self, snapshot: Snapshot, indexes: dict[str, int]) -> None:
        """Contacts whose dense indexes the caller has (an ingest's batch)."""
        self._snapshot = snapshot
        self._index = {**(self._index or {}), **indexes}

    def index(self, contact_id: str) -> int:
        """The contact's dense index in the snapshot (-1: unknown)."""
        known = self._index if self._index is not None else {}
        if contact_id not in known:  # every batch contact not known yet, at once
            ids = sorted((self.contacts | {contact_id}) - known.keys())
            found = pc.index_in(pa.array(ids, pa.string()), strings(self.snapshot.contact_ids))
            idx = np.asarray(pc.fill_null(found, -1), dtype=np.int64)
            self._index = known = {**known, **dict(zip(ids, idx.tolist(), strict=True))}
        return known[contact_id]

    def message(self, delivery: str, contact_id: str) -> Message:
        if delivery not in self.messages:
            self._render(delivery)
        err = self._delivery_errors.get(delivery)
        if err is not None:
            return Message(None, {}, err)
        found = self.messages[delivery].get(contact_id)
        if found is None:
            self._render(delivery, {contact_id})
            found = self.messages[delivery].get(contact_id)
        return found or Message(None, {}, None)

    def _render(self, name: str, more: set[str] | None = None) -> None:
        """Every batch contact's message of delivery ``name`` at once."""
        out = self.messages.setdefault(name, {})
        saved = self.plan_defs.get_delivery(self.store.node, name)
        if saved is None:
            self._delivery_errors[name] = f"delivery {name!r} is not saved"
            return
        try:
            delivery = _parsed(saved.text, name)
            renderer = Renderer(self.store, delivery, saved.version)
        except (DslError, ValueError, RunFailed) as exc:
            self._delivery_errors[name] = f"delivery {name!r} cannot be sent: {exc}"
            return
        wanted = sorted((more or self.contacts) - out.keys())
        idx = np.array([self.index(c) for c in wanted], dtype=np.int64)
        known = idx[idx >= 0]
        table, _ = frozen_table(self.snapshot, known, delivery)
        cids, emails, payloads, _ = renderer.chunk(table)
        cid_list, email_list = cids.to_pylist(), emails.to_pylist()
        if isinstance(payloads, dict):
            per = [payloads] * len(cid_list)
        else:
            texts = [None if t is None else json.loads(t) for t in payloads.dictionary.to_pylist()]
            codes = np.asarray(payloads.indices, dtype=np.int64).tolist()
            per = [texts[k] for k in codes]
        for cid, email, payload in zip(cid_list, email_list, per, strict=True):
            out[cid] = Message(email, payload)
        with_email = set(table.column("contact_id").to_pylist())
        for cid in wanted:
            if cid not in out:  # no email (or unknown), or a message that does not render
                why = "the message does not render" if cid in with_email else None
                out[cid] = Message(None, {}, why)

    def apply_updates(self) -> None:
        """Write the batch's profile changes (after its transaction committed)."""
        if self.dry:
            return
        if rows := self.updates.records():
            self.store.ingest_profiles(rows)
        if added := self.updates.additions():
            lists = sorted({k for r in added for k in r if k != "contact_id"})
            self.store.ingest_profiles(added, merge_lists=lists)


_deliveries: dict[tuple[str, str], Any] = {}


def _parsed(text: str, name: str) -> Any:
    """A saved delivery's AST, parsed once per text (a click moves one run: the
    parse would be most of its cost)."""
    key = (name, text)
    if key not in _deliveries:
        if len(_deliveries) > 256:
            _deliveries.clear()
        _deliveries[key] = parse_delivery(text, name)
    return _deliveries[key]
