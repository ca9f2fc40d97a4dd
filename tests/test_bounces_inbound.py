"""Asynchronous reports: ``audience inbound`` as a real process receiving the
corpus over SMTP (smtplib), garbage and stalled clients on raw sockets, and
``audience inbound import`` of .eml and mbox files (docs/bounces.md)."""

from __future__ import annotations

import json
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

from audience.cli import cli
from audience.runtime.tracking import suppression
from tests.helpers.bounces import DOMAIN, Sent, send_all
from tests.helpers.mail_servers import free_port

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = ["ann", "bo", "cy", "di"]


def run(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def rejected(root: Path) -> list[tuple[str, str]]:
    rows = json.loads(run("inbound", "rejected", str(root), "--format", "json"))["rejected"]
    return sorted((r["origin"].rsplit("/", 1)[-1], r["reason"]) for r in rows)


@contextmanager
def receiver(root: Path, *extra: str, kill: bool = False) -> Iterator[int]:
    """``audience inbound`` in a process of its own; stopped with SIGTERM, or
    ``kill``: with SIGKILL (nothing of it runs after)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "audience", "inbound", str(root), "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on smtp://127.0.0.1:" in line, line + proc.stderr.read()  # type: ignore[union-attr]
        yield port
    finally:
        if kill:
            proc.kill()
        else:
            proc.terminate()
        proc.wait(timeout=60)


def smtp_send(port: int, rcpt: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo()
        c.mail("mailer-daemon@googlemail.com")
        code, _ = c.rcpt(rcpt)
        assert code == 250, code
        return c.data(raw.replace(b"\n", b"\r\n"))


def check_outcomes(sent: Sent) -> None:
    """The events and suppressions the corpus about ann, bo, cy, di makes."""
    assert sent.events("email_bounced", 'bounce_class = "hard"') == {"ann", "bo"}
    assert sent.events("email_bounced", 'bounce_class = "block"') == {"cy"}
    assert sent.events("email_bounced", 'bounce_class = "hard" and status_code = "5.1.1"') == {
        "ann"
    }
    assert sent.events(
        "email_bounced", 'remote_mta = "gmail-smtp-in.l.google.com." and via = "report"'
    ) == {"cy"}  # ann's report names the MTA with a comment after it
    assert sent.events("email_complained", 'feedback_type = "abuse"') == {"cy", "di"}
    listed = {(e.email, e.reason) for e in suppression.entries(sent.root)}
    assert listed == {
        ("ann@gmail.com", "hard_bounce"),
        ("bo@gmail.com", "hard_bounce"),
        ("cy@gmail.com", "complaint"),
        ("di@gmail.com", "complaint"),
    }


def test_the_receiver_records_reports_sent_over_smtp(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", PEOPLE)
    ann, bo, cy, _ = sent.verp
    with receiver(sent.root) as port:
        assert smtp_send(port, ann, sent.report("gmail_hard.eml"))[0] == 250
        assert smtp_send(port, bo, sent.report("no_enhanced_codes.eml", 1))[0] == 250
        assert smtp_send(port, cy, sent.report("gmail_block.eml", 2))[0] == 250
        assert smtp_send(port, ann, sent.report("delayed.eml"))[0] == 250
        # feedback reports: to the VERP address (Yahoo), to the plain address with
        # our headers in the attached message (Microsoft), redacted (headers only)
        assert smtp_send(port, cy, sent.report("yahoo_arf.eml", 2))[0] == 250
        assert smtp_send(port, f"bounces@{DOMAIN}", sent.report("outlook_jmrp.eml", 3))[0] == 250
        assert smtp_send(port, f"bounces@{DOMAIN}", sent.report("redacted_arf.eml", 3))[0] == 250
        assert smtp_send(port, f"bounces@{DOMAIN}", sent.report("garbage.eml"))[0] == 250
        assert smtp_send(port, f"bounces@{DOMAIN}", sent.report("unknown_delivery.eml"))[0] == 250
        # the same report again (an MTA retrying): recorded once
        assert smtp_send(port, ann, sent.report("gmail_hard.eml"))[0] == 250
        # not a relay: other addresses are refused
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo()
            c.mail("x@example.com")
            assert c.rcpt("angela@gmail.com")[0] == 550
            assert c.rcpt("bounces@other.example")[0] == 550
        check_outcomes(sent)
    assert rejected(sent.root) == [
        ("smtp", "not_a_bounce"),
        ("smtp", "not_a_report"),
        ("smtp", "unknown_delivery"),
    ]
    assert sent.events("email_bounced") == {"ann", "bo", "cy"}


def test_the_receiver_survives_garbage_huge_and_stalled_clients(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", PEOPLE)
    with receiver(sent.root, "--max-size", "20000", "--timeout", "1") as port:
        # a client that speaks no SMTP gets errors, then is disconnected
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            f = s.makefile("rb")
            assert f.readline().startswith(b"220")
            s.sendall(b"\x00\xff\xfeGARBAGE\r\nGET / HTTP/1.1\r\n" + b"x" * 100 + b"\r\n")
            assert f.readline().startswith(b"5")
        # a message over the size cap is refused, and recorded
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo()
            assert c.does_esmtp and int(c.esmtp_features["size"]) == 20000
            c.mail("mailer-daemon@googlemail.com")
            c.rcpt(sent.verp[0])
            code, _ = c.data(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 30)
            assert code == 552
        # so is one that announces a message over the cap (SIZE=)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo()
            assert c.mail("mailer-daemon@googlemail.com", ["SIZE=999999"])[0] == 552
        # a client that stops in the middle of DATA is disconnected
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            f = s.makefile("rb")
            f.readline()
            for cmd in (
                b"EHLO x",
                b"MAIL FROM:<a@b.example>",
                f"RCPT TO:<{sent.verp[0]}>".encode(),
                b"DATA",
            ):
                s.sendall(cmd + b"\r\n")
                line = f.readline()
                while line[3:4] == b"-":
                    line = f.readline()
            s.sendall(b"Subject: never ends\r\n")
            assert f.read() == b""  # the server closed the connection
        # and the next client is served
        assert smtp_send(port, sent.verp[0], sent.report("gmail_hard.eml"))[0] == 250
        assert sent.events("email_bounced", 'bounce_class = "hard"') == {"ann"}
    assert rejected(sent.root) == [("smtp", "too_large"), ("smtp", "too_large")]


def test_import_of_eml_and_mbox_files(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", PEOPLE)
    files = tmp_path / "files"
    files.mkdir()
    for name, first in [
        ("gmail_block.eml", 2),
        ("yahoo_arf.eml", 2),
        ("outlook_jmrp.eml", 3),
        ("redacted_arf.eml", 3),
        ("delayed.eml", 0),
        ("malformed.eml", 0),
        ("garbage.eml", 0),
        ("unknown_delivery.eml", 0),
        ("several.mbox", 0),  # bo hard (5.1.1), cy soft (5.2.2), a plain message
    ]:
        (files / name).write_bytes(sent.report(name, first))
    paths = sorted(str(p) for p in files.iterdir())
    got = json.loads(run("inbound", "import", str(sent.root), *paths, "--format", "json"))
    assert (got["bounce"], got["complaint"], got["rejected"]) == (3, 3, 5)
    assert rejected(sent.root) == [
        ("delayed.eml", "not_a_bounce"),
        ("garbage.eml", "not_a_report"),
        ("malformed.eml", "malformed"),
        ("several.mbox#3", "not_a_report"),
        ("unknown_delivery.eml", "unknown_delivery"),
    ]
    assert sent.events("email_bounced", 'bounce_class = "soft" and status_code = "5.2.2"') == {"cy"}
    assert sent.events("email_bounced", 'bounce_class = "hard"') == {"bo"}
    assert sent.events("email_complained") == {"cy", "di"}
    # imported again: nothing new (the events' ids come from the reports)
    run("inbound", "import", str(sent.root), *paths)
    assert sent.events("email_complained") == {"cy", "di"}
    listed = {(e.email, e.reason) for e in suppression.entries(sent.root)}
    assert listed == {
        ("bo@gmail.com", "hard_bounce"),
        ("cy@gmail.com", "complaint"),
        ("di@gmail.com", "complaint"),
    }


def test_import_of_a_missing_file_changes_nothing(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", PEOPLE[:1])
    (tmp_path / "a.eml").write_bytes(sent.report("gmail_hard.eml"))
    res = CliRunner().invoke(
        cli,
        ["inbound", "import", str(sent.root), str(tmp_path / "a.eml"), str(tmp_path / "no.eml")],
    )
    assert res.exit_code == 1 and "no.eml: no such file; nothing imported" in res.output
    assert suppression.entries(sent.root) == [] and rejected(sent.root) == []


def test_the_benchmark_runs_and_stores_every_report() -> None:
    from benchmarks.bench_inbound import run as bench

    got = bench(20, 2)
    assert got["reports"] == 20 and got["per_s"] > 0


def test_a_report_answered_250_survives_a_kill_9(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", PEOPLE[:1])
    with receiver(sent.root, kill=True) as port:
        assert smtp_send(port, sent.verp[0], sent.report("gmail_hard.eml"))[0] == 250
    # killed at once: the report was committed before the answer, and a
    # receiver started again ingests what the killed one may have left
    assert [e.reason for e in suppression.entries(sent.root)] == ["hard_bounce"]
    with receiver(sent.root):
        assert sent.events("email_bounced", 'bounce_class = "hard"') == {"ann"}
