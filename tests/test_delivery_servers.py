"""The SMTP sink the delivery tests send to (tests/helpers/mail_servers.py)."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.helpers.mail_servers import SmtpSink, smtp_server


def test_the_smtp_sink_keeps_what_it_accepts() -> None:
    sink = SmtpSink(slow_step="data", delay=0.05)
    with smtp_server(sink) as port, smtplib.SMTP("127.0.0.1", port, timeout=5) as c:
        t0 = time.monotonic()
        c.sendmail("a@x.com", ["b@x.com"], b"Message-ID: <1@x>\r\nSubject: s\r\n\r\nhi\r\n")
        assert time.monotonic() - t0 >= 0.05
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            sink.refuse_rcpt.add("no@x.com")
            c.sendmail("a@x.com", ["no@x.com"], b"Subject: s\r\n\r\nhi\r\n")
    assert sink.message_ids() == ["<1@x>"] and sink.entered == ["rcpt", "data", "rcpt"]
