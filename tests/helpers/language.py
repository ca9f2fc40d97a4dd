"""What the language tests share: the SPEC's examples in their canonical
layout, and a comparison of ASTs strict enough for round trips."""

from __future__ import annotations


def same(parsed: object, expected: object) -> None:
    """Equal as ASTs, and equal in repr: that also tells ``1`` from ``1.0`` and a
    datetime written with an offset from one read in the definition's zone."""
    assert parsed == expected
    assert repr(parsed) == repr(expected)


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
