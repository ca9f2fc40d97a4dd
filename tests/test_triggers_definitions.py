"""Saved triggers, policies and templates: versions, history; template rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.runtime.store import StoreError
from audience.runtime.triggers.definitions import TriggerDefinitions
from audience.runtime.triggers.templates import TemplateError, compiled, template_fields


def test_versions_history_and_delete(tmp_path: Path) -> None:
    defs = TriggerDefinitions(tmp_path / "definitions.sqlite")
    g0 = defs.generation()
    assert defs.save_trigger("T", "one").version == 1
    assert defs.generation() != g0
    t = defs.save_trigger("T", "two", valid_from_ms=10, valid_until_ms=20)
    assert (t.version, t.text, t.enabled) == (2, "two", True)
    assert not t.active_at(9) and t.active_at(10) and not t.active_at(20)
    assert [v.body for v in defs.history("triggers", "T")] == ["one", "two"]
    disabled = defs.set_enabled("T", False)
    assert disabled is not None and disabled.version == 2 and not disabled.active_at(15)
    assert defs.delete_trigger("T") and not defs.delete_trigger("T")
    assert defs.save_trigger("T", "three").version == 3  # a key naming version 1 is never reused
    with pytest.raises(StoreError):
        defs.save_trigger("T", "x", valid_from_ms=20, valid_until_ms=10)
    with pytest.raises(StoreError):
        defs.save_trigger("  ", "x")
    # another connection sees the same, and its changes move the generation
    other = TriggerDefinitions(tmp_path / "definitions.sqlite")
    before = defs.generation()
    other.save_policy("P", "dnd")
    assert defs.generation() != before
    assert [p.name for p in defs.list_policies()] == ["P"]
    other.save_template("M", "s", "h", "t")
    tpl = defs.get_template("M")
    assert tpl is not None and (tpl.subject, tpl.version) == ("s", 1)


def test_templates_render_escaped_strict_and_sandboxed() -> None:
    tpl = compiled("W", 1, "Hi {{ name }}", "<b>{{ name }}</b>{{ extra }}", "{{ name }}!")
    assert tpl.fields == {"name", "extra"}
    out = tpl.render({"name": "<Al & Co>", "extra": ""})
    assert out.subject == "Hi <Al & Co>"
    assert out.html == "<b>&lt;Al &amp; Co&gt;</b>"
    assert out.text == "<Al & Co>!"
    with pytest.raises(TemplateError, match="extra"):
        tpl.render({"name": "x"})
    sneaky = compiled("S", 1, "{{ name.__class__.__mro__ }}", "", "")
    with pytest.raises(TemplateError):
        sneaky.render({"name": "x"})
    with pytest.raises(TemplateError, match="subject"):
        template_fields("{{ oops", "", "")
