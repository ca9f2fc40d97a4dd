"""What explain says each step of a program does, in the words of the rules.

The physical program names a step's inputs by their index (``and #1 #4``);
that is for whoever reads a plan, not for the marketer reading explain.  Here
a step that is a rule is called by its label, a top-level operand by its text,
and any other input by what it tests, so no step number is ever shown.
"""

from __future__ import annotations

from audience.compiler import plan as p
from audience.compiler.physical import BoolStep, ProfileStep, Program, ScanStep, SeqStep, TestStep
from audience.compiler.render import _lit, filter_text, leaf_text, pred_text, recency_text

# an unnamed input quoted inside another step's text is cut at this length, so a
# deep nesting (not not not ...) does not grow every line with its whole depth
MAX_QUOTED = 60
_TIMES = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}


def step_words(prog: Program) -> list[str]:
    """The explain text of every step of ``prog``, in order."""
    names: dict[int, str] = {}
    for text, sid in prog.operands:
        names.setdefault(sid, text)
    rules: dict[int, str] = {}
    for label, sid in prog.rules:
        rules.setdefault(sid, _lit(label))
    words: list[str] = []

    def ref(i: int) -> str:
        if i in rules:
            return rules[i]
        text = names.get(i, words[i])
        if len(text) > MAX_QUOTED:
            text = text[: MAX_QUOTED - 3] + "..."
        step = prog.steps[i]
        compound = isinstance(step, BoolStep) and step.op != "not"
        return f"({text})" if compound else text

    for i, step in enumerate(prog.steps):
        if isinstance(step, ScanStep):
            text = f"read the events: {_events(step.filter)}"
        elif isinstance(step, TestStep):
            text = _test(step.cond)
        elif isinstance(step, SeqStep):
            text = leaf_text(step.cond)
        elif isinstance(step, ProfileStep):
            text = pred_text(step.pred)
        elif step.op == "not":
            text = "not " + ref(step.inputs[0])
        else:
            text = f" {step.op} ".join(ref(j) for j in step.inputs)
        words.append(f"rule {rules[i]}: {text}" if i in rules else text)
    return words


def _events(f: p.RowFilter) -> str:
    text = filter_text(f)
    return text[: -len(" all time")] if text.endswith(" all time") else text


def _test(cond: p.CountCond | p.AggCond | p.RecencyCond) -> str:
    events = _events(cond.filter)
    if isinstance(cond, p.CountCond):
        if cond.op == "at_least" and cond.n == 1:
            return f"did {events}"
        if cond.op == "between":
            return f"did {events} between {cond.n} and {cond.high} times"
        return f"did {events} {_TIMES[cond.op]} {cond.n} times"
    if isinstance(cond, p.RecencyCond):
        return f"{cond.which} {events} {recency_text(cond.recency)}"
    return leaf_text(cond)
