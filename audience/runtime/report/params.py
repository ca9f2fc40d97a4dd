"""What a report is asked for, checked once, whoever asks (CLI, HTTP, demo)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from audience.timecalc import UnknownZone, zone


class ReportError(ValueError):
    """A report that cannot be made as asked; the message says which parameter
    and why."""


# name -> (label, kind): "count" metrics are shown as numbers, the others are
# rates whose denominator is sent (bounces) or delivered (the rest).
METRICS: dict[str, tuple[str, str]] = {
    "sent": ("sent", "count"),
    "delivered": ("delivered", "count"),
    "hard_bounce_rate": ("hard bounce rate", "sent"),
    "soft_bounce_rate": ("soft bounce rate", "sent"),
    "block_rate": ("block rate", "sent"),
    "open_rate": ("unique open rate", "delivered"),
    "human_open_rate": ("unique open rate without machine opens", "delivered"),
    "click_rate": ("click rate", "delivered"),
    "unsubscribe_rate": ("unsubscribe rate", "delivered"),
    "complaint_rate": ("complaint rate", "delivered"),
}
# rate -> (numerator count, denominator count)
RATIO: dict[str, tuple[str, str]] = {
    "hard_bounce_rate": ("hard", "sent"),
    "soft_bounce_rate": ("soft", "sent"),
    "block_rate": ("block", "sent"),
    "open_rate": ("opened", "delivered"),
    "human_open_rate": ("human_opened", "delivered"),
    "click_rate": ("human_clicked", "delivered"),
    "unsubscribe_rate": ("unsubscribed", "delivered"),
    "complaint_rate": ("complained", "delivered"),
}
RATES: tuple[str, ...] = tuple(m for m, (_, kind) in METRICS.items() if kind != "count")
PERIODS: tuple[str, ...] = ("day", "week", "month")
SPANS: tuple[int, ...] = (3, 6, 12)
TOPS: tuple[int, ...] = (10, 100)
MAX_DOMAINS = 100
# the report's time: from 1901 (a span reaches a year back) to the end of 9998
# (its last period ends after it, and datetime stops at 9999)
MIN_AS_OF_MS = -2_177_452_800_000  # 1901-01-01
MAX_AS_OF_MS = 253_370_764_800_000  # 9999-01-01


@dataclass(frozen=True)
class ReportParams:
    """``top`` domains by sent volume over the span, or the ``domains`` listed;
    periods of ``by`` in ``tz`` (weeks start on Monday) over ``months`` before
    ``as_of_ms``; only the sends of ``mail_group`` when given."""

    as_of_ms: int
    top: int | None = 10
    domains: tuple[str, ...] = ()
    by: str = "week"
    months: int = 6
    tz: str = "UTC"
    mail_group: str | None = None
    metrics: tuple[str, ...] = field(default=tuple(METRICS))

    def __post_init__(self) -> None:
        if not MIN_AS_OF_MS <= self.as_of_ms < MAX_AS_OF_MS:
            raise ReportError("as_of must fall between the years 1901 and 9998")
        if self.domains and self.top is not None:
            raise ReportError("give either top or domains, not both")
        if not self.domains and self.top not in TOPS:
            raise ReportError(f"top must be one of {', '.join(map(str, TOPS))}, not {self.top}")
        if len(self.domains) > MAX_DOMAINS:
            raise ReportError(f"at most {MAX_DOMAINS} domains, not {len(self.domains)}")
        object.__setattr__(self, "domains", tuple(_domain(d) for d in self.domains))
        if self.by not in PERIODS:
            raise ReportError(f"by must be one of {', '.join(PERIODS)}, not {self.by!r}")
        if self.months not in SPANS:
            raise ReportError(
                f"months must be one of {', '.join(map(str, SPANS))}, not {self.months}"
            )
        try:
            zone(self.tz)
        except UnknownZone as exc:
            raise ReportError(f"tz: {exc}") from None
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ReportError(f"unknown metric {unknown[0]!r}; metrics: {', '.join(METRICS)}")
        if not self.metrics:
            raise ReportError("at least one metric")
        if self.mail_group is not None and not self.mail_group.strip():
            raise ReportError("mail_group must not be empty")


def _domain(text: str) -> str:
    """A domain as recipients' addresses are compared: trimmed, lower case,
    IDNA (an internationalized name written in Unicode matches its A-label)."""
    d = text.strip().lower().lstrip("@")
    if not d or "@" in d or any(c.isspace() for c in d) or len(d) > 253:
        raise ReportError(f"{text!r} is not a domain")
    try:
        return d.encode("idna").decode("ascii")
    except UnicodeError:
        raise ReportError(f"{text!r} is not a domain") from None


def parse_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """Metric names given as repeated options or comma-separated lists."""
    out = [n.strip() for text in names for n in text.split(",") if n.strip()]
    return tuple(dict.fromkeys(out)) if out else tuple(METRICS)
