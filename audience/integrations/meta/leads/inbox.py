"""The lead inbox: one row per ``leadgen_id`` (the primary key is the dedup: a
notification delivered twice, or a lead both notified and backfilled, is one
row).  The webhook and the backfill only insert; a worker takes rows with a
lease (``holder``, ``lease_until``: one UPDATE, so of two workers one gets a
row; a lease that ran out, its worker killed, is taken over) and finishes
them.  States: ``pending`` (to do, retried at ``next_ms``), ``done``,
``unrouted`` (no connected form: processed when one is connected), ``failed``
(the platform says the lead does not exist)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audience.integrations.meta.leads import db

PENDING, DONE, UNROUTED, FAILED = "pending", "done", "unrouted", "failed"
STATES = (PENDING, DONE, UNROUTED, FAILED)


@dataclass(frozen=True)
class InboxLead:
    leadgen_id: str
    form_id: str | None
    page_id: str | None
    notice: dict[str, Any] | None
    lead: dict[str, Any] | None
    via: str
    state: str
    form: str | None
    node: str | None
    contact_id: str | None
    attempts: int
    last_error: str | None
    received_ms: int
    done_ms: int | None
    unmapped: dict[str, Any] | None
    missing: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        lead = self.lead or {}
        return {
            "leadgen_id": self.leadgen_id,
            "form_id": self.form_id,
            "state": self.state,
            "via": self.via,
            "form": self.form,
            "contact_id": self.contact_id,
            "created_time": lead.get("created_time"),
            "received_ms": self.received_ms,
            "done_ms": self.done_ms,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "unmapped": self.unmapped or {},
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class Finished:
    leadgen_id: str
    state: str
    error: str | None = None
    unmapped: dict[str, Any] | None = None
    missing: tuple[str, ...] = ()


_COLUMNS = (
    "leadgen_id, form_id, page_id, notice, lead, via, state, form, node, contact_id, attempts, "
    "last_error, received_ms, done_ms, unmapped, missing"
)


class Inbox:
    def __init__(self, store_root: Path | str) -> None:
        self.path = db.ensure(store_root)

    # ---- arriving ---------------------------------------------------------
    def add(
        self, items: Iterable[tuple[str, str | None, str | None, Any, Any]], via: str, now: int
    ) -> int:
        """Insert ``(leadgen_id, form_id, page_id, notice, lead)`` rows not
        already there, in one synced transaction; returns how many were new."""
        rows = [
            (lid, form, page, _dump(notice), _dump(lead), via, now)
            for lid, form, page, notice, lead in items
        ]
        with db.connect(self.path) as conn:
            before = conn.total_changes
            conn.executemany(
                "insert or ignore into lead_inbox (leadgen_id, form_id, page_id, notice, lead, "
                "via, state, received_ms) values (?, ?, ?, ?, ?, ?, 'pending', ?)",
                rows,
            )
            return conn.total_changes - before

    # ---- working ----------------------------------------------------------
    def claim(self, holder: str, now: int, lease_ms: int, limit: int = 50) -> list[InboxLead]:
        with db.connect(self.path) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "select leadgen_id from lead_inbox where state = 'pending' and next_ms <= ? "
                    "and (lease_until is null or lease_until <= ? or holder = ?) "
                    "order by received_ms, leadgen_id limit ?",
                    [now, now, holder, limit],
                )
            ]
            taken = [
                lid
                for lid in ids
                if conn.execute(
                    "update lead_inbox set holder = ?, lease_until = ? where leadgen_id = ? "
                    "and state = 'pending' and (lease_until is null or lease_until <= ? "
                    "or holder = ?)",
                    [holder, now + lease_ms, lid, now, holder],
                ).rowcount
                == 1
            ]
            rows = [
                conn.execute(
                    f"select {_COLUMNS} from lead_inbox where leadgen_id = ?", [lid]
                ).fetchone()
                for lid in taken
            ]
        return [_lead(r) for r in rows]

    def note(self, notes: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Record progress (the fetched lead, the chosen contact), for several
        leads in one transaction, before acting on it: a retry after a crash
        repeats the same decisions."""
        with db.connect(self.path) as conn:
            for leadgen_id, values in notes:
                sets = ", ".join(f"{k} = ?" for k in values)
                conn.execute(
                    f"update lead_inbox set {sets} where leadgen_id = ?",
                    [
                        *(_dump(v) if isinstance(v, dict) else v for v in values.values()),
                        leadgen_id,
                    ],
                )

    def finish(self, done: Iterable[Finished], now: int) -> None:
        with db.connect(self.path) as conn:
            conn.executemany(
                "update lead_inbox set state = ?, done_ms = ?, last_error = ?, unmapped = ?, "
                "missing = ?, holder = null, lease_until = null where leadgen_id = ?",
                [
                    (
                        f.state,
                        now,
                        f.error,
                        _dump(f.unmapped),
                        json.dumps(list(f.missing)),
                        f.leadgen_id,
                    )
                    for f in done
                ],
            )

    def retry(self, leadgen_id: str, error: str, next_ms: int) -> None:
        with db.connect(self.path) as conn:
            conn.execute(
                "update lead_inbox set attempts = attempts + 1, last_error = ?, next_ms = ?, "
                "holder = null, lease_until = null where leadgen_id = ?",
                [error, next_ms, leadgen_id],
            )

    # ---- reading ----------------------------------------------------------
    def get(self, leadgen_id: str) -> InboxLead:
        with db.connect(self.path) as conn:
            row = conn.execute(
                f"select {_COLUMNS} from lead_inbox where leadgen_id = ?", [leadgen_id]
            ).fetchone()
        if row is None:
            raise KeyError(leadgen_id)
        return _lead(row)

    def states(self, ids: Iterable[str]) -> dict[str, str]:
        with db.connect(self.path) as conn:
            return {
                lid: conn.execute(
                    "select state from lead_inbox where leadgen_id = ?", [lid]
                ).fetchone()[0]
                for lid in ids
            }

    def recent(
        self, form_id: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[InboxLead]:
        where, args = _where(form_id, state)
        with db.connect(self.path) as conn:
            rows = conn.execute(
                f"select {_COLUMNS} from lead_inbox{where} "
                "order by received_ms desc, leadgen_id desc limit ?",
                [*args, limit],
            ).fetchall()
        return [_lead(r) for r in rows]

    def counts(self, form_id: str | None = None) -> dict[str, int]:
        """Leads by state, and the stored ones with unmapped or missing fields."""
        where, args = _where(form_id, None)
        with db.connect(self.path) as conn:
            out = {s: 0 for s in STATES}
            for state, n in conn.execute(
                f"select state, count(*) from lead_inbox{where} group by state", args
            ):
                out[state] = n
            extra = conn.execute(
                f"select count(*) filter (where unmapped is not null and unmapped != '{{}}'), "
                f"count(*) filter (where missing is not null and missing != '[]') "
                f"from lead_inbox{where}{' and' if where else ' where'} state = 'done'",
                args,
            ).fetchone()
        out["with_unmapped"], out["with_missing"] = int(extra[0]), int(extra[1])
        return out

    def pending(self) -> int:
        return self.counts()[PENDING]


def _where(form_id: str | None, state: str | None) -> tuple[str, list[str]]:
    conds, args = [], []
    if form_id is not None:
        conds.append("form_id = ?")
        args.append(form_id)
    if state is not None:
        conds.append("state = ?")
        args.append(state)
    return (" where " + " and ".join(conds) if conds else ""), args


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _lead(row: tuple[Any, ...]) -> InboxLead:
    (lid, form_id, page, notice, lead, via, state, form, node, contact, attempts, err,
     received, done, unmapped, missing) = row  # fmt: skip
    return InboxLead(
        lid,
        form_id,
        page,
        _load(notice),
        _load(lead),
        via,
        state,
        form,
        node,
        contact,
        attempts,
        err,
        received,
        done,
        _load(unmapped),
        tuple(_load(missing) or ()),
    )
