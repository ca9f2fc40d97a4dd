"""Saved segments as ASTs: what ``in segment "X"`` and ``check --store`` resolve against.

A saved text is either a whole ``segment "Name" { ... }`` definition or a bare
condition; either way it becomes a ``Segment`` under the name it was saved as.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audience.dsl.ast import Program, Segment
from audience.dsl.check.refs import segment_refs
from audience.dsl.errors import Diagnostic, DslError
from audience.dsl.parser import parse

if TYPE_CHECKING:
    from audience.runtime.node import Node


def one_segment(program: Program, text: str, filename: str, *, name: str) -> Segment:
    """The one segment of a text: a bare condition (named ``name``) or exactly one
    ``segment`` definition; anything else is a ``not_one_segment`` error."""
    if program.condition is not None:
        return Segment(name=name, cond=program.condition, span=program.span)
    if len(program.definitions) == 1 and isinstance(program.definitions[0], Segment):
        return program.definitions[0]
    raise DslError(
        [
            Diagnostic(
                "not_one_segment",
                "expected one condition or one segment definition, "
                f"found {len(program.definitions)} definitions",
                program.span,
                "give each segment on its own",
            )
        ],
        text,
        filename,
    )


def segment_from_text(name: str, text: str, *, filename: str | None = None) -> Segment:
    filename = filename or f"<segment {name!r}>"
    segment = one_segment(parse(text, filename=filename), text, filename, name=name)
    if segment.name != name:
        raise DslError(
            [
                Diagnostic(
                    "name_mismatch",
                    f"this text defines segment '{segment.name}', not '{name}'",
                    segment.name_span,
                    f"save it as '{segment.name}', or rename it to '{name}' in the text",
                )
            ],
            text,
            filename,
        )
    return segment


def validate_segment(store: Node, name: str, text: str, *, filename: str) -> Segment:
    """Parse and check ``text`` as the saved segment NAME against the store's schema
    and its other saved segments, with this text in place: a reference to an
    unknown segment, or one that would close a cycle through NAME, is an error
    now rather than at the next evaluation.  The same checker as every other
    save and ``audience check --store`` (audience.runtime.triggers.known).
    Raises DslError."""
    from audience.runtime.triggers.known import check_against

    segment = segment_from_text(name, text, filename=filename)
    check_against(store, Program(definitions=(segment,)), text, filename)
    return segment


def saved_segments(store: Node) -> dict[str, Segment]:
    """Every saved segment of ``store`` that still parses (a broken one is skipped here
    and reported when it is used or shown)."""
    out: dict[str, Segment] = {}
    for saved in store.list_segments():
        try:
            out[saved.name] = segment_from_text(saved.name, saved.text)
        except DslError:
            continue
    return out


def segment_users(store: Node, name: str) -> list[str]:
    """What refers to the saved segment NAME with ``in segment``: the other
    saved segments and the saved triggers' ``if`` conditions, as
    ``segment "X"`` / ``trigger "Y"``.  Deleting NAME would break them."""
    from audience.runtime.triggers.engine import parse_trigger

    users: list[str] = []
    for other, seg in saved_segments(store).items():
        if other != name and any(r.name == name for r in segment_refs(seg.cond)):
            users.append(f'segment "{other}"')
    for saved in store.triggers.defs.list_triggers():
        try:
            trig = parse_trigger(saved.text, saved.name)
        except DslError:
            continue
        if any(r.name == name for r in segment_refs(trig.condition)):
            users.append(f'trigger "{saved.name}"')
    return users
