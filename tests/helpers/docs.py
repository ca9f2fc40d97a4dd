"""What the docs tests share: the pages, their fenced blocks, a block's commands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCHEMA = DOCS / "examples" / "schema.toml"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]

FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def blocks(page: Path, lang: str | None = None) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if lang is None or m.group(1) == lang:
            line = text.count("\n", 0, m.start()) + 2  # the block's first line
            out.append(Block(page, line, m.group(1), m.group(2)))
    return out


def all_blocks(lang: str) -> list[Block]:
    return [b for page in PAGES for b in blocks(page, lang)]


def shell_lines(block: Block) -> list[str]:
    """The commands of a shell block: continuations joined, prompts, comments
    and output lines (those of a block that start with no command) left out."""
    joined = block.text.replace("\\\n", " ")
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out
