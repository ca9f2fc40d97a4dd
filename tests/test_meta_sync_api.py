"""``/v1/syncs`` on a live server: create (checked, with stable codes), list, show, run
(202 with the job, then run by the worker against the fake Graph server), history,
schedule, delete; scopes and nodes."""

from __future__ import annotations

from pathlib import Path

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


def test_syncs_over_http(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        Store.init(w.root, SCHEMA, node="other")
        live = start(w.root)
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
            runs = reader.get("/v1/syncs/women/runs").json()["runs"]
            assert [r["id"] for r in runs] == [job_id]
            assert reader.get("/v1/syncs/women/runs/999").status == 404
            sch = api.request("PUT", "/v1/syncs/women/schedule", {"every": "every 12 hours"})
            assert sch.status == 200 and sch.json()["schedule"] == "every 12 hours"
            bad_sch = api.request("PUT", "/v1/syncs/women/schedule", {"every": "weekly"})
            assert bad_sch.json()["error"]["code"] == "bad_schedule"
            assert api.request("DELETE", "/v1/syncs/women").json() == {"deleted": "women"}
            assert reader.get("/v1/syncs/women").status == 404
        finally:
            live.server.stop()
