"""Schema look-ups (event types, event and profile properties) with
"did you mean" suggestions for names that are not there."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from audience.dsl.ast import EventSel, Field, Ref, Span
from audience.dsl.check.context import Ctx
from audience.schema import EVENT_BUILTINS, NUMERIC_TYPES

MAX_LISTED = 10  # names listed in a help line when nothing is close


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to ``name``: a case-insensitive equal first, then difflib."""
    pool = sorted(set(candidates))
    folded = [c for c in pool if c.casefold() == name.casefold()]
    if folded:
        return folded[0]
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return found[0] if found else None


def suggest(
    name: str, candidates: Iterable[str], what: str, listed: Iterable[str] | None = None
) -> str | None:
    """A help line: the closest candidate, else the ``listed`` names (default: the
    candidates; the first MAX_LISTED of them), or None when there are none."""
    candidates = list(candidates)
    best = closest(name, candidates)
    if best is not None:
        return f"did you mean '{best}'?"
    pool = sorted(set(candidates if listed is None else listed))
    if not pool:
        return None
    listed = ", ".join(pool[:MAX_LISTED]) + (", ..." if len(pool) > MAX_LISTED else "")
    return f"known {what}: {listed}"


def check_event_sel(ctx: Ctx, sel: EventSel) -> tuple[str, ...] | None:
    """Report unknown event types; return the known selected ones (None: all types).

    Without a schema every type is taken as written."""
    if sel.types is None or ctx.schema is None:
        return sel.types
    known = ctx.schema.events
    for etype in sel.types:
        if etype not in known:
            ctx.error(
                "unknown_event_type",
                f"unknown event type '{etype}'",
                sel.span,
                suggest(etype, known, "event types"),
            )
    return tuple(t for t in sel.types if t in known)


def merge_types(types: Iterable[str]) -> str | None:
    """One type for a property seen in several event types; None when they disagree.

    An int in one type and a float in another are both numbers."""
    found = set(types)
    if len(found) > 1 and found <= NUMERIC_TYPES:
        return "float"
    return found.pop() if len(found) == 1 else None


def event_property_type(
    ctx: Ctx, name: str, span: Span, types: tuple[str, ...] | None, *, report: bool = True
) -> str | None:
    """The type of event property ``name`` over the selected types (None: all).

    Returns None when the type cannot be known (no schema, or already reported).
    The property must exist in at least one selected type, with one type."""
    if name in EVENT_BUILTINS:
        return EVENT_BUILTINS[name]
    if ctx.schema is None:
        return None
    pool = list(ctx.schema.events) if types is None else list(types)
    if not pool:  # every selected type was unknown: already reported
        return None
    where = {t: ctx.schema.events[t][name] for t in pool if name in ctx.schema.events[t]}
    if not where:
        if report:
            label = "any event type" if types is None else _quoted(pool)
            ctx.error(
                "unknown_property",
                f"unknown property '{name}' for {label}",
                span,
                suggest(
                    name,
                    ctx.schema.event_property_names(types),
                    "properties",
                    listed=set(ctx.schema.event_property_names(types)) - set(EVENT_BUILTINS),
                ),
            )
        return None
    merged = merge_types(where.values())
    if merged is None and report:
        detail = ", ".join(f"{v} in '{t}'" for t, v in where.items())
        ctx.error(
            "inconsistent_property",
            f"property '{name}' has different types across the selected events ({detail})",
            span,
            "select event types that agree on its type",
        )
    return merged


def profile_property_type(ctx: Ctx, name: str, span: Span) -> str | None:
    """The type of profile property ``name``, reporting it when undeclared."""
    if name == "contact_id":
        return "string"
    if ctx.schema is None:
        return None
    found = ctx.schema.profile.get(name)
    if found is None:
        ctx.error(
            "unknown_profile_property",
            f"unknown profile property '{name}'",
            span,
            suggest(name, ctx.schema.profile, "profile properties"),
        )
    return found


def field_type(ctx: Ctx, f: Field | Ref, types: tuple[str, ...] | None) -> str | None:
    """The type of a field or reference: event scope over ``types``, else the profile."""
    if f.scope == "profile":
        return profile_property_type(ctx, f.name, f.span)
    return event_property_type(ctx, f.name, f.span, types)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
