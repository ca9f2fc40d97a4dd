"""Anomalies: a departure from a domain's own history and from the other
domains, at the domain's volume (audience/runtime/report/anomalies.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.report.anomalies import Anomaly, find_anomalies, wilson_lower
from audience.runtime.report.compute import COUNTS
from audience.runtime.report.params import ReportParams
from audience.runtime.report.periods import periods
from tests.report_support import ms

AS_OF = ms("2026-06-30T12:00:00Z")
PARAMS = ReportParams(as_of_ms=AS_OF, by="week", months=3)
PER = periods("week", 3, AS_OF, "UTC")
P = len(PER)
NAMES = ["gmail.com", "outlook.com", "yahoo.com", "libero.it", "icloud.com"]


def counts(sent: np.ndarray, **rates: np.ndarray | float) -> dict[str, np.ndarray]:
    """Counts for ``sent`` (domains, periods) with the given rates (of sent
    for bounces, of delivered for the others), rounded."""
    out = {c: np.zeros(sent.shape, np.int64) for c in COUNTS}
    out["sent"] = sent.astype(np.int64)
    for c, key in (("hard", "hard"), ("soft", "soft"), ("block", "block")):
        out[c] = np.rint(sent * rates.get(key, 0.0)).astype(np.int64)
    out["delivered"] = out["sent"] - out["hard"] - out["soft"] - out["block"]
    for c in ("opened", "human_opened", "human_clicked", "unsubscribed", "complained"):
        out[c] = np.rint(out["delivered"] * rates.get(c, 0.0)).astype(np.int64)
    return out


def noisy(rng: np.random.Generator, n: np.ndarray, p: np.ndarray | float) -> np.ndarray:
    return rng.binomial(n.astype(np.int64), p) / np.maximum(n, 1)


def flagged(found: list[Anomaly], metric: str, kind: str = "departure") -> set[tuple[str, str]]:
    return {(a.domain, a.level) for a in found if a.metric == metric and a.kind == kind}


def block_jump(volume: int, seed: int = 1) -> list[Anomaly]:
    rng = np.random.default_rng(seed)
    sent = np.full((5, P), volume)
    block = noisy(rng, sent, 0.01)
    block[3, -1] = 0.20  # libero.it starts blocking in the last week
    return find_anomalies(counts(sent, block=block), NAMES, PER, PARAMS)


def test_a_block_rate_jump_at_ten_thousand_sends_is_flagged() -> None:
    found = block_jump(10_000)
    assert flagged(found, "block_rate") == {("libero.it", "alarm")}
    (a,) = [a for a in found if a.metric == "block_rate"]
    assert a.direction == "up" and a.period == PER.labels[-1]
    assert a.z_own is not None and a.z_own > 3 and a.ratio is not None and a.ratio > 10
    assert "block rate 20.0% (2,000 of 10,000 sent)" in a.reason


def test_the_same_jump_at_twenty_sends_is_not() -> None:
    assert flagged(block_jump(20), "block_rate") == set()


def test_an_open_drop_at_one_big_domain_flags_and_a_dip_at_fifty_does_not() -> None:
    rng = np.random.default_rng(7)
    sent = np.tile(np.array([[50_000], [20_000], [10_000], [5_000], [50]]), (1, P))
    opened = noisy(rng, sent, 0.40)
    opened[0, -1] = 0.30  # gmail.com only
    opened[4, -1] = 0.30  # icloud.com, at 50 sends
    found = find_anomalies(counts(sent, opened=opened), NAMES, PER, PARAMS)
    assert flagged(found, "open_rate") == {("gmail.com", "alarm")}
    (a,) = [a for a in found if a.metric == "open_rate"]
    assert a.direction == "down"


def test_a_dip_at_every_domain_flags_none_of_them() -> None:
    rng = np.random.default_rng(3)
    sent = np.tile(np.array([[50_000], [20_000], [10_000], [5_000], [2_000]]), (1, P))
    opened = noisy(rng, sent, 0.40)
    opened[:, -1] = noisy(rng, sent[:, -1], 0.30)  # the content, not a provider
    found = find_anomalies(counts(sent, opened=opened), NAMES, PER, PARAMS)
    assert flagged(found, "open_rate") == set()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 6),
    st.lists(st.integers(0, 100_000), min_size=P, max_size=P),
    st.lists(st.floats(0, 1), min_size=P, max_size=P),
    st.lists(st.floats(0, 0.5), min_size=P, max_size=P),
)
def test_identical_domains_are_never_flagged(
    d: int, volumes: list[int], opens: list[float], blocks: list[float]
) -> None:
    # whatever one history does (jumps included), identical peers explain it
    sent = np.tile(np.array(volumes), (d, 1))
    c = counts(
        sent,
        opened=np.array(opens),
        human_opened=np.array(opens) / 2,
        block=np.array(blocks),
        hard=np.array(blocks) / 3,
        unsubscribed=np.array(blocks) / 10,
    )
    found = find_anomalies(c, [f"d{i}.com" for i in range(d)], PER, PARAMS)
    assert [a for a in found if a.kind == "departure"] == []


def test_complaints_above_the_providers_limit_are_flagged_by_their_lower_bound() -> None:
    sent = np.full((2, P), 10_000)
    complained = np.full((2, P), 0.0005)
    complained[0, -1] = 0.006  # 60 of 10,000: surely above 0.3%
    complained[1, -1] = 0.004  # 40 of 10,000: lower bound below 0.3%, above 0.1%
    found = find_anomalies(counts(sent, complained=complained), NAMES[:2], PER, PARAMS)
    limits = {(a.domain, a.level) for a in found if a.kind == "limit"}
    assert limits == {("gmail.com", "alarm"), ("outlook.com", "warn")}
    assert "0.30%" in next(a.reason for a in found if a.level == "alarm" and a.kind == "limit")


def test_wilson_lower_bound() -> None:
    low = wilson_lower(np.array([0.0, 5, 50]), np.array([0.0, 10, 10_000]))
    assert low[0] == 0
    assert 0.23 < low[1] < 0.24  # the textbook 5 of 10
    assert 0.0037 < low[2] < 0.0038


def _poisson_tail_z(x: int, e: float) -> float:
    """The exact Poisson tail of x given e, as a normal score (the test's
    own: summed term by term)."""
    from math import exp
    from statistics import NormalDist

    terms = [exp(-e)]
    for k in range(1, max(x, 1) + 200):
        terms.append(terms[-1] * e / k)
    if x >= e:
        return -NormalDist().inv_cdf(sum(terms[x:]))
    return NormalDist().inv_cdf(sum(terms[: x + 1]))


@pytest.mark.parametrize(
    ("x", "e"), [(12, 4.5), (13, 4.45), (20, 8.0), (2, 11.0), (0, 6.0), (60, 40.0), (400, 300.0)]
)
def test_the_count_score_follows_the_poisson_tail(x: int, e: float) -> None:
    from audience.runtime.report.anomalies import _count_z

    got = float(_count_z(np.array([float(x)]), np.array([e]))[0])
    assert abs(got - _poisson_tail_z(x, e)) < 0.12


def test_a_dozen_bounces_where_four_were_expected_is_no_alarm() -> None:
    rng = np.random.default_rng(5)
    sent = np.tile(np.array([[450], [20_000], [10_000]]), (1, P))
    hard = noisy(rng, sent, 0.011)
    hard[0, :] = 5 / 450
    hard[0, -1] = 12 / 450  # (12 - 5) / sqrt(5) = 3.1 would say alarm; P = 0.0055
    found = find_anomalies(counts(sent, hard=hard), NAMES[:3], PER, PARAMS)
    assert ("gmail.com", "alarm") not in flagged(found, "hard_bounce_rate")
