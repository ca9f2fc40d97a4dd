"""The Meta settings lead forms read from the environment (the same variables as
``audience integrations``), so the server, the worker process and the CLI agree."""

from __future__ import annotations

import os
from dataclasses import dataclass

from audience.integrations.meta.graph import DEFAULT_BASE_URL, DEFAULT_VERSION, GraphConfig


@dataclass(frozen=True)
class LeadSettings:
    graph: GraphConfig
    verify_token: str | None  # the webhook subscription's verify token
    # the app secret signs the webhook's notifications (graph.app_secret)


def graph_config() -> GraphConfig:
    env = os.environ.get
    return GraphConfig(
        base_url=env("AUDIENCE_META_GRAPH_URL") or DEFAULT_BASE_URL,
        version=env("AUDIENCE_META_GRAPH_VERSION") or DEFAULT_VERSION,
        app_id=env("AUDIENCE_META_APP_ID") or None,
        app_secret=env("AUDIENCE_META_APP_SECRET") or None,
        # a worker should not sleep minutes inside one lead: it retries the lead later
        max_retries=int(env("AUDIENCE_META_MAX_RETRIES") or 3),
        backoff_s=float(env("AUDIENCE_META_BACKOFF_S") or 1.0),
        max_backoff_s=60.0,
    )


def settings() -> LeadSettings:
    return LeadSettings(graph_config(), os.environ.get("AUDIENCE_META_VERIFY_TOKEN") or None)
