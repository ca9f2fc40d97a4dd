"""Lead ads on the fake Graph server: leads per form with ``field_data``
(several values for a multiple choice), organic leads (no ad ids),
``GET /{form_id}/leads`` with ``filtering`` on ``time_created`` and cursor
paging, ``GET /{leadgen_id}``, and the leadgen webhook's notifications,
signed with the app secret (or wrongly, for the tests) and POSTed to a URL.

Faults come from ``FakeGraph.fail_next`` (a dropped connection, a rate limit,
error 190) like every other route."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from audience.integrations.meta.fake.server import Call, Fail, FakeGraph, paged

LEAD_FIELDS = ("id", "created_time", "ad_id", "adset_id", "campaign_id", "form_id", "field_data",
               "is_organic", "platform")  # fmt: skip


@dataclass
class FakeLeads:
    graph: FakeGraph
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)  # leadgen_id -> lead
    pages: dict[str, str] = field(default_factory=dict)  # form_id -> page_id
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)  # form_id -> the form
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7_000_000_001))

    def __post_init__(self) -> None:
        self.graph.route("GET", r"(\d+)/leads", self._form_leads)
        self.graph.route("GET", r"(\d+)", self._lead)

    def add_form(
        self,
        form_id: str,
        page_id: str,
        questions: tuple[str, ...] = ("email", "full_name", "first_name", "city"),
        name: str = "Spring form",
    ) -> None:
        """A form of ``page_id`` asking ``questions`` (their keys)."""
        self.pages[form_id] = page_id
        self.forms[form_id] = {
            "id": form_id,
            "name": name,
            "status": "ACTIVE",
            "questions": [
                {"key": q, "label": q.replace("_", " ").title(), "type": "CUSTOM", "id": str(i)}
                for i, q in enumerate(questions)
            ],
        }

    def add_lead(
        self,
        form_id: str,
        answers: dict[str, str | list[str]],
        created_s: int,
        *,
        ad_id: str | None = "6000000001",
        adset_id: str | None = "6000000002",
        campaign_id: str | None = "6000000003",
        leadgen_id: str | None = None,
        platform: str = "fb",
    ) -> dict[str, Any]:
        """A lead of ``form_id``; ``ad_id=None`` makes it organic (no ad ids at all)."""
        lid = leadgen_id or str(next(self._ids))
        lead: dict[str, Any] = {
            "id": lid,
            "created_time": iso(created_s),
            "form_id": form_id,
            "field_data": [
                {"name": k, "values": v if isinstance(v, list) else [v]} for k, v in answers.items()
            ],
            "is_organic": ad_id is None,
            "platform": platform,
        }
        if ad_id is not None:
            lead |= {"ad_id": ad_id, "adset_id": adset_id, "campaign_id": campaign_id}
        with self.graph.lock:
            self.leads[lid] = lead
        return lead

    # ---- the webhook --------------------------------------------------------
    def notification(self, leads: list[dict[str, Any]]) -> bytes:
        """The body the platform POSTs for ``leads`` (one entry per page), with
        non-ASCII escaped as the platform does."""
        entries: dict[str, list[dict[str, Any]]] = {}
        for lead in leads:
            page = self.pages.get(lead["form_id"], "5000000001")
            value = {
                "leadgen_id": lead["id"],
                "page_id": page,
                "form_id": lead["form_id"],
                "created_time": _unix(lead["created_time"]),
            }
            if lead.get("ad_id"):
                value |= {"ad_id": lead["ad_id"], "adgroup_id": lead["ad_id"]}
            entries.setdefault(page, []).append({"field": "leadgen", "value": value})
        body = {
            "object": "page",
            "entry": [
                {
                    "id": page,
                    "time": max(c["value"]["created_time"] for c in changes),
                    "changes": changes,
                }
                for page, changes in entries.items()
            ],
        }
        return json.dumps(body, ensure_ascii=True).encode()

    def deliver_leadgen(
        self,
        url: str,
        leads: list[dict[str, Any]],
        *,
        secret: str | None = None,
        signature: str | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        """POST a leadgen notification for ``leads`` to ``url``, signed with
        ``secret`` (default: the app's); ``signature`` overrides the header
        ("" sends none).  Returns the answer's status and body."""
        raw = self.notification(leads) if body is None else body
        if signature is None:
            key = (secret if secret is not None else self.graph.app_secret).encode()
            signature = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json"}
        if signature:
            headers["X-Hub-Signature-256"] = signature
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            conn.request(
                "POST", parts.path + (f"?{parts.query}" if parts.query else ""), raw, headers
            )
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    # ---- routes -------------------------------------------------------------
    def _lead(self, call: Call) -> tuple[int, Any]:
        assert call.match is not None
        lead = self.leads.get(call.match.group(1)) or self.forms.get(call.match.group(1))
        if lead is None:
            raise Fail(
                100,
                f"Unsupported get request. Object with ID '{call.match.group(1)}' does not exist",
                subcode=33,
                type="GraphMethodException",
            )
        return 200, _fields(lead, call.params.get("fields"))

    def _form_leads(self, call: Call) -> tuple[int, Any]:
        assert call.match is not None
        form_id = call.match.group(1)
        after = _filter_after(call.json_field("filtering"))
        with self.graph.lock:
            items = sorted(
                (v for v in self.leads.values() if v["form_id"] == form_id),
                key=lambda v: (_unix(v["created_time"]), v["id"]),
                reverse=True,  # the platform answers newest first
            )
        items = [v for v in items if after is None or _unix(v["created_time"]) > after]
        wanted = call.params.get("fields")
        return paged(call, items, self.graph.version, lambda v: _fields(v, wanted))


def install(graph: FakeGraph) -> FakeLeads:
    return FakeLeads(graph)


def iso(unix_s: int) -> str:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _unix(text: str) -> int:
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def _fields(lead: dict[str, Any], fields: str | None) -> dict[str, Any]:
    wanted = set(fields.split(",")) if fields else {"id", "created_time"}
    return {k: v for k, v in lead.items() if k in wanted or k == "id"}


def _filter_after(filtering: Any) -> int | None:
    if filtering is None:
        return None
    if not isinstance(filtering, list):
        raise Fail(100, "(#100) filtering must be an array")
    after = None
    for f in filtering:
        if f.get("field") != "time_created" or f.get("operator") != "GREATER_THAN":
            raise Fail(100, f"(#100) unsupported filter {f!r}")
        after = int(f["value"])
    return after
