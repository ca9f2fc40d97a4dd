"""Bounces at sending time: the worker against a real SMTP server (aiosmtpd
on loopback) that refuses recipients with given replies; and the classifier's
table (docs/bounces.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.runtime.bounces.classify import classify
from audience.runtime.bounces.verp import delivery_of
from audience.runtime.delivery import DeliveryLog
from audience.runtime.tracking import suppression
from audience.runtime.tracking.config import secret
from audience.runtime.tracking.tokens import Signer
from tests.helpers.bounces import DOMAIN, send_all


@pytest.mark.parametrize(
    ("code", "text", "klass", "status"),
    [
        (550, "5.1.1 The email account that you tried to reach does not exist.", "hard", "5.1.1"),
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found", "hard", "5.1.10"),
        (550, "5.2.1 The email account that you tried to reach is disabled.", "hard", "5.2.1"),
        (452, "4.2.2 The email account that you tried to reach is over quota.", "soft", "4.2.2"),
        (552, "5.2.2 mailbox full", "soft", "5.2.2"),
        (552, "5.3.4 Message size exceeds fixed limit", "soft", "5.3.4"),
        (
            550,
            "5.7.26 Unauthenticated email is not accepted due to DMARC policy",
            "block",
            "5.7.26",
        ),
        (
            421,
            "4.7.28 unusual rate of unsolicited mail originating from your IP",
            "block",
            "4.7.28",
        ),
        (550, "5.7.1 Service unavailable, Client host blocked using Spamhaus", "block", "5.7.1"),
        (554, "rejected: your IP 203.0.113.25 is listed on zen.spamhaus.org", "block", None),
        (550, "Message rejected due to poor sender reputation", "block", None),
        (550, "User unknown in virtual mailbox table", "hard", None),
        (550, "5.0.0 <a@b.example>: Recipient address rejected: User unknown", "hard", "5.0.0"),
        (451, "Temporary local problem, try again later", "soft", None),
        (554, "Transaction failed", "undetermined", None),
        (550, "5.5.0 Requested action not taken", "undetermined", "5.5.0"),
        (550, "Rejected, see 10.1.1.4 for details", "undetermined", None),
    ],
)
def test_refusals_are_classified(code: int, text: str, klass: str, status: str | None) -> None:
    b = classify(code, text)
    assert (b.bounce_class, b.status_code, b.reply_code) == (klass, status, code)
    assert b.suppresses == (klass == "hard")


def test_soft_bounces_are_transient_even_as_5xx() -> None:
    assert classify(552, "5.2.2 mailbox full").transient
    assert classify(421, "4.7.0 try later").transient
    assert not classify(550, "5.7.1 blocked").transient
    assert not classify(550, "5.1.1 no such user").transient


def test_the_worker_classifies_each_refusal_and_records_it(tmp_path: Path) -> None:
    replies = {
        "hard@gmail.com": "550 5.1.1 The email account that you tried to reach does not exist",
        "full@gmail.com": "552 5.2.2 The email account that you tried to reach is over quota",
        "block@gmail.com": "550 5.7.1 Message rejected: sender IP listed on Spamhaus",
        "odd@gmail.com": "554 Transaction failed",
    }
    people = ["ok", "hard", "full", "block", "odd"]
    # two attempts, no wait between them: the soft bounce is retried once, then fails
    sent = send_all(tmp_path / "s", people, replies, max_attempts=2, backoff_s=0.0)
    status = {d.contact_id: (d.status, d.attempts) for d in sent.deliveries}
    assert status == {
        "ok": ("sent", 1),
        "hard": ("failed", 1),
        "full": ("failed", 2),  # soft: the retry policy applied
        "block": ("failed", 1),
        "odd": ("failed", 1),
    }
    # one RCPT per transaction, and the VERP return path as the envelope sender
    assert sent.sink is not None and sent.sink.rcpts_per_mail == [1]
    signer = Signer(secret(sent.root))
    ok = sent.deliveries[0]
    assert sent.verp[0].endswith("@" + DOMAIN) and delivery_of(signer, sent.verp[0]) == ok.id
    # and the same signed token in a header, for reports that hide the return path
    [msg] = sent.sink.received
    assert signer.read("b", str(msg["X-Audience-Token"])) == (ok.id, None)
    # one email_bounced per failed delivery, with its class and enhanced code
    for klass, who, code in [
        ("hard", "hard", "5.1.1"),
        ("soft", "full", "5.2.2"),
        ("block", "block", "5.7.1"),
        ("undetermined", "odd", None),
    ]:
        where = f'bounce_class = "{klass}" and via = "smtp"'
        if code:
            where += f' and status_code = "{code}"'
        assert sent.events("email_bounced", where) == {who}, klass
    assert sent.events("email_bounced") == {"hard", "full", "block", "odd"}
    # only the hard bounce is suppressed
    listed = {(e.email, e.reason) for e in suppression.entries(sent.root)}
    assert listed == {("hard@gmail.com", "hard_bounce")}


def test_a_retried_refusal_records_nothing_yet(tmp_path: Path) -> None:
    sent = send_all(
        tmp_path / "s", ["full"], {"full@gmail.com": "452 4.2.2 mailbox full"}, max_attempts=5
    )
    [d] = sent.deliveries
    assert d.status == "reserved" and d.attempts == 1 and "452" in (d.last_error or "")
    assert sent.events("email_bounced") == set()
    with DeliveryLog.open(sent.root) as log:
        assert suppression.entries(sent.root) == [] and log.get(d.id) is not None


def test_a_refusal_after_data_is_classified_too(tmp_path: Path) -> None:
    spam = "554 5.7.1 Message rejected as spam by Content Filtering"
    sent = send_all(tmp_path / "s", ["ann"], data_replies={"ann@gmail.com": spam})
    [d] = sent.deliveries
    assert d.status == "failed" and "554" in (d.last_error or "")
    assert sent.events("email_bounced", 'bounce_class = "block" and status_code = "5.7.1"') == {
        "ann"
    }
    assert suppression.entries(sent.root) == []  # a block never suppresses
