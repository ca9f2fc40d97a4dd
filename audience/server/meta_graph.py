"""What every Meta endpoint shares (server/integrations.py, meta_syncs.py,
meta_leads.py): the Graph API a request calls, and the platform's errors as
API errors with the same codes everywhere."""

from __future__ import annotations

from dataclasses import replace

from audience.integrations.meta.graph import (
    GraphConfig,
    GraphError,
    RateLimited,
    graph_config_from_env,
)
from audience.server.context import state
from audience.server.errors import ApiError


def request_graph() -> GraphConfig:
    """The server's ``graph`` configuration, else AUDIENCE_META_* without retries:
    a request never waits out the platform's back-off, the client asks again."""
    return state().config.graph or replace(graph_config_from_env(), max_retries=0)


def graph_refused(err: GraphError) -> ApiError:
    """503 ``graph_rate_limited`` (with Retry-After) when the platform throttles; 502
    ``graph_unavailable`` when it does not answer (or answers a transient error),
    ``graph_error`` with its ``graph_code`` for any other of its errors."""
    if isinstance(err, RateLimited):
        return ApiError(
            503, "graph_rate_limited", str(err), "try again later", headers={"Retry-After": "60"}
        )
    if err.code == 0 or err.transient:
        return ApiError(502, "graph_unavailable", str(err), graph_code=err.code)
    return ApiError(502, "graph_error", str(err), graph_code=err.code)
