"""The one error type of the language front end, and its two renderings.

Every problem with a rules text (syntax, limits, schema, references) becomes a
``Diagnostic`` with a stable ``code``; ``DslError`` carries one or more of
them together with the source they point into.  ``render()`` prints them as
docs/language/index.md#errors shows; ``to_dict()`` is the JSON shape of the HTTP API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from audience.dsl.ast import NOSPAN, Span

TAB_WIDTH = 4
MAX_SPAN_LINES = 4  # lines of a multi-line span shown before "..."


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span = NOSPAN
    help: str | None = None
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.span != NOSPAN:
            out.update(
                line=self.span.line,
                column=self.span.column,
                end_line=self.span.end_line,
                end_column=self.span.end_column,
            )
        out["help"] = self.help
        return out


@dataclass
class DslError(Exception):
    """One or more diagnostics about ``source`` (named ``filename`` in output)."""

    diagnostics: list[Diagnostic]
    source: str = ""
    filename: str = "<input>"
    _lines: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.diagnostics[0].message if self.diagnostics else "error")
        self.diagnostics = sorted(
            self.diagnostics, key=lambda d: (d.span.line, d.span.column, d.code)
        )

    def __str__(self) -> str:
        return self.render()

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    def with_source(self, source: str, filename: str) -> DslError:
        return DslError(list(self.diagnostics), source, filename)

    def render(self) -> str:
        lines = self.source.splitlines() or [""]
        return "\n\n".join(render_diagnostic(d, lines, self.filename) for d in self.diagnostics)

    def to_dict(self) -> dict[str, Any]:
        """``{"error": first, "errors": [all]}``: the HTTP shape of docs/http.md#errors."""
        errors = [d.to_dict() for d in self.diagnostics]
        return {"error": errors[0], "errors": errors}


def _expand(text: str) -> str:
    return text.expandtabs(TAB_WIDTH)


def _display_col(line: str, column: int) -> int:
    """0-based display offset of 1-based character ``column`` once tabs are expanded."""
    return len(_expand(line[: max(column - 1, 0)]))


def render_diagnostic(d: Diagnostic, lines: Sequence[str], filename: str) -> str:
    span = d.span
    out = [f"{d.severity}: {d.message}"]
    if span == NOSPAN or span.line < 1 or span.line > len(lines):
        out.append(f" --> {filename}")
    else:
        last = min(span.end_line, len(lines))
        width = len(str(last))
        pad = " " * width
        out.append(f"{pad}--> {filename}:{span.line}:{span.column}")
        out.append(f"{pad} |")
        shown = range(span.line, min(last, span.line + MAX_SPAN_LINES - 1) + 1)
        for n in shown:
            text = lines[n - 1]
            # continuation lines are underlined from their first visible character
            start = span.column if n == span.line else len(text) - len(text.lstrip()) + 1
            if n == span.end_line:
                end = max(span.end_column, start + 1) if n == span.line else span.end_column
            else:
                end = len(text) + 1
            a = _display_col(text, start)
            b = max(_display_col(text, end), a + 1)
            out.append(f"{str(n).rjust(width)} | {_expand(text)}".rstrip())
            out.append(f"{pad} | {' ' * a}{'^' * (b - a)}")
        if last > shown[-1]:
            out.append(f"{pad} | ...")
    if d.help:
        out.append(f"help: {d.help}")
    return "\n".join(out)
