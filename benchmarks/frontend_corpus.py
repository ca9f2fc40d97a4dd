"""A realistic rules file of a given size for the front-end benchmarks."""

from __future__ import annotations

from pathlib import Path

import audience

EXAMPLES = Path(audience.__file__).parent / "examples"

_SEGMENT = """\
segment "Campaign {i}: {cat} browsers without purchase" timezone "Europe/Rome" {{
  rule "Viewed {cat} at least twice" (
    did viewed_product where (category = "{cat}" and price > {price})
      at least 2 times in last {days} days
  )
  and rule "No purchase" (
    not did purchased in last {days} days
  )
  and any of (
    city in ("Milan", "Rome", "Turin"),
    sum(amount) of purchased in last 6 months > {amount},
    last email_clicked less than 30 days ago
  )
  and not in segment "Campaign {prev}: {cat} browsers without purchase"
}}

"""

_CATEGORIES = ("shoes", "clothes", "accessories", "bags", "jewels")


def rules_text(lines: int = 500) -> str:
    """Segments (16 lines each) until ``lines`` lines, then the seed's definitions."""
    seed = (EXAMPLES / "maison.rules").read_text(encoding="utf-8")
    parts: list[str] = []
    i = 0
    while sum(p.count("\n") for p in parts) + seed.count("\n") < lines - 16:
        cat = _CATEGORIES[i % len(_CATEGORIES)]
        prev = i - len(_CATEGORIES)
        text = _SEGMENT.format(
            i=i, cat=cat, price=10 + i, days=7 + i % 30, amount=100 + i, prev=prev
        )
        if prev < 0:  # the first of each category references the Red Shoes segment
            text = text.replace(
                f'"Campaign {prev}: {cat} browsers without purchase"',
                '"Red Shoes viewed without purchase"',
            )
        parts.append(text)
        i += 1
    return "".join(parts) + seed
