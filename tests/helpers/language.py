"""What the language tests share: the SPEC's examples in their canonical
layout, a comparison of ASTs strict enough for round trips, and a grammar's
outcome on a text (to compare a grammar with itself before a change)."""

from __future__ import annotations

from lark import Lark
from lark.exceptions import UnexpectedInput


def same(parsed: object, expected: object) -> None:
    """Equal as ASTs, and equal in repr: that also tells ``1`` from ``1.0`` and a
    datetime written with an offset from one read in the definition's zone."""
    assert parsed == expected
    assert repr(parsed) == repr(expected)


def grammar_parser(text: str) -> Lark:
    """A parser of the grammar ``text``, built as the language builds its own."""
    return Lark(
        text,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["program", "bare_condition"],
    )


def outcome(parser: Lark, text: str) -> object:
    """The tree of ``text``, or where and how it fails."""
    try:
        return parser.parse(text, start="program")
    except UnexpectedInput as exc:
        return ("failed", type(exc).__name__, exc.line, exc.column)


SPEC_SEGMENT = """\
segment "Red Shoes viewed without purchase" {
  rule "Clicked Red shoes" (
    did viewed_product where product_name = "Red Shoes" in last 15 days
  )
  and rule "No purchase in the last 15 days" (
    not did purchased in last 15 days
  )
}
"""

SPEC_TRIGGER = """\
trigger "Thank newsletter subscribers" {
  on form_compiled where (form_name = "addUser" and context = "WEB")
  if profile.email is set
  do send_email(campaign: "C-1234", to: profile.email,
                fields: {first_name: profile.first_name, form: event.form_name})
  dnd "Maison shoes, clothes and accessories"
}
"""

SPEC_DND = """\
dnd "Maison shoes, clothes and accessories" {
  max 1 per day
  max 3 per week
  global
}
"""

SPEC_JOURNEY = """\
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
"""
