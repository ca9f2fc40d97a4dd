"""Customer-file custom audiences for the fake Graph server: create and list them under
an ads account, add and remove rows (``/users`` POST and DELETE), replace them
(``/usersreplace``) in sessions of ``batch_seq`` numbered batches, count what was
received and what was invalid, and read their counts and ``operation_status``.

Members are kept as a set of rows (the hash, or the tuple of hashes of a multi-key
schema), so a million-row upload costs set operations only. A row is invalid when a
value is neither a 64-character lower-case hex SHA-256 nor empty (the unknown value
of a multi-key row); invalid rows are counted and never become members.

``install(fake)`` registers the routes and returns the ``FakeAudiences`` state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from audience.integrations.meta.fake.server import Call, Fail, FakeGraph

_HASH = re.compile(r"[0-9a-f]{64}\Z")
MAX_ROWS = 10_000
SESSION_S = 90 * 60  # a session without last_batch_flag closes 90 minutes after its first batch
REPLACE_UPDATING = 1870145
REPLACE_TIMED_OUT = 1870158
REPLACE_NO_FIRST_BATCH = 1870147
REPLACE_FINISHED = 1870159
REPLACE_TOO_LARGE = 1870144
STATUS_NORMAL = {"code": 200, "description": "Normal"}
STATUS_REPLACING = {"code": 300, "description": "Replace in progress"}
STATUS_REPLACE_ERROR = {"code": 400, "description": "Replace error"}

Row = str | tuple[str, ...]


@dataclass
class Session:
    kind: str  # "add", "remove" or "replace"
    started: int  # unix seconds of its first batch
    batches: set[int] = field(default_factory=set)
    received: int = 0
    invalid: int = 0
    finished: bool = False
    rows: set[Row] = field(default_factory=set)  # a replace's new members, until its last batch


@dataclass
class Audience:
    id: str
    account: str
    name: str
    customer_file_source: str
    description: str = ""
    members: set[Row] = field(default_factory=set)
    sessions: dict[int, Session] = field(default_factory=dict)
    replacing: int | None = None  # the open replace session
    operation_status: dict[str, Any] = field(default_factory=lambda: dict(STATUS_NORMAL))


@dataclass
class FakeAudiences:
    fake: FakeGraph
    audiences: dict[str, Audience] = field(default_factory=dict)
    max_per_account: int = 500
    replace_limit: int = 100_000_000
    uploads: int = 0  # upload calls so far
    upload_faults: dict[int, Fail] = field(default_factory=dict)  # nth upload -> its error
    _next_id: int = 23840000000000000

    def create(self, account: str, name: str, source: str = "USER_PROVIDED_ONLY") -> Audience:
        self._next_id += 1
        aud = Audience(str(self._next_id), account, name, source)
        self.audiences[aud.id] = aud
        return aud

    # ---- routes ---------------------------------------------------------------
    def _create(self, call: Call) -> tuple[int, Any]:
        account = _group(call, 1)
        p = call.params
        if not p.get("name"):
            raise Fail(100, "(#100) The parameter name is required")
        if p.get("subtype", "CUSTOM") != "CUSTOM":
            raise Fail(100, "(#100) Only CUSTOM audiences are supported here")
        source = p.get("customer_file_source", "")
        if source not in (
            "USER_PROVIDED_ONLY",
            "PARTNER_PROVIDED_ONLY",
            "BOTH_USER_AND_PARTNER_PROVIDED",
        ):
            raise Fail(100, "(#100) customer_file_source must be one of the documented values")
        with self.fake.lock:
            owned = sum(1 for a in self.audiences.values() if a.account == account)
            if owned >= self.max_per_account:
                raise Fail(2654, "Custom audience limit reached for this ad account")
            aud = self.create(account, p["name"], source)
            aud.description = p.get("description", "")
        return 200, {"id": aud.id}

    def _list(self, call: Call) -> tuple[int, Any]:
        account = _group(call, 1)
        with self.fake.lock:
            items = [
                {"id": a.id, "name": a.name}
                for a in self.audiences.values()
                if a.account == account
            ]
        limit = int(call.params.get("limit", 25))
        start = int(call.params["after"][1:]) if "after" in call.params else 0
        chunk = items[start : start + limit]
        body: dict[str, Any] = {"data": chunk}
        if chunk:
            end = start + len(chunk)
            body["paging"] = {"cursors": {"before": f"c{start}", "after": f"c{end}"}}
            if end < len(items):
                body["paging"]["next"] = f"/{self.fake.version}/{call.path}?after=c{end}"
        return 200, body

    def _read(self, call: Call) -> tuple[int, Any]:
        aud = self._audience(_group(call, 1))
        with self.fake.lock:
            self._expire(aud)
            n = len(aud.members)
            out: dict[str, Any] = {
                "id": aud.id,
                "name": aud.name,
                "approximate_count_lower_bound": n,
                "approximate_count_upper_bound": n,
                "operation_status": dict(aud.operation_status),
                "delivery_status": {"code": 200, "description": "This audience is ready for use."},
                "customer_file_source": aud.customer_file_source,
            }
        fields = call.params.get("fields")
        if fields:
            keep = {"id", *fields.split(",")}
            out = {k: v for k, v in out.items() if k in keep}
        return 200, out

    def _users(self, call: Call) -> tuple[int, Any]:
        kind = (
            "remove" if call.method == "DELETE" or call.params.get("method") == "DELETE" else "add"
        )
        return self._upload(call, kind)

    def _replace(self, call: Call) -> tuple[int, Any]:
        return self._upload(call, "replace")

    # ---- uploads --------------------------------------------------------------
    def _upload(self, call: Call, kind: str) -> tuple[int, Any]:
        aud = self._audience(_group(call, 1))
        payload = call.json_field("payload")
        session = call.json_field("session")
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise Fail(100, "(#100) payload with schema and data is required")
        if not isinstance(session, dict) or not isinstance(session.get("session_id"), int):
            raise Fail(100, "(#100) session with a session_id is required")
        sid, seq = session["session_id"], session.get("batch_seq")
        if sid <= 0 or sid >= 2**63 or not isinstance(seq, int) or seq < 1:
            raise Fail(100, "(#100) session_id must be a positive int64 and batch_seq from 1")
        with self.fake.lock:
            self.uploads += 1
            fault = self.upload_faults.pop(self.uploads, None)
        if fault is not None:
            raise fault
        data = payload["data"]
        if len(data) > MAX_ROWS:
            raise Fail(100, f"(#100) at most {MAX_ROWS} rows per request")
        keys = payload.get("schema")
        width = len(keys) if isinstance(keys, list) else 1
        rows, invalid, samples = _rows(data, width)
        last = bool(session.get("last_batch_flag"))
        now = self.fake.now()
        with self.fake.lock:
            self._expire(aud)
            s = aud.sessions.get(sid)
            if kind == "replace":
                s = self._replace_session(aud, sid, seq, s, now)
            else:
                if aud.replacing is not None:
                    raise Fail(2650, "Audience is being replaced", subcode=REPLACE_UPDATING)
                if s is None:
                    s = aud.sessions[sid] = Session(kind, now)
                elif s.finished or now - s.started > SESSION_S:
                    raise Fail(2650, "This session has finished", subcode=REPLACE_FINISHED)
            if seq not in s.batches:  # a retried batch is counted once
                s.batches.add(seq)
                s.received += len(data)
                s.invalid += invalid
                if kind == "add":
                    aud.members |= rows
                elif kind == "remove":
                    aud.members -= rows
                else:
                    s.rows |= rows
            if last:
                s.finished = True
                if kind == "replace":
                    aud.members, s.rows = s.rows, set()
                    aud.replacing = None
                    aud.operation_status = dict(STATUS_NORMAL)
            body = {
                "audience_id": aud.id,
                "session_id": sid,
                "num_received": s.received,
                "num_invalid_entries": s.invalid,
                "invalid_entry_samples": samples,
            }
        return 200, body

    def _replace_session(
        self, aud: Audience, sid: int, seq: int, s: Session | None, now: int
    ) -> Session:
        if len(aud.members) > self.replace_limit:
            raise Fail(2650, "Audience too large to replace", subcode=REPLACE_TOO_LARGE)
        if s is None:
            if aud.replacing is not None:
                raise Fail(2650, "Audience is still being replaced", subcode=REPLACE_UPDATING)
            if seq != 1:
                raise Fail(
                    2650,
                    "The first batch (batch_seq 1) was not received",
                    subcode=REPLACE_NO_FIRST_BATCH,
                )
            s = aud.sessions[sid] = Session("replace", now)
            aud.replacing = sid
            aud.operation_status = dict(STATUS_REPLACING)
            return s
        if s.kind == "replace" and now - s.started > SESSION_S:
            raise Fail(2650, "The replace session timed out", subcode=REPLACE_TIMED_OUT)
        if s.kind != "replace" or s.finished:
            raise Fail(2650, "This replace session has finished", subcode=REPLACE_FINISHED)
        return s

    def _expire(self, aud: Audience) -> None:
        """A replace session past its 90 minutes ends in error (the members stay as they were)."""
        sid = aud.replacing
        if sid is not None and self.fake.now() - aud.sessions[sid].started > SESSION_S:
            aud.sessions[sid].finished = True
            aud.sessions[sid].rows = set()
            aud.replacing = None
            aud.operation_status = dict(STATUS_REPLACE_ERROR)

    def _audience(self, audience_id: str) -> Audience:
        aud = self.audiences.get(audience_id)
        if aud is None:
            raise Fail(
                100,
                f"Unsupported request - Object with ID '{audience_id}' does not exist",
                subcode=33,
                type="GraphMethodException",
            )
        return aud


def _group(call: Call, i: int) -> str:
    assert call.match is not None
    return call.match.group(i)


def _rows(data: list[Any], width: int) -> tuple[set[Row], int, list[str]]:
    """The valid rows as a set, how many were invalid, and up to 100 invalid samples."""
    valid = _HASH.match
    if width == 1:
        flat = [r[0] if isinstance(r, list) and len(r) == 1 else r for r in data]
        good = {v for v in flat if isinstance(v, str) and valid(v)}
        bad = [v for v in flat if not (isinstance(v, str) and valid(v))]
        return good, len(bad), [str(v) for v in bad[:100]]  # type: ignore[return-value]
    rows: set[Row] = set()
    bad_rows: list[str] = []
    for r in data:
        ok = (
            isinstance(r, list)
            and len(r) == width
            and all(isinstance(v, str) and (v == "" or valid(v)) for v in r)
            and any(r)
        )
        if ok:
            rows.add(tuple(r))
        else:
            bad_rows.append(str(r))
    return rows, len(bad_rows), bad_rows[:100]


def install(fake: FakeGraph) -> FakeAudiences:
    state = FakeAudiences(fake)
    fake.route("POST", r"act_(\d+)/customaudiences", state._create)
    fake.route("GET", r"act_(\d+)/customaudiences", state._list)
    fake.route("GET", r"(\d+)", state._read)
    fake.route("POST", r"(\d+)/users", state._users)
    fake.route("DELETE", r"(\d+)/users", state._users)
    fake.route("POST", r"(\d+)/usersreplace", state._replace)
    return state
