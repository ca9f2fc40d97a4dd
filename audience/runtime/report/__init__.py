"""The trend for recipient domains (docs/report.md): per recipient domain and
per period of the send, how many messages were sent and delivered and how they
fared (bounces, opens, clicks, unsubscribes, complaints), with the anomalies
that stand out from a domain's own history and from the other domains."""

from audience.runtime.report.compute import Report, build_report
from audience.runtime.report.params import METRICS, ReportError, ReportParams

__all__ = ["METRICS", "Report", "ReportError", "ReportParams", "build_report"]
