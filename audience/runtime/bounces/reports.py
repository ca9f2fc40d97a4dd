"""Reading a report message: RFC 3464 delivery-status notifications
(``multipart/report; report-type=delivery-status``: one block of fields per
recipient, with Action, Status, Diagnostic-Code, Final-Recipient) and RFC
5965 feedback reports (``report-type=feedback-report``: Feedback-Type,
User-Agent, and the reported message or its headers).

``parse`` never raises on its input: a message that is not one of these
raises ``NotAReport`` with the reason (``not_a_report`` or ``malformed``)."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import parsedate_to_datetime

NOT_A_REPORT = "not_a_report"
MALFORMED = "malformed"


class NotAReport(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a delivery-status report."""

    final_recipient: str | None
    original_recipient: str | None
    action: str  # failed, delayed, delivered, relayed, expanded (lower-case)
    status: str | None  # the enhanced code, e.g. "5.1.1"
    diagnostic: str  # Diagnostic-Code without its type ("smtp; "), "" when absent
    remote_mta: str | None


@dataclass(frozen=True)
class Report:
    kind: str  # "delivery-status" or "feedback-report"
    message_id: str | None  # the report's own
    date_ms: int | None  # the report's Date
    to: tuple[str, ...]  # the report's To, Delivered-To and X-Original-To values
    reporting_mta: str | None
    recipients: tuple[RecipientStatus, ...] = ()  # delivery-status
    feedback_type: str | None = None  # feedback-report, lower-case
    user_agent: str | None = None
    original_rcpt: tuple[str, ...] = ()  # feedback-report's Original-Rcpt-To (often absent)
    original: Message | None = None  # the returned message or its headers


def parse(raw: bytes) -> Report:
    try:
        return _parse(raw)
    except NotAReport:
        raise
    except Exception as exc:  # the parser is lenient; whatever it still fails on is garbage
        raise NotAReport(MALFORMED, f"the message cannot be read: {exc}") from None


def _parse(raw: bytes) -> Report:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        if not msg.keys():
            raise NotAReport(NOT_A_REPORT, "no header fields: not an email message")
        raise NotAReport(
            NOT_A_REPORT, f"a {msg.get_content_type()} message, not a multipart/report"
        )
    report_type = str(msg.get_param("report-type", "") or "").lower()
    if report_type not in ("delivery-status", "feedback-report"):
        raise NotAReport(NOT_A_REPORT, f"report-type {report_type or '(none)'} is not handled")
    payload = msg.get_payload()
    parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    if not parts:
        defects = ", ".join(type(d).__name__ for d in msg.defects) or "no parts"
        raise NotAReport(MALFORMED, f"a multipart/report without its parts ({defects})")
    wanted = "message/" + (
        "delivery-status" if report_type == "delivery-status" else "feedback-report"
    )
    fields = next((p for p in parts if p.get_content_type() == wanted), None)
    if fields is None:
        raise NotAReport(MALFORMED, f"a {report_type} report without its {wanted} part")
    blocks = _blocks(fields)
    original = _original(parts)
    to = tuple(
        str(v)
        for name in ("To", "Delivered-To", "X-Original-To")
        for v in (msg.get_all(name) or [])
    )
    common = dict(
        message_id=_one(msg.get("Message-ID")),
        date_ms=_date_ms(msg.get("Date")),
        to=to,
    )
    if report_type == "delivery-status":
        if len(blocks) < 2:
            raise NotAReport(MALFORMED, "a delivery-status part without a recipient block")
        per_message, per_recipient = blocks[0], blocks[1:]
        recipients = tuple(_recipient(b) for b in per_recipient)
        if not any(r.action for r in recipients):
            raise NotAReport(MALFORMED, "no recipient block has an Action field")
        return Report(
            "delivery-status",
            reporting_mta=_typed(per_message.get("Reporting-MTA")),
            recipients=recipients,
            original=original,
            **common,  # type: ignore[arg-type]
        )
    fb = blocks[0] if blocks else Message()
    feedback_type = _one(fb.get("Feedback-Type"))
    if not feedback_type:
        raise NotAReport(MALFORMED, "a feedback report without a Feedback-Type field")
    return Report(
        "feedback-report",
        reporting_mta=_one(fb.get("Reporting-MTA")) and _typed(fb.get("Reporting-MTA")),
        feedback_type=feedback_type.lower(),
        user_agent=_one(fb.get("User-Agent")),
        original_rcpt=tuple(_typed(v) or "" for v in fb.get_all("Original-Rcpt-To") or []),
        original=original,
        **common,  # type: ignore[arg-type]
    )


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    text = str(payload or "").replace("\r\n", "\n")
    return [HeaderParser().parsestr(b.strip() + "\n") for b in text.split("\n\n") if b.strip()]


def _original(parts: list[Message]) -> Message | None:
    """The returned message (message/rfc822) or its headers (text/rfc822-headers)."""
    for p in parts[1:]:
        ctype = p.get_content_type()
        if ctype == "message/rfc822":
            inner = p.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if ctype in ("text/rfc822-headers", "text/rfc822-header"):
            body = p.get_payload(decode=True)
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            return HeaderParser().parsestr(text.replace("\r\n", "\n"))
    return None


def _recipient(b: Message) -> RecipientStatus:
    diagnostic = _one(b.get("Diagnostic-Code")) or ""
    return RecipientStatus(
        final_recipient=_typed(b.get("Final-Recipient")),
        original_recipient=_typed(b.get("Original-Recipient")),
        action=(_one(b.get("Action")) or "").lower(),
        status=(_one(b.get("Status")) or "").split(" ")[0] or None,
        diagnostic=_typed(diagnostic) or "",
        remote_mta=_typed(b.get("Remote-MTA")),
    )


def _one(v: object) -> str | None:
    """A header value on one line (folded lines joined), None when absent or empty."""
    if v is None:
        return None
    text = " ".join(str(v).split())
    return text or None


def _typed(v: object) -> str | None:
    """A typed DSN field's value without its type: "rfc822; a@b" -> "a@b"."""
    text = _one(v)
    if text is None:
        return None
    kind, semi, rest = text.partition(";")
    return rest.strip() if semi and " " not in kind.strip() else text


def _date_ms(v: object) -> int | None:
    text = _one(v)
    if text is None:
        return None
    try:
        dt = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        return None
    return int(dt.timestamp() * 1000)
