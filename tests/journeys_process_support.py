"""The journeys of the process tests, shared by the test and its child processes."""

from __future__ import annotations

from audience.dsl.ast import Duration
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    Journey,
    StartNow,
    WaitStep,
)
from audience.runtime.journeys.service import JourneyService
from audience.runtime.store import Store

LATER = Journey(
    "Later",
    StartNow(),
    (
        WaitStep(Duration(1, "hour")),
        ActionStep("Welcome", send="Complete your profile"),
        CheckStep(
            "Clicked?",
            Clicked("Welcome"),
            Duration(1, "day"),
            yes=(ActionStep("Promo", send="Your promotional code"),),
            no=(EndStep(),),
        ),
    ),
)
JOURNEYS = (LATER,)


def remember(store: Store, journeys: tuple[Journey, ...]) -> JourneyService:
    """A service whose catalog knows ``journeys`` (saved under a placeholder text)."""
    svc = JourneyService(store)
    for j in journeys:
        saved = svc.defs.get(store.node, j.name)
        if saved is not None:
            for v in svc.defs.versions(saved.id):
                svc.runtime.catalog.remember(saved.id, v, j)
    return svc
