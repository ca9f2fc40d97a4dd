"""The journeys part of the demo, over a small generated shop: real SMTP and
HTTP servers on loopback, the injected clock moved by the scheduler."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from audience.demo import shop
from audience.demo.journeys import CLICKERS, JOURNEY, SUBSCRIBERS, journeys_story, subscriber
from audience.demo.run import build_store
from audience.runtime.delivery import DeliveryLog
from audience.runtime.journeys.service import JourneyService


def test_journeys_story(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    data = tmp_path / "data"
    data.mkdir()
    now = shop.DEFAULT_NOW
    store, _ = build_store(tmp_path / "maison", data, 20_000, 1_000, console, now)
    steps = journeys_story(store, console)
    by_id = {s["step"]: s for s in steps}
    text = console.export_text()
    # the demo's tracking server is gone: the store's links point where they did before
    from audience.runtime.tracking.config import read_settings

    assert read_settings(store.path).get("base_url") is None
    # every subscriber got the welcome; the clickers took yes and got the code;
    # the others left by no at the deadline; no one is left waiting
    assert by_id["0"]["entered"] == by_id["1"]["entered"] == SUBSCRIBERS, text
    assert sum(s["waiting"] for s in steps) == 0, text
    assert by_id["1.yes.0"]["entered"] == by_id["1.yes.1"]["done"] == CLICKERS, text
    assert by_id["1.no.0"]["done"] == SUBSCRIBERS - CLICKERS, text
    assert store.path is not None
    with DeliveryLog.open(store.path) as log:
        journey = [d for d in log.list() if d.source == f"journey:{JOURNEY}"]
    welcome = [d for d in journey if d.payload.get("delivery") == "Complete your profile"]
    promo = [d for d in journey if d.payload.get("delivery") == "Your promotional code"]
    assert sorted(d.contact_id for d in welcome) == [subscriber(i) for i in range(SUBSCRIBERS)]
    assert all(d.status == "sent" for d in welcome + promo)
    assert len(promo) == CLICKERS
    svc = JourneyService(store)
    clicked = svc.history(JOURNEY, subscriber(0))
    assert any(h["step"] == "1.yes.0" for h in clicked)
    assert "302" in text and "/t/c/" in text
