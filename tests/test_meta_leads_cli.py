"""``audience leadforms`` against the fake Graph server over real HTTP and a
real store: connect (a mapping the schema cannot hold refused, nothing
written), list, show, backfill, leads, work, disconnect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from audience.cli import cli
from audience.integrations.meta.leads.inbox import Inbox
from tests.meta_leads_support import FORM, PAGE, T0_S, World, lead_events, world


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with world(tmp_path, connect=False) as w:
        for k, v in w.env().items():
            monkeypatch.setenv(k, v)
        yield w


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def connect(w: World, *extra: str) -> tuple[int, str, str]:
    return invoke(
        "leadforms", "connect", str(w.root), "spring", "--integration", "shop-ads",
        "--page", PAGE, "--form", FORM, "--map", "email=email", "--map", "full_name=first_name",
        "--require", "email", "--source", "fb-spring", *extra,
    )  # fmt: skip


def test_connect_refuses_a_field_the_schema_lacks(w: World) -> None:
    code, _, err = connect(w, "--map", "job=job_title")
    assert code == 1 and "error[unknown_field]" in err and "'job_title'" in err
    assert invoke("leadforms", "list", str(w.root), "--format", "json")[1].strip() == "[]"
    code, _, err = connect(w, "--map", "shoe_size=preferred_store")
    assert code == 1 and "error[unknown_form_field]" in err and "'shoe_size'" in err
    code, _, err = connect(w, "--require", "phone")
    assert code == 1 and "'phone' is not mapped" in err
    code, _, err = invoke(
        "leadforms", "connect", str(w.root), "x", "--integration", "nope", "--page", PAGE,
        "--form", FORM, "--source", "s",
    )  # fmt: skip
    assert code == 1 and "error[no_integration]" in err


def test_connect_backfill_show_leads_disconnect(w: World) -> None:
    code, out, _ = connect(w, "--format", "json")
    assert code == 0, out
    form = json.loads(out)
    assert form["mapping"][0] == {"field": "email", "to": "email", "required": True}
    assert form["metadata"] == ["ad_id", "adgroup_id", "form_id", "page_id", "leadgen_id",
                                "created_time"]  # fmt: skip
    w.lead({"email": "a@example.com", "full_name": "Ann"}, 1)
    w.lead({"full_name": "No Mail", "shoe_size": "38"}, 2, ad_id=None)
    code, out, _ = invoke("leadforms", "backfill", str(w.root), "spring", "--format", "json")
    assert code == 0 and json.loads(out) == {
        "form": "spring", "fetched": 2, "new": 2, "duplicates": 0, "stored": 2,
        "watermark": T0_S + 2,
    }  # fmt: skip
    code, out, _ = invoke("leadforms", "show", str(w.root), "spring", "--format", "json")
    assert json.loads(out)["leads"] == {
        "pending": 0, "done": 2, "unrouted": 0, "failed": 0, "with_unmapped": 1, "with_missing": 1,
    }  # fmt: skip
    code, out, _ = invoke("leadforms", "leads", str(w.root), "spring")
    first = out.splitlines()[0]
    assert "done" in first and "unmapped: shoe_size" in first and "missing: email" in first
    assert {e["source"] for e in lead_events(w.store())} == {"fb-spring"}
    code, out, _ = invoke("leadforms", "disconnect", str(w.root), "spring")
    assert code == 0 and invoke("leadforms", "list", str(w.root))[1].strip() == "no lead forms"


def test_work_stores_what_the_inbox_holds(w: World) -> None:
    assert connect(w)[0] == 0
    lead = w.lead({"email": "w@example.com"})
    Inbox(w.root).add([(lead["id"], FORM, PAGE, None, None)], "webhook", 0)
    code, out, _ = invoke("leadforms", "work", str(w.root), "--once")
    assert code == 0 and out.strip() == "1 lead(s) taken"
    assert [e["leadgen_id"] for e in lead_events(w.store())] == [lead["id"]]
