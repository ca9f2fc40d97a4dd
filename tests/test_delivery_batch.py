"""reserve_batch (the numba kernel over recent counts) against one request per contact."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.delivery import DeliveryLog, DeliveryRequest, Policy
from tests.helpers.delivery import DAY, HOUR, MAISON, T0, policy

POLICIES = [
    MAISON,
    policy('dnd "Local" {\n max 2 per 3 days\n max 1 per 12 hours\n}'),
    policy('dnd "Monthly" timezone "Europe/Rome" {\n max 2 per month\n global\n}'),
    policy('dnd "Mail" {\n max 1 per day\n for email\n global\n}'),
    policy('dnd "Quiet" {\n max 1 per day\n quiet hours 22:00 to 08:00\n}'),
]
CONTACTS = [f"c{i}" for i in range(6)]
EMAILS = [None, "a@x.com", "A@X.com ", "b@x.com", "c@x.com"]

history = st.lists(
    st.tuples(
        st.sampled_from(["main", "eu"]),
        st.sampled_from(CONTACTS),
        st.sampled_from(EMAILS),
        st.integers(-10 * 24, 3 * 24).map(lambda h: h * HOUR),
        st.sampled_from(["email", "webhook"]),
        st.booleans(),
    ),
    max_size=12,
)
recipients = st.lists(st.tuples(st.sampled_from(CONTACTS), st.sampled_from(EMAILS)), max_size=10)


def _single(
    log: DeliveryLog,
    key: str,
    node: str,
    contact: str,
    email: str | None,
    at: int,
    pol: Policy,
    channel: str = "email",
    test: bool = False,
) -> str:
    return log.request(
        DeliveryRequest(
            key,
            node,
            contact,
            email,
            channel,
            "send_email",
            {"n": key},
            at,
            pol,
            test=test,
            now_ms=at,
        )
    ).status


@settings(max_examples=60, deadline=None)
@given(history, recipients, st.sampled_from(POLICIES), st.integers(0, 23))
def test_batch_decides_as_requests_in_order(
    past: list[tuple[str, str, str | None, int, str, bool]],
    who: list[tuple[str, str | None]],
    pol: Policy,
    hour: int,
) -> None:
    t = T0 + hour * HOUR
    one, batch = DeliveryLog.open(None), DeliveryLog.open(None)
    for i, (node, contact, email, dt_, channel, test) in enumerate(past):
        for log in (one, batch):
            _single(log, f"h{i}", node, contact, email, T0 + dt_, pol, channel, test)
    expected: dict[str, str] = {}
    for contact, email in who:
        status = _single(one, f"p:{contact}", "main", contact, email, t, pol)
        expected.setdefault(f"p:{contact}", status)
    counts = batch.reserve_batch(
        "main",
        [c for c, _ in who],
        [e for _, e in who],
        pol,
        t,
        {"subject": "s"},
        "plan",
        "p:",
        now_ms=t,
    )
    assert counts["requested"] == len(who)
    assert counts["existing"] == len(who) - len(expected)
    batch.materialize_all()
    got = {d.key: d.status for d in batch.list() if d.key.startswith("p:")}
    assert got == expected
    # and a later request sees the batch's members exactly as it sees single rows
    for contact in CONTACTS:
        a = _single(one, f"late:{contact}", "main", contact, "a@x.com", t + HOUR, pol)
        b = _single(batch, f"late:{contact}", "main", contact, "a@x.com", t + HOUR, pol)
        assert a == b


def test_batch_protects_a_later_reservation() -> None:
    log = DeliveryLog.open(None)
    assert _single(log, "later", "main", "c1", None, T0 + 5 * HOUR, MAISON) == "reserved"
    counts = log.reserve_batch(
        "main", ["c1", "c2"], [None, None], MAISON, T0, {}, "p", "p:", now_ms=T0
    )
    assert (counts["reserved"], counts["by_cap"]) == (1, {"max 1 per day": 1})


def test_members_count_before_and_after_materializing(tmp_path: Path) -> None:
    log = DeliveryLog.open(tmp_path)
    ids = [f"c{i}" for i in range(1000)]
    emails = [f"C{i}@x.com" for i in range(1000)]
    first = log.reserve_batch(
        "main", ids, emails, MAISON, T0, {"subject": "hi"}, "plan:a", "a:", now_ms=T0
    )
    assert (first["reserved"], first["suppressed"]) == (1000, 0)
    # counted while still a blob: the same people, another node, same emails
    second = log.reserve_batch(
        "eu", ids[:10], emails[:10], MAISON, T0 + HOUR, {}, "plan:b", "b:", now_ms=T0
    )
    assert second["suppressed"] == 10 and second["by_cap"] == {"max 1 per day": 10}
    assert _single(log, "s1", "main", "c5", None, T0 + HOUR, MAISON) == "suppressed"
    moved = log.materialize_all()
    assert moved == 1010
    assert log.counts() == {"reserved": 1000, "suppressed": 11}
    assert log.list(contact="c3", status="reserved")[0].payload == {"subject": "hi"}
    assert log.list(contact="c3")[0].email == "C3@x.com"
    # counted once, not twice, once made rows: a 3-per-week cap leaves 2 slots
    assert _single(log, "s2", "main", "c5", None, T0 + DAY, MAISON) == "reserved"
    assert _single(log, "s3", "main", "c5", None, T0 + 2 * DAY, MAISON) == "reserved"
    assert _single(log, "s4", "main", "c5", None, T0 + 3 * DAY, MAISON) == "suppressed"
    # the same batch again records nothing
    again = log.reserve_batch("main", ids, emails, MAISON, T0, {}, "plan:a", "a:", now_ms=T0)
    assert again["existing"] == 1000 and len(log.list(limit=None)) == 1014


def test_payload_function_test_batches_and_failed_members(tmp_path: Path) -> None:
    log = DeliveryLog.open(tmp_path)
    counts = log.reserve_batch(
        "main",
        ["a", "b"],
        ["a@x.com", None],
        MAISON,
        T0,
        lambda c, e: {"to": e, "subject": f"for {c}"},
        "plan",
        "p:",
        now_ms=T0,
    )
    assert counts["reserved"] == 2
    tests = log.reserve_batch(
        "main", ["a"], ["a@x.com"], MAISON, T0, {}, "plan", "t:", test=True, now_ms=T0
    )
    assert tests["reserved"] == 1  # test sends are never capped ...
    log.materialize_all()
    rows = {d.key: d for d in log.list()}
    assert rows["p:a"].payload == {"to": "a@x.com", "subject": "for a"}
    assert rows["p:b"].email is None and rows["t:a"].test
    # ... nor counted; a failed member stops counting
    d = log.claim(T0, 60_000)
    assert d is not None and d.key == "p:a"
    log.mark_failed(d.id, "550 no such user")
    assert _single(log, "x", "main", "a", None, T0 + HOUR, MAISON) == "reserved"
    assert _single(log, "y", "main", "b", None, T0 + HOUR, MAISON) == "suppressed"
