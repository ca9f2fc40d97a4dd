"""``/v1/syncs`` on a live server: create (checked, with stable codes), list, show, run
(202 with the job, then run by the worker against the fake Graph server), history,
schedule, delete; scopes and nodes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from audience.runtime.store import Store
from tests.helpers.server_api import start
from tests.meta_sync_support import SCHEMA, expected_hashes, world

BODY = {
    "name": "women",
    "segment": 'gender = "f"',
    "integration": "ads",
    "email_field": "email",
    "consent_field": "consent",
    "audience_name": "Women",
}


def test_syncs_over_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with world(tmp_path) as w:
        # the server's own Graph configuration, not the environment's
        monkeypatch.delenv("AUDIENCE_META_GRAPH_URL", raising=False)
        Store.init(w.root, SCHEMA, node="other")
        live = start(w.root, graph=w.config)
        try:
            api, reader, other = live.client("write"), live.client("read"), live.client("other")
            bad = api.post("/v1/syncs", {**BODY, "consent_field": "gender"})
            assert bad.status == 400 and bad.json()["error"]["code"] == "consent_not_bool"
            assert api.post("/v1/syncs", {**BODY, "nope": 1}).status == 400
            assert reader.post("/v1/syncs", BODY).status == 403
            made = api.post("/v1/syncs", BODY)
            assert made.status == 201, made.body
            assert made.json()["match_keys"] == ["email"]
            assert api.post("/v1/syncs", BODY).json()["error"]["code"] == "sync_exists"
            assert [s["name"] for s in reader.get("/v1/syncs").json()["syncs"]] == ["women"]
            assert other.get("/v1/syncs").json()["syncs"] == []
            assert other.get("/v1/syncs/women").status == 404
            queued = api.post("/v1/syncs/women/runs")
            assert queued.status == 202 and queued.json()["state"] == "queued"
            job_id = queued.json()["id"]
            assert queued.headers["location"] == f"/v1/syncs/women/runs/{job_id}"
            again = api.post("/v1/syncs/women/runs", {"replace": True})
            assert again.status == 202 and again.json()["id"] == job_id
            [done] = w.worker().work_once()
            assert done.state == "succeeded"
            shown = reader.get(f"/v1/syncs/women/runs/{job_id}").json()
            assert (shown["state"], shown["progress"]) == ("succeeded", 1.0)
            want = expected_hashes(w.store, lambda r: r["gender"] == "f" and r["consent"])
            assert shown["counts"]["sent"] == len(want) and w.members() == want
            assert reader.get("/v1/syncs/women").json()["last_job"]["id"] == job_id
            platform = reader.get("/v1/syncs/women?platform=true").json()["platform"]
            assert platform["approximate_count_lower_bound"] == len(want)
            assert platform["operation_status"]["code"] == 200
            assert reader.get("/v1/syncs/women?platform=maybe").status == 400
            runs = reader.get("/v1/syncs/women/runs").json()["runs"]
            assert [r["id"] for r in runs] == [job_id]
            assert reader.get("/v1/syncs/women/runs/999").status == 404
            sch = api.request("PUT", "/v1/syncs/women/schedule", {"every": "every 12 hours"})
            assert sch.status == 200 and sch.json()["schedule"] == "every 12 hours"
            bad_sch = api.request("PUT", "/v1/syncs/women/schedule", {"every": "weekly"})
            assert bad_sch.json()["error"]["code"] == "bad_schedule"
            busy = api.post("/v1/syncs/women/runs")
            assert busy.status == 202
            refused = api.request("DELETE", "/v1/syncs/women")
            assert refused.status == 409 and refused.json()["error"]["code"] == "sync_busy"
            w.worker().work_once()
            assert api.request("DELETE", "/v1/syncs/women").json() == {"deleted": "women"}
            assert reader.get("/v1/syncs/women").status == 404
        finally:
            live.server.stop()


def test_an_unreachable_platform_is_the_same_502_as_on_every_meta_endpoint(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        # a port nobody listens on (the discard port), without retries
        down = replace(w.config, base_url="http://127.0.0.1:9", max_retries=0)
        live = start(w.root, graph=down)
        try:
            api = live.client("write")
            assert api.post("/v1/syncs", BODY).status == 201
            assert api.post("/v1/syncs/women/runs").status == 202
            [done] = w.worker().work_once()  # the audience exists on the platform
            assert done.state == "succeeded"
            for path in ("/v1/syncs/women?platform=true", "/v1/integrations/ads/check"):
                method = "POST" if path.endswith("/check") else "GET"
                r = api.request(method, path, None)
                assert (r.status, r.json()["error"]["code"]) == (502, "graph_unavailable"), path
                assert r.json()["error"]["graph_code"] == 0
        finally:
            live.server.stop()
