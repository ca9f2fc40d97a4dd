"""The formatter on source text: the canonical layout, keeping every comment.

Comments are not in the AST, so they are placed by position, generically: every
AST node carries a span, and the formatted text parses back to the same tree,
so walking both trees together maps each node's span in the source to its span
in the output.  A comment is anchored to the nodes around it:

- a comment on its own line goes above the output line where the construct
  after it starts (after glue such as ``and``/``or``/``if``/``do``), or, when
  the next thing after it is the end of the block holding it, above that
  block's closing line; with nothing after it, at the end of the file;
- a comment after code goes at the end of the output line where the last
  construct before it starts or ends, or, after glue alone (``and (  # why``),
  at the end of that glue's line.

The layout breaks every ``and``/``or`` list, ``rule``, group and action that
holds a comment into one item a line (``format_text(..., comments_at=...)``),
and a parenthesised group with a comment just inside a parenthesis into a
block (``open_groups``), so these anchors exist.  Glue words and punctuation
(``and``, ``or``, parentheses, commas) carry no node, so a comment may move
across them, never across a construct.  Where a comment sits inside something
always written on one line (a ``did`` with its ``where``, a comparison), no
place keeps it faithfully: the result is then checked, and ``format_source``
refuses with a ``comment_position`` error at the comment rather than lose it
or move it across code.  The check: the output parses to the same tree, holds
the same comments in the same order and of the same kind (own line or after
code), and each comment has the same number of constructs started and ended
before it as in the source.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

from audience.dsl.ast import NOSPAN, Program, Span
from audience.dsl.errors import Diagnostic, DslError
from audience.dsl.formatter import INDENT, format_text
from audience.dsl.parser import parse

__all__ = ["Comment", "format_source", "scan_comments"]

# Strings and backticked names are skipped whole, so a '#' inside them is text.
_TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`\n]*`|#[^\n]*')


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # from '#' to the end of the line, trailing blanks removed
    offset: int  # of the '#'
    line: int  # 1-based
    column: int  # 1-based
    own_line: bool  # nothing but blanks before it on its line
    blank_after: bool  # a blank line follows it (before the next code or comment)


def scan_comments(text: str) -> list[Comment]:
    """The comments of ``text`` (which must lex: strings closed)."""
    out: list[Comment] = []
    line, counted = 1, 0  # the line number at offset ``counted``
    for m in _TOKEN_RE.finditer(text):
        if not m.group().startswith("#"):
            continue
        start, nl = m.start(), m.end()
        line += text.count("\n", counted, start)
        counted = start  # nl: the '\n' after it, or the end of the text
        line_start = text.rfind("\n", 0, start) + 1
        next_end = text.find("\n", nl + 1) if nl < len(text) else -1
        following = text[nl + 1 : next_end]
        out.append(
            Comment(
                text=m.group().rstrip(),
                offset=start,
                line=line,
                column=start - line_start + 1,
                own_line=not text[line_start:start].strip(),
                blank_after=next_end >= 0 and not following.strip(),
            )
        )
    return out


def format_source(text: str, *, filename: str = "<input>", program: Program | None = None) -> str:
    """``text`` in the canonical layout with its comments kept (``program``:
    ``text`` already parsed, when the caller has it).

    Raises ``DslError``: the text's own parse errors, or ``comment_position``
    at a comment the layout cannot keep in its place."""
    if program is None:
        program = parse(text, filename=filename)
    comments = scan_comments(text)
    if not comments:
        return format_text(program)
    marks = [(c.line, c.column) for c in comments]
    plain = format_text(
        program, comments_at=marks, open_groups=_group_edges(text, program, comments)
    )
    placed = _Placer(text, program, plain, comments).place()
    if isinstance(placed, Comment):
        raise _refuse(placed, text, filename)
    bad = _verify(text, program, comments, placed)
    if bad is not None:
        raise _refuse(bad, text, filename)
    return placed


def _refuse(c: Comment, text: str, filename: str) -> DslError:
    span = Span(c.line, c.column, c.line, c.column + len(c.text))
    return DslError(
        [
            Diagnostic(
                "comment_position",
                "cannot keep this comment in its place: it sits inside an expression "
                "that is written on one line",
                span,
                "move the comment to its own line above the condition, "
                "or to the end of the condition's last line",
            )
        ],
        text,
        filename,
    )


# ------------------------------------------------------------------ positions


@dataclass(frozen=True, slots=True)
class _Line:
    """A line of a block whose value is no node of its own (``subject "..."`` of a
    delivery): its span anchors comments like a node's."""

    span: Span


def _nodes(node: object) -> Iterator[object]:
    """Every AST node under ``node`` (itself included) that has a span, in a fixed
    order; a node's ``line_spans`` follow it as ``_Line``s."""
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(reversed(item))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type | Span):
            if isinstance(getattr(item, "span", None), Span):
                yield item
                yield from (_Line(s) for s in getattr(item, "line_spans", ()))
            stack.extend(
                reversed([getattr(item, f.name) for f in dataclasses.fields(item) if f.compare])
            )


class _Offsets:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def at(self, line: int, column: int) -> int:
        return self.starts[line - 1] + column - 1

    def line_of(self, offset: int) -> int:
        """0-based line index holding ``offset``."""
        return bisect.bisect_right(self.starts, offset) - 1


def _spans(program: Program, text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of every node with a span (end exclusive), in _nodes order;
    (-1, -1) for a node without one."""
    off = _Offsets(text)
    out = []
    for n in _nodes(program):
        s: Span = n.span  # type: ignore[attr-defined]
        if s == NOSPAN or n is program:
            out.append((-1, -1))
        else:
            out.append((off.at(s.line, s.column), off.at(s.end_line, s.end_column)))
    return out


def _counts(spans: list[tuple[int, int]], offsets: list[int]) -> list[tuple[int, int]]:
    """For each offset: how many nodes start before it and how many end at or before it."""
    starts = sorted(s for s, _ in spans if s >= 0)
    ends = sorted(e for _, e in spans if e >= 0)
    return [(bisect.bisect_left(starts, o), bisect.bisect_right(ends, o)) for o in offsets]


def _verify(source: str, program: Program, comments: list[Comment], out: str) -> Comment | None:
    """The first comment whose place the output does not keep (None: all kept)."""
    again = parse(out)
    if again != program or repr(again) != repr(program):
        return comments[0]
    found = scan_comments(out)
    if len(found) != len(comments):
        return comments[min(len(found), len(comments) - 1)]
    before = _counts(_spans(program, source), [c.offset for c in comments])
    after = _counts(_spans(again, out), [c.offset for c in found])
    for c, f, b, a in zip(comments, found, before, after, strict=True):
        if c.text != f.text or c.own_line != f.own_line or b != a:
            return c
    return None


def _group_edges(text: str, program: Program, comments: list[Comment]) -> list[tuple[int, int]]:
    """(line, column) of the nodes that a comment sits between a parenthesis
    and: just after the ``(`` before the node, or just before the ``)`` after
    it.  Written in parentheses, such a node is laid out as a block so that
    the comment stays inside them."""
    off = _Offsets(text)
    nodes = [n for n in _nodes(program) if n is not program]
    spans = [n.span for n in nodes]  # type: ignore[attr-defined]
    starts = sorted((off.at(s.line, s.column), (s.line, s.column)) for s in spans if s != NOSPAN)
    ends = sorted(
        (off.at(s.end_line, s.end_column), (s.line, s.column)) for s in spans if s != NOSPAN
    )
    start_keys, end_keys = [p for p, _ in starts], [p for p, _ in ends]
    out = []
    for c in comments:
        i = bisect.bisect_right(start_keys, c.offset)  # the next start
        j = bisect.bisect_right(end_keys, c.offset)  # ends[j - 1]: the last end before c
        before = max(start_keys[i - 1] if i else 0, end_keys[j - 1] if j else 0)
        if i < len(starts) and _squash(text[before : c.offset]).endswith("("):
            out.append(starts[i][1])
        after = min(
            start_keys[i] if i < len(starts) else len(text),
            end_keys[j] if j < len(ends) else len(text),
        )
        if j and _squash(text[c.offset : after]).startswith(")"):
            # Every node ending there (the outermost is the one in the parentheses).
            first = bisect.bisect_left(end_keys, end_keys[j - 1])
            out += [start for _, start in ends[first:j]]
    return out


# ------------------------------------------------------------------ placement


class _Placer:
    """Anchors each comment of ``source`` to a line of ``plain`` (the comment-free output)."""

    def __init__(self, source: str, program: Program, plain: str, comments: list[Comment]):
        self.source, self.plain, self.comments = source, plain, comments
        formatted = parse(plain)
        src_spans = _spans(program, source)
        out_spans = _spans(formatted, plain)
        if len(src_spans) != len(out_spans):  # the round trip guarantees equal trees
            raise AssertionError("the formatted text does not parse to the same tree")
        self.pairs = [(s, o) for s, o in zip(src_spans, out_spans, strict=True) if s[0] >= 0]
        self.src_off = _Offsets(source)
        self.out_off = _Offsets(plain)
        self.lines = plain.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        # Output offsets where some node starts or ends: a comment cannot go
        # above a line on which one of them comes before its anchor.
        self.out_events = sorted({o[0] for _, o in self.pairs} | {o[1] for _, o in self.pairs})
        # (source offset, output offset) of every start and every end, sorted:
        # in a run of equal source offsets the output ones ascend.
        self.starts = sorted((s[0], o[0]) for s, o in self.pairs)
        self.ends = sorted((s[1], o[1]) for s, o in self.pairs)
        self.start_keys = [p for p, _ in self.starts]
        self.end_keys = [p for p, _ in self.ends]

    def place(self) -> str | Comment:
        above: dict[int, list[tuple[Comment, int]]] = {}  # line -> (comment, indent)
        trailing: dict[int, Comment] = {}
        at_end: list[Comment] = []
        for c in self.comments:
            if c.own_line:
                anchor = self._own_line(c)
                if anchor is None:
                    at_end.append(c)
                elif isinstance(anchor, Comment):
                    return anchor
                else:
                    line, indent = anchor
                    above.setdefault(line, []).append((c, indent))
            else:
                after = self._trailing(c)
                if after is None or after in trailing:
                    return c
                trailing[after] = c
        out: list[str] = []
        for i, text in enumerate(self.lines):
            for c, indent in above.get(i, []):
                out.append(" " * indent + c.text)
                if c.blank_after:
                    out.append("")  # at most one blank line kept after a comment
            tail = trailing.get(i)
            out.append(text + ("  " + tail.text if tail else ""))
        if at_end:
            code_end = max((s[1] for s, _ in self.pairs), default=0)
            if out and "\n\n" in self.source[code_end : at_end[0].offset].replace(" ", ""):
                out.append("")
            for c in at_end:
                out += [c.text, ""] if c.blank_after and c is not at_end[-1] else [c.text]
        return "\n".join(out) + "\n" if out else ""

    def _own_line(self, c: Comment) -> tuple[int, int] | Comment | None:
        """(output line, indent) to write ``c`` above; None: at the end of the file."""
        i = bisect.bisect_right(self.start_keys, c.offset)
        j = bisect.bisect_right(self.end_keys, c.offset)
        first_start = self.start_keys[i] if i < len(self.starts) else None
        first_end = self.end_keys[j] if j < len(self.ends) else None
        if first_start is None and first_end is None:
            return None
        if first_end is not None and (first_start is None or first_end <= first_start):
            # The end of the block holding the comment: above its closing line.
            out_end = self.ends[bisect.bisect_right(self.end_keys, first_end) - 1][1]
            line = self.out_off.line_of(out_end - 1)
            if self._events_between(self.out_off.starts[line], out_end - 1):
                return c
            return line, _indent(self.lines[line]) + len(INDENT)
        assert first_start is not None
        out_start = self.starts[i][1]
        line = self.out_off.line_of(out_start)
        if self._events_between(self.out_off.starts[line], out_start):
            return c
        # Glue written between the comment and the construct (``or (``) stays
        # after the comment when the output has it on the lines just above.
        glue = _squash(self.source[c.offset + len(c.text) : first_start])
        seen = _squash(self.plain[self.out_off.starts[line] : out_start])
        k = line
        while seen != glue and k > 0 and len(seen) < len(glue):
            k -= 1
            start, end = self.out_off.starts[k], self.out_off.starts[k + 1] - 1
            if self._events_between(start, end + 1):
                break
            seen = _squash(self.plain[start:end]) + seen
        if seen == glue:
            line = k
        closing = self.lines[line].lstrip().startswith((")", "}"))  # inside the block
        return line, _indent(self.lines[line]) + (len(INDENT) if closing else 0)

    def _trailing(self, c: Comment) -> int | None:
        """The output line to end with ``c``: where the last construct to start
        or end before it (on its line, or before) starts or ends."""
        i = bisect.bisect_left(self.start_keys, c.offset) - 1  # the last start before c
        j = bisect.bisect_right(self.end_keys, c.offset) - 1  # the last end before c
        if i < 0 and j < 0:
            return None
        line_start = self.src_off.starts[c.line - 1]
        last = max(self.start_keys[i] if i >= 0 else -1, self.end_keys[j] if j >= 0 else -1)
        glue = _squash(self.source[max(last, 0) : c.offset])
        if i + 1 < len(self.starts) and (last < line_start or glue):
            # After glue (``and (  # why``), or nothing of its own on its line:
            # the line above where the next construct starts, when that line
            # is glue only (and, after glue, the same glue).
            line = self.out_off.line_of(self.starts[i + 1][1])
            if line:
                above = self.lines[line - 1]
                lo, hi = self.out_off.starts[line - 1], self.out_off.starts[line]
                glue_only = above.strip() and not self._events_between(lo, hi)
                if glue_only and (not glue or _squash(above) == glue):
                    return line - 1
        if i >= 0 and (j < 0 or self.start_keys[i] >= self.end_keys[j]):
            # The first written of the constructs starting there.
            out = self.starts[bisect.bisect_left(self.start_keys, self.start_keys[i])][1]
        else:
            out = self.ends[j][1] - 1  # the last written of those ending there
        return self.out_off.line_of(out)

    def _events_between(self, lo: int, hi: int) -> bool:
        """Whether some node starts or ends in ``[lo, hi)`` of the output."""
        i = bisect.bisect_left(self.out_events, lo)
        return i < len(self.out_events) and self.out_events[i] < hi


_COMMENT_RE = re.compile(r"#[^\n]*")


def _squash(text: str) -> str:
    """Glue text compared without blanks, comments or letter case."""
    return "".join(_COMMENT_RE.sub("", text).split()).lower()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
