"""Bounce classes (RFC 3463 enhanced status codes, then the reply's text).

- ``hard``: the address does not exist (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10,
  5.2.1, 5.4.4 no such domain): suppressed.
- ``soft``: a transient condition (any 4.x.x but policy, X.2.2 mailbox full
  even as 5.2.2, X.3.4 / X.2.3 too large): retried, never suppressed.
- ``block``: the provider refuses the sender, not the address (X.7.x, or text
  about spam, reputation, block lists): never suppressed; what the
  deliverability report watches.
- ``undetermined``: a permanent refusal that says nothing more.

An enhanced code decides when it is one of these; any other (5.0.0, 5.5.0,
...) says too little, and the text decides, as for a reply without one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HARD = "hard"
SOFT = "soft"
BLOCK = "block"
UNDETERMINED = "undetermined"
CLASSES = (HARD, SOFT, BLOCK, UNDETERMINED)

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"^\s*(?:smtp\s*;\s*)?([245]\d\d)\b", re.I)  # "smtp; 550 ..." in a DSN

# (subject.detail) of permanent codes that name a bad address
_HARD_CODES = {"1.1", "1.2", "1.3", "1.6", "1.10", "2.1", "4.4"}
_SOFT_CODES = {"2.2", "2.3", "3.4"}  # mailbox full, message too large

# text patterns, tried in this order: a text naming a missing user is about
# the address even if it also says "rejected"
_TEXT: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        HARD,
        re.compile(
            r"user unknown|unknown user|no such (user|mailbox|recipient|address)|"
            r"does not exist|doesn't exist|unknown (recipient|mailbox|address)|"
            r"invalid (recipient|mailbox|address)|recipient (address )?rejected: "
            r"(user|mailbox)|mailbox (not found|unavailable|does not)|"
            r"account (has been )?(disabled|deactivated)|no mailbox|"
            r"doesn.t have an? [\w.-]+ account|"
            r"host (or domain name )?not found|domain not found|no such domain",
            re.I,
        ),
    ),
    (
        SOFT,
        re.compile(
            r"mailbox (is )?full|over ?quota|quota exceeded|insufficient (system )?storage|"
            r"(message|mail) (is )?too (large|big)|size (limit )?exceeded|try again later|"
            r"temporar(il)?y",
            re.I,
        ),
    ),
    (
        BLOCK,
        re.compile(
            r"block(ed)?|spam|reputation|black ?list|block ?list|\blisted\b|\brbl\b|"
            r"spamhaus|spamcop|barracuda|policy|unsolicited|rate limit|"
            r"not authori[sz]ed|authentication|dmarc|dkim|spf|junk",
            re.I,
        ),
    ),
)


@dataclass(frozen=True)
class Bounce:
    bounce_class: str  # HARD, SOFT, BLOCK, UNDETERMINED
    status_code: str | None  # the enhanced code, e.g. "5.1.1"
    reply_code: int | None  # the SMTP reply code, e.g. 550
    diagnostic: str  # the reply's text (or a report's Diagnostic-Code), one line

    @property
    def suppresses(self) -> bool:
        """Does it put the address on the suppression list?"""
        return self.bounce_class == HARD

    @property
    def transient(self) -> bool:
        """Retried at sending time (a soft bounce, or any 4xx reply)."""
        if self.bounce_class == SOFT:
            return True
        if self.reply_code is not None:
            return 400 <= self.reply_code < 500
        return self.status_code is not None and self.status_code.startswith("4")


def enhanced_code(text: str) -> str | None:
    """The first RFC 3463 code in ``text`` (``"5.1.1"``), or None."""
    m = _ENHANCED.search(text)
    return None if m is None else ".".join(m.groups())


def classify(reply_code: int | None, text: str, status_code: str | None = None) -> Bounce:
    """The class of a refusal: SMTP reply code (or None), its text, and an
    enhanced code given apart (a report's ``Status``; else found in the text)."""
    line = " ".join(text.split())[:1000]
    if reply_code is None:
        m = _REPLY.match(line)
        reply_code = int(m.group(1)) if m else None
    code = status_code or enhanced_code(line)
    return Bounce(_class_of(reply_code, code, line), code, reply_code, line)


def _class_of(reply_code: int | None, code: str | None, text: str) -> str:
    if code is not None:
        klass, subject, detail = code.split(".")
        rest = f"{int(subject)}.{int(detail)}"
        if subject == "7":
            return BLOCK
        if rest in _SOFT_CODES:
            return SOFT
        if klass == "5" and rest in _HARD_CODES:
            return HARD
        if klass == "4":
            # a transient refusal whose text blames the sender is a block (421 "rate limited ...")
            return BLOCK if _by_text(text) == BLOCK else SOFT
    by_text = _by_text(text)
    if by_text is not None:
        return by_text
    if reply_code is not None and 400 <= reply_code < 500:
        return SOFT
    return UNDETERMINED


def _by_text(text: str) -> str | None:
    for klass, pattern in _TEXT:
        if pattern.search(text):
            return klass
    return None
