"""One checker: ``audience check --store``, every save (triggers, DND policies,
segments) over the CLI, HTTP and Python, resolve the same saved names
(segments, DND policies, templates) and refuse a text with the same error,
golden in tests/corpus/store_check (files named KIND_CODE[_variant]).
Without a store, templates are not resolved."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from audience.cli import cli
from audience.dsl.errors import DslError
from audience.runtime.node import Node, open_node
from audience.runtime.plans.service import PlanService
from audience.runtime.saved import validate_segment
from tests.helpers.server_api import Live, build_store, start
from tests.helpers.triggers import EXAMPLES, POLICY

CORPUS = Path(__file__).parent / "corpus" / "store_check"
GOLDEN = sorted(CORPUS.glob("*.rules"))
POLICY_NAME = "Maison shoes, clothes and accessories"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A store with a template, a DND policy and a segment saved, and its server."""
    path = build_store(tmp_path_factory.mktemp("chk") / "shop", n_events=200, n_contacts=20)
    st = Node.open(path)
    st.triggers.add_template(
        "C-1234", "Welcome {{ first_name }}", "<p>{{ form }}</p>", "Hi {{ first_name }}"
    )
    st.triggers.add_policies(POLICY)
    st.save_segment("Lapsed buyers", "last purchased more than 60 days ago")
    srv = start(path)
    yield srv
    srv.server.stop()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _python(store: Node, kind: str, text: str, name: str) -> Any:
    if kind == "trigger":
        return store.triggers.add(text, name)
    if kind == "policy":
        return store.triggers.add_policies(text, name)
    if kind == "delivery":
        return PlanService(store).add(text, name, plans=False)
    return validate_segment(store, "Win back", text, filename=name)


def _cli_add(root: str, kind: str, name: str) -> Result:
    if kind == "trigger":
        return invoke("triggers", "add", root, "-f", name)
    if kind == "policy":
        return invoke("dnd", "add", root, "-f", name)
    if kind == "delivery":
        return invoke("messages", "add", root, name)
    return invoke("segments", "save", root, "Win back", "-f", name)


def _http_save(live: Live, kind: str, text: str) -> Any:
    c = live.client("write")
    if kind == "trigger":
        return c.post("/v1/triggers", {"text": text})
    if kind == "policy":
        return c.post("/v1/dnd-policies", {"text": text})
    if kind == "delivery":
        return c.post("/v1/messages", {"text": text})
    return c.request("PUT", "/v1/segments/Win back", {"text": text})


def _saved(store: Node) -> tuple[list[str], ...]:
    defs = store.triggers.defs
    return (
        [t.name for t in defs.list_triggers()],
        [p.name for p in defs.list_policies()],
        [s.name for s in store.list_segments()],
        [d.name for d in PlanService(store).defs.list_deliveries(store.node)],
    )


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_every_save_and_check_store_refuse_alike(
    live: Live, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CORPUS)
    kind = path.stem.split("_")[0]
    text, name, root = path.read_text(), path.name, str(live.path)
    store = open_node(root)
    before = _saved(store)
    with pytest.raises(DslError) as err:
        _python(store, kind, text, name)
    rendered = err.value.render() + "\n"
    golden = path.with_suffix(".err")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    # a file is named KIND_CODE[_variant]: trigger, policy, segment or delivery, and the code
    assert any(path.stem.split("_", 1)[1].startswith(d.code) for d in err.value.diagnostics)

    checked = invoke("check", name, "--store", root)
    assert checked.exit_code == 1
    assert checked.stderr == rendered + f"\n{name}: 1 error\n"
    added = _cli_add(root, kind, name)
    assert added.exit_code == 1
    assert added.stderr == rendered
    r = _http_save(live, kind, text)
    assert r.status == 400
    assert r.json()["errors"] == err.value.to_dict()["errors"]
    assert _saved(open_node(root)) == before  # nothing saved anywhere


def test_saved_names_are_accepted_by_check_store_and_every_save(
    live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found in review: check --store refused a policy saved in the store, which
    triggers add accepted; both accept it now (and the saved segment and template)."""
    monkeypatch.chdir(CORPUS)
    root = str(live.path)
    checked = invoke("check", "trigger_saved_names.ok", "--store", root)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("trigger_saved_names.ok: ok against the schema: 1 trigger")
    added = invoke("triggers", "add", root, "-f", "trigger_saved_names.ok")
    assert added.exit_code == 0, added.output
    text = (CORPUS / "trigger_saved_names.ok").read_text()
    r = live.client("write").request("PUT", "/v1/triggers/Welcome back", {"text": text})
    assert r.status == 200, r
    assert r.json()["version"] == 2
    assert live.client("write").request("DELETE", "/v1/triggers/Welcome back").status == 200


def test_without_a_store_templates_are_not_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    schema = str(EXAMPLES / "maison.toml")
    for args in ([], ["--schema", schema]):
        res = invoke("check", "trigger_unknown_template.rules", *args)
        assert res.exit_code == 0, res.output
    # the policy and segment a trigger names must then be in the file itself
    res = invoke("check", "trigger_saved_names.ok", "--schema", schema)
    assert res.exit_code == 1
    assert "unknown segment 'Lapsed buyers'" in res.stderr
    assert f"unknown DND policy '{POLICY_NAME}'" in res.stderr
    assert "template" not in res.stderr


def test_a_saved_template_that_does_not_parse_is_named_so(tmp_path: Path) -> None:
    st = Node.init(tmp_path / "s", EXAMPLES / "maison.toml")
    st.triggers.defs.save_template("Broken", "{{ oops", "<p/>", "-")  # bypasses the check
    text = (
        'trigger "T" {\n  on form_compiled\n'
        '  do send_email(campaign: "Broken", to: profile.email)\n}\n'
    )
    with pytest.raises(DslError) as err:
        st.triggers.add(text)
    [d] = err.value.diagnostics
    assert d.code == "template_error"
    assert d.message.startswith("template 'Broken' does not parse: subject: line 1:")
    assert st.triggers.defs.list_triggers() == []
