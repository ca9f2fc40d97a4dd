"""The plans part of the demo, over a small generated shop."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from audience.demo import shop
from audience.demo.plans import plans_story
from audience.demo.run import build_store


def test_plans_story(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    data = tmp_path / "data"
    data.mkdir()
    now = shop.DEFAULT_NOW
    store, _ = build_store(tmp_path / "maison", data, 60_000, 3_000, console, now)
    runs = plans_story(store, console, now)
    assert [r.plan for r in runs] == ["Spring event eve"] + ["Daily picks for viewers"] * 4
    assert all(r.state == "done" for r in runs)
    first, fourth = runs[1].counts, runs[4].counts
    assert first["reserved"] > 0
    # three picks this week: the fourth morning holds everyone back
    assert fourth["reserved"] == 0 and fourth["by_cap"]["max 3 per week"] > 0
    assert "preview of 'Spring event eve'" in console.export_text()
