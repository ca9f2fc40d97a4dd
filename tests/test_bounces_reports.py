"""Reading reports: any bytes whatever give a Report or a reason
(``NotAReport``), never another exception; the corpus, mutated, truncated or
spliced, is recorded or rejected and nothing else; settings that cannot be used
are refused (docs/bounces.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.cli import cli
from audience.runtime.bounces.record import Envelope, Inbound, signer_for
from audience.runtime.bounces.reports import NotAReport, parse
from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.tracking import suppression
from audience.runtime.tracking.config import TrackingConfig, TrackingConfigError, write_setting
from tests.helpers.bounces import CORPUS, send_all

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
SAMPLES = [p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.suffix in (".eml", ".mbox")]


def _read(raw: bytes) -> str:
    try:
        return parse(raw).kind
    except NotAReport as exc:
        assert exc.reason in ("not_a_report", "malformed") and exc.detail
        return exc.reason


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_report_or_a_reason(raw: bytes) -> None:
    _read(raw)


@FUZZ
@given(
    st.sampled_from(SAMPLES),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.binary(max_size=40),
)
def test_mutated_reports_are_a_report_or_a_reason(
    sample: bytes, cut: int, at: int, noise: bytes
) -> None:
    _read(sample[:cut])
    _read(sample[:at] + noise + sample[at + len(noise) :])


def test_the_corpus_is_read_as_written() -> None:
    kinds = {p.name: _read(p.read_bytes()) for p in sorted(CORPUS.glob("*.eml"))}
    assert kinds == {
        "delayed.eml": "delivery-status",
        "garbage.eml": "not_a_report",
        "gmail_block.eml": "delivery-status",
        "gmail_hard.eml": "delivery-status",
        "malformed.eml": "malformed",
        "no_enhanced_codes.eml": "delivery-status",
        "outlook_jmrp.eml": "feedback-report",
        "redacted_arf.eml": "feedback-report",
        "unknown_delivery.eml": "delivery-status",
        "yahoo_arf.eml": "feedback-report",
    }
    r = parse((CORPUS / "gmail_hard.eml").read_bytes())
    [s] = r.recipients
    assert (s.action, s.status, r.reporting_mta) == ("failed", "5.1.1", "googlemail.com")
    assert s.diagnostic.startswith("550-5.1.1 The email account")


def test_a_feedback_report_of_another_type_is_no_complaint(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", ["ann"])
    raw = sent.report("yahoo_arf.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    with DeliveryLog.open(sent.root) as log:
        out = Inbound(log, signer_for(sent.root)).receive(raw, Envelope("test"))
    assert (out.kind, out.reason, out.detail) == (
        "rejected",
        "not_a_complaint",
        "Feedback-Type: not-spam",
    )
    assert suppression.entries(sent.root) == []


def test_a_trigger_send_to_a_bounced_address_is_suppressed_with_that_reason(
    tmp_path: Path,
) -> None:
    with DeliveryLog.open(tmp_path) as log:
        with log.transaction() as conn:
            suppression.add_in(conn, "Gone@x.example", suppression.HARD_BOUNCE)
        d = log.request(
            DeliveryRequest(
                "trigger:T:e1:0",
                "main",
                "g",
                "gone@x.example",
                "email",
                "send_email",
                {},
                wall_ms(),
            )
        )
    assert (d.status, d.cap) == ("suppressed", "hard_bounce")


@pytest.mark.parametrize("bad", ["not a domain", "-x.example", "a..b", "x" * 64 + ".example"])
def test_a_bad_return_path_domain_is_refused_and_changes_nothing(tmp_path: Path, bad: str) -> None:
    write_setting(tmp_path, "tracking.return_path_domain", "bounces.shop.example")
    with pytest.raises(TrackingConfigError, match="is not a domain name"):
        write_setting(tmp_path, "tracking.return_path_domain", bad)
    assert TrackingConfig.load(tmp_path, env={}).return_path_domain == "bounces.shop.example"


def test_the_return_path_domain_is_set_by_audience_config(tmp_path: Path) -> None:
    sent = send_all(tmp_path / "s", [])
    root = str(sent.root)
    res = CliRunner().invoke(
        cli, ["config", root, "tracking.return_path_domain", "B.Shop.Example."]
    )
    assert res.exit_code == 0, res.output
    assert "tracking.return_path_domain = b.shop.example" in res.output
    res = CliRunner().invoke(cli, ["config", root, "tracking.return_path_domain", "no way"])
    assert res.exit_code == 1 and "is not a domain name" in res.output


def test_a_report_naming_its_delivery_by_unsigned_headers_only_is_rejected(
    tmp_path: Path,
) -> None:
    """A recipient knows a message's Message-ID and X-Audience-Delivery, and
    could name another contact's delivery with them: they are not trusted."""
    sent = send_all(tmp_path / "s", ["ann", "bo"])
    raw = sent.report("outlook_jmrp.eml", 1).replace(
        b"X-Audience-Token: " + sent.values()["TOKEN_2"].encode(), b"X-Audience-Token: forged"
    )
    assert b"X-Audience-Delivery: plan:main:Spring:1:0:bo" in raw
    with DeliveryLog.open(sent.root) as log:
        out = Inbound(log, signer_for(sent.root)).receive(raw, Envelope("test"))
        assert (out.kind, out.reason) == ("rejected", "unknown_delivery")
        # the same report with the token as sent names bo's delivery
        good = Inbound(log, signer_for(sent.root)).receive(
            sent.report("outlook_jmrp.eml", 1), Envelope("test")
        )
    assert (good.kind, good.delivery_id) == ("complaint", sent.deliveries[1].id)
    assert [(e.email, e.reason) for e in suppression.entries(sent.root)] == [
        ("bo@gmail.com", "complaint")
    ]
