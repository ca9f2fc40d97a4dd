"""The canonical text of ``journey`` blocks (the formatter's part for them).

    journey "Welcome email and promotional code" {
      start now
      enter on form_compiled where (form_name = "addUser" and context = "WEB")
      once per contact
      dnd "Maison shoes, clothes and accessories"
      action "Welcome" send "Complete your profile"
      check "Clicked?" clicked "Welcome" within 3 days
        yes {
          action "Promo" send "Your promotional code"
          end
        }
        no {
          end
        }
    }

Header lines come in the order above, absent ones omitted.  ``once per
contact`` is the default: it is written when the source had it (its node has a
position), so formatting neither adds nor drops a line that comments may be
anchored to.  The entry's ``if`` follows on the same line when it fits, else
on the next line, indented; its profile properties are written
``profile.x``, as in a trigger's ``if``.  A check's condition is laid out like
any condition of the formatter, ``within D`` after its last line; an empty
branch is written ``yes {}``.
"""

from __future__ import annotations

from audience.dsl import format_lexical as lex
from audience.dsl import formatter as F
from audience.dsl.ast import NOSPAN
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterOn,
    EnterSegment,
    Journey,
    Opened,
    StartAt,
    StartNow,
    Step,
    WaitStep,
)
from audience.dsl.format_lexical import FormatError

__all__ = ["journey_lines"]

_I = F.INDENT


def journey_lines(node: Journey) -> list[str]:
    """The block's lines, without trailing newlines."""
    return [f"journey {lex.quote(node.name)} {{", *_header(node), *_steps(node.steps, 1), "}"]


def _header(node: Journey) -> list[str]:
    lines = [_I + _start(node.start)]
    entry = node.entry
    if isinstance(entry, EnterSegment):
        lines.append(f"{_I}enter segment {lex.quote(entry.segment)}")
    elif isinstance(entry, EnterOn):
        lines += _enter_on(entry)
    elif entry is not None:
        raise FormatError(f"no formatting rule for {type(entry).__name__} as a journey entry")
    again = node.reentry.again_after
    if again is not None:
        lines.append(f"{_I}again after {lex.duration(again)}")
    elif node.reentry.span != NOSPAN:
        lines.append(f"{_I}once per contact")
    if node.dnd is not None:
        lines.append(f"{_I}dnd {lex.quote(node.dnd)}")
    return lines


def _start(node: object) -> str:
    if isinstance(node, StartNow):
        return "start now"
    if not isinstance(node, StartAt):
        raise FormatError(f"no formatting rule for {type(node).__name__} as a journey start")
    at = node.at
    if at.tzinfo is not None or at.second or at.microsecond:
        raise FormatError(f"a journey's start is a naive local time in whole minutes, not {at}")
    zone = "" if node.timezone is None else f" timezone {lex.quote(node.timezone)}"
    return f"start at {lex.date(at.date())} {at.hour:02d}:{at.minute:02d}{zone}"


def _enter_on(node: EnterOn) -> list[str]:
    head = f"{_I}enter on {F._events(node.events)}{F._where(node.where)}"
    if node.condition is None:
        return [head]
    col = len(head) + len(" if ")
    cond = F._expr(node.condition, 1, col, "")
    if len(cond) == 1 and F._fits(col, cond[0]):
        return [f"{head} if {cond[0]}"]
    prefix = _I * 2 + "if "
    cond = F._expr(node.condition, 2, len(prefix), "")
    return [head, *F._prefixed(prefix, F._indent(cond, 2))]


def _steps(steps: tuple[Step, ...], level: int) -> list[str]:
    lines: list[str] = []
    for step in steps:
        lines += _step(step, level)
    return lines


def _step(node: Step, level: int) -> list[str]:
    pad = _I * level
    if isinstance(node, ActionStep):
        return [pad + _action(node, len(pad))]
    if isinstance(node, WaitStep):
        return [f"{pad}wait {lex.duration(node.duration)}"]
    if isinstance(node, EndStep):
        return [f"{pad}end"]
    if isinstance(node, CheckStep):
        return _check(node, level)
    raise FormatError(f"no formatting rule for {type(node).__name__} as a journey step")


def _action(node: ActionStep, col: int) -> str:
    head = f"action {lex.quote(node.label)} "
    if (node.send is None) == (node.call is None):
        raise FormatError("a journey action sends a delivery or calls an action, exactly one")
    if node.send is not None:
        return f"{head}send {lex.quote(node.send)}"
    assert node.call is not None
    # the trigger's layout of an action, with this head in place of its `do `:
    # arguments aligned after the `(`, or (holding a comment) one a line under the step
    block = bool(node.call.args) and F._holds_comment(node.call)
    text = F._action(node.call, col if block else col + len(head) - len("do "))
    return head + text[len("do ") :]


def _check(node: CheckStep, level: int) -> list[str]:
    pad = _I * level
    head = f"{pad}check {lex.quote(node.label)} "
    within = f" within {lex.duration(node.within)}"
    cond = node.cond
    if isinstance(cond, Clicked):
        link = "" if cond.link is None else f" link {lex.quote(cond.link)}"
        lines = [f"{head}clicked {lex.quote(cond.action)}{link}{within}"]
    elif isinstance(cond, Opened):
        lines = [f"{head}opened {lex.quote(cond.action)}{within}"]
    else:
        body = F._expr(cond, level, len(head), "profile")
        lines = [head + body[0], *F._indent(body[1:], level)]
        lines[-1] += within
    for word, branch in (("yes", node.yes), ("no", node.no)):
        inner = _I * (level + 1)
        if not branch:
            lines.append(f"{inner}{word} {{}}")
        else:
            lines += [f"{inner}{word} {{", *_steps(branch, level + 2), f"{inner}}}"]
    return lines
