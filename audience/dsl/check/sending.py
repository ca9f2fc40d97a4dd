"""Stand-in of the language branch's module (replaced when it is merged)."""

from __future__ import annotations

from audience.dsl.ast_sending import Plan
from audience.dsl.errors import Diagnostic
from audience.runtime.plans.recurrence import occurrences


def check_plan_ready(plan: Plan, now_ms: int) -> list[Diagnostic]:
    if plan.when.kind == "once" and not occurrences(plan.when, now_ms, 2**62):
        return [Diagnostic("plan_time_past", "its one-shot time is already past", plan.when.span)]
    return []
