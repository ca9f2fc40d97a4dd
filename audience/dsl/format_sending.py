"""The canonical text of ``delivery`` and ``plan`` blocks (the formatter's part for them).

    delivery "Spring event reminder" {
      template "spring-event"
      mail group "Events"
      subject "Our spring collection, {{ first_name }}"
      from "Maison <news@maison.example>"
      sender "bounces@maison.example"
      reply to "care@maison.example"
      fields { first_name: profile.first_name, city: profile.city }
      test list ("qa@maison.example", "marketing@maison.example")
    }

    plan "Weekly picks" {
      who (did viewed_product in last 7 days and not did purchased in last 7 days)
      when every week on monday, thursday at 09:00 timezone "Europe/Rome"
           from 2027-01-04 until 2027-06-30
      dnd "Maison shoes, clothes and accessories"
      send "Weekly picks"
    }

Lines come in the order above, absent ones omitted.  An inline ``who``
condition is laid out like any parenthesised group of the formatter; a
``when`` wider than the line width puts ``from``/``until`` on a continuation
line aligned after ``when``; ``fields`` too wide for one line puts one item a line.
"""

from __future__ import annotations

from audience.dsl import format_lexical as lex
from audience.dsl import formatter as F
from audience.dsl.ast_sending import DeliveryDef, Plan, Schedule
from audience.dsl.format_lexical import FormatError

__all__ = ["definition_lines", "schedule_text"]

_I = F.INDENT


def definition_lines(node: DeliveryDef | Plan) -> list[str]:
    """The block's lines, without trailing newlines."""
    if isinstance(node, DeliveryDef):
        return [f"delivery {lex.quote(node.name)} {{", *_delivery_body(node), "}"]
    return [f"plan {lex.quote(node.name)} {{", *_plan_body(node), "}"]


def _delivery_body(node: DeliveryDef) -> list[str]:
    lines = [f"{_I}template {lex.quote(node.template)}"]
    for word, value in (
        ("mail group", node.mail_group),
        ("subject", node.subject),
        ("from", node.from_addr),
        ("sender", node.sender),
        ("reply to", node.reply_to),
    ):
        if value is not None:
            lines.append(f"{_I}{word} {lex.quote(value)}")
    if node.fields is not None:
        lines += _fields(node)
    if node.test_list:
        lines.append(f"{_I}test list (" + ", ".join(lex.quote(a) for a in node.test_list) + ")")
    return lines


def _fields(node: DeliveryDef) -> list[str]:
    assert node.fields is not None
    items = [f"{lex.map_key(k)}: {F._value(v)}" for k, v in node.fields.items]
    if not items:
        return [f"{_I}fields {{}}"]
    one = f"{_I}fields {{ " + ", ".join(items) + " }"
    if len(one) <= F.WIDTH:
        return [one]
    body = [f"{_I}{_I}{item}," for item in items]
    body[-1] = body[-1][:-1]
    return [f"{_I}fields {{", *body, f"{_I}}}"]


def _plan_body(node: Plan) -> list[str]:
    if isinstance(node.who, str):
        lines = [f"{_I}who {lex.quote(node.who)}"]
    else:
        prefix = f"{_I}who "
        group = F._group(node.who, 1, len(prefix), "profile")
        lines = [prefix + group[0], *F._indent(group[1:], 1)]
    lines += _when(node.when)
    if node.dnd is not None:
        lines.append(f"{_I}dnd {lex.quote(node.dnd)}")
    lines.append(f"{_I}send {lex.quote(node.send)}")
    if node.lateness is not None:
        lines.append(f"{_I}late up to {lex.duration(node.lateness)}")
    return lines


def _when(node: Schedule) -> list[str]:
    head, bounds = _schedule_parts(node)
    one = f"{_I}when {head}" + "".join(" " + b for b in bounds)
    if len(one) <= F.WIDTH or not bounds:
        return [one]
    return [f"{_I}when {head}", " " * len(f"{_I}when ") + " ".join(bounds)]


def schedule_text(node: Schedule) -> str:
    """A ``when`` clause's text on one line (without the word ``when``)."""
    head, bounds = _schedule_parts(node)
    return " ".join([head, *bounds])


# Per kind, the optional fields it may hold (others must be unset to be written).
_FIELDS = {
    "once": {"on_date"},
    "daily": set(),
    "weekly": {"weekdays"},
    "monthly": {"month_day"},
    "every_n_days": {"interval"},
    "every_n_weeks": {"interval", "weekdays"},
}
_UNSET: dict[str, object] = {"on_date": None, "weekdays": (), "month_day": None, "interval": None}


def _schedule_parts(node: Schedule) -> tuple[str, list[str]]:
    """The schedule up to its time zone, and its ``from``/``until`` parts."""
    allowed = _FIELDS.get(node.kind)
    if allowed is None:
        raise FormatError(f"no formatting rule for the schedule kind {node.kind!r}")
    for name, unset in _UNSET.items():
        if name not in allowed and getattr(node, name) != unset:
            raise FormatError(f"a {node.kind} schedule has no {name}")
    if node.at.second or node.at.microsecond or node.at.tzinfo is not None:
        raise FormatError(f"a schedule's time of day is whole minutes, not {node.at}")
    at = f"at {node.at.hour:02d}:{node.at.minute:02d}"
    days = f" on {', '.join(node.weekdays)}" if node.weekdays else ""
    if node.kind == "once":
        if node.on_date is None:
            raise FormatError("a one-shot schedule has no date")
        head = f"once at {lex.date(node.on_date)} {at[3:]}"
    elif node.kind == "daily":
        head = f"every day {at}"
    elif node.kind == "weekly":
        head = f"every week{days} {at}"
    elif node.kind == "monthly":
        head = f"every month on day {_number(node.month_day)} {at}"
    else:
        n = _number(node.interval)
        unit = "day" if node.kind == "every_n_days" else "week"
        head = f"every {n} {unit}{'' if n == 1 else 's'}{days} {at}"
    if node.timezone is not None:
        head += f" timezone {lex.quote(node.timezone)}"
    bounds = []
    if node.from_date is not None:
        bounds.append(f"from {lex.date(node.from_date)}")
    if node.until_date is not None:
        bounds.append(f"until {lex.date(node.until_date)}")
    return head, bounds


def _number(n: int | None) -> int:
    if n is None or isinstance(n, bool) or n < 0:
        raise FormatError(f"a schedule needs a whole number here, not {n!r}")
    return n
