"""The server's configuration and state, and the per-request authorization.

Every endpoint but ``/healthz`` and ``/openapi.json`` is wrapped in ``requires(scope)``: it reads
``Authorization: Bearer <token>``, finds the live source (401 otherwise),
checks its scope (403) and binds the request to the source's node, so a
handler only ever sees that node's store.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from audience.integrations.meta.graph import GraphConfig
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import wall_ms
from audience.runtime.store import StoreError
from audience.runtime.tracking.hits import Tracking
from audience.runtime.tracking.outbox import Ingester
from audience.server.auth import Source, Sources
from audience.server.errors import ApiError
from audience.server.nodes import NodeRuntime, Nodes

DEFAULT_MAX_BODY = 32 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    store: Path
    max_content_length: int = DEFAULT_MAX_BODY
    default_limit: int = 1000
    max_limit: int = 100_000
    audience_cache: int = 32  # audiences kept per node for cursors
    # epoch ms of "now" for the tracking endpoints (tests inject their own clock)
    clock: Callable[[], int] = wall_ms
    # a thread of this process ingests the tracking events; False: another
    # process does (``serve`` starts one)
    ingest_thread: bool = True
    # the Graph API (Meta integrations); None: from AUDIENCE_META_*, without retries
    graph: GraphConfig | None = None
    # the leadgen webhook's verify token; None: AUDIENCE_META_VERIFY_TOKEN
    meta_verify_token: str | None = None
    # sharded nodes evaluated on a Dask cluster (audience.dist): "local" (worker
    # processes started with the server), a scheduler address or a Client;
    # None: in this process
    cluster: Any = None
    cluster_workers: int | None = None  # the processes of a local cluster

    @classmethod
    def of(cls, config: ServerConfig | dict[str, Any] | str | Path) -> ServerConfig:
        if isinstance(config, ServerConfig):
            return config
        if isinstance(config, str | Path):
            return cls(Path(config))
        data = dict(config)
        data["store"] = Path(data["store"])
        return cls(**data)


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._client, self._local = _connect(config)
        self.nodes = Nodes(config.store, config.audience_cache, self._client)
        self.sources = Sources(config.store)
        self._tracking: tuple[Tracking, Ingester | None] | None = None
        self._lock = threading.Lock()
        self.closers: list[Callable[[], None]] = []  # background work to stop on close

    def start_tracking(self) -> tuple[Tracking, Ingester | None]:
        """The store's tracking hits and the thread that ingests their events
        (started here: it first ingests what an earlier server left)."""
        with self._lock:
            if self._tracking is None:
                log = DeliveryLog.open(self.config.store)
                ingester = None
                if self.config.ingest_thread:
                    ingester = Ingester(log, lambda node: self.nodes.get(node).store)
                    ingester.notify()
                self._tracking = (Tracking(self.config.store, log, self.config.clock), ingester)
            return self._tracking

    @property
    def tracking(self) -> Tracking:
        return self.start_tracking()[0]

    def hit_recorded(self) -> None:
        """A hit's event is in the outbox: ingest it now."""
        ingester = self.start_tracking()[1]
        if ingester is not None:
            ingester.notify()

    def close(self) -> None:
        for stop in self.closers:
            stop()
        if self._client is not None and self._client is not self.config.cluster:
            self._client.close()  # ours, not the caller's
        if self._local is not None:
            self._local.close()
        self._client = self._local = None
        with self._lock:
            if self._tracking is not None:
                if self._tracking[1] is not None:
                    self._tracking[1].stop()
                self._tracking[0].log.close()
                self._tracking = None


def _connect(config: ServerConfig) -> tuple[Any, Any]:
    """The cluster's client and the local cluster started for it (None, None
    without one); raises ``ClusterError``."""
    if config.cluster is None:
        return None, None
    from audience.dist import LocalOptions, connect

    return connect(config.cluster, LocalOptions(workers=config.cluster_workers))


def state() -> ServerState:
    return cast(ServerState, current_app.extensions["audience"])


def current_source() -> Source:
    return cast(Source, g.source)


def current_node() -> NodeRuntime:
    return cast(NodeRuntime, g.node)


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="audience"'}

F = TypeVar("F", bound=Callable[..., Any])


def authorize(scope: str) -> None:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing bearer token",
            "send 'Authorization: Bearer <token>'; create a token with 'audience sources create'",
            headers=_UNAUTHORIZED,
        )
    source = state().sources.authenticate(token.strip())
    if source is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token", None, headers=_UNAUTHORIZED)
    g.source = source
    if not source.can(scope):
        raise ApiError(
            403,
            "forbidden",
            f"source {source.name!r} has {source.scope} access; this needs {scope}",
        )
    try:
        g.node = state().nodes.get(source.node)
    except StoreError as exc:
        raise ApiError(503, "node_unavailable", str(exc)) from None


def requires(scope: str) -> Callable[[F], F]:
    def wrap(view: F) -> F:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            authorize(scope)
            return view(*args, **kwargs)

        return cast(F, inner)

    return wrap
