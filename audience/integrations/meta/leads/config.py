"""The Meta settings lead forms read (the same variables as ``audience integrations``),
so the server, the worker process and the CLI agree."""

from __future__ import annotations

import os
from dataclasses import dataclass

from audience.integrations.meta.graph import GraphConfig, graph_config_from_env


@dataclass(frozen=True)
class LeadSettings:
    graph: GraphConfig
    verify_token: str | None  # the webhook subscription's verify token
    # the app secret signs the webhook's notifications (graph.app_secret)


def graph_config() -> GraphConfig:
    # a worker should not sleep minutes inside one lead: it retries the lead later
    return graph_config_from_env(max_retries=3, max_backoff_s=60.0)


def settings(graph: GraphConfig | None = None, verify_token: str | None = None) -> LeadSettings:
    """The given settings (a server's configuration), else AUDIENCE_META_*."""
    return LeadSettings(
        graph or graph_config(),
        verify_token or os.environ.get("AUDIENCE_META_VERIFY_TOKEN") or None,
    )
