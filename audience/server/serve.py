"""Running the API on waitress (a production WSGI server with a thread pool).

``serve`` blocks (``audience serve``); ``ServerThread`` runs the same server
in a background thread on a free loopback port, for tests and benchmarks.
Waitress enforces the app's body cap itself (an oversized body is refused
before it is read) and answers its own refusals in the API's JSON shape.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import Flask
from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from audience.server.app import create_app
from audience.server.context import ServerConfig
from audience.server.errors import HTTP_CODES

log = logging.getLogger("audience.server")
SLACK = 1024 * 1024


def _waitress_options(app: Flask, threads: int) -> dict[str, Any]:
    return {
        "threads": threads,
        # A body a little over the app's cap is read and refused by the app
        # (clients still sending get their 413 cleanly); a body far over it is
        # refused by waitress from its Content-Length (or as its chunks pass
        # this cap) before it is read.  Both answer JSON.
        "max_request_body_size": int(app.config["MAX_CONTENT_LENGTH"]) + SLACK,
        "ident": "audience",
        "clear_untrusted_proxy_headers": True,
    }


class _JsonErrorTask(ErrorTask):
    """Waitress's own refusals (malformed HTTP, body or headers too large) as
    the API's JSON errors instead of text/plain."""

    def execute(self) -> None:
        e = self.request.error
        code = HTTP_CODES.get(e.code, f"http_{e.code}")
        error = {"code": code, "message": f"{e.reason}: {e.body}", "help": None}
        body = json.dumps({"error": error}).encode()
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


def _create(app: Flask, host: str, port: int, threads: int) -> Any:
    server: Any = create_server(app, host=host, port=port, **_waitress_options(app, threads))
    # one listening socket: the server itself; several (a name with IPv4 and
    # IPv6 addresses): a MultiSocketServer whose map holds them
    listeners = [server] if isinstance(server, BaseWSGIServer) else list(server.map.values())
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = _JsonChannel
    return server


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.name == "audience.server.access":
            return msg  # already a JSON object
        out = {"level": record.levelname.lower(), "logger": record.name, "message": msg}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the server's loggers (access log included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    for name in ("audience.server", "waitress"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def serve(
    store: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    config: ServerConfig | None = None,
) -> None:
    """Serve the store until interrupted; a child process ingests the events
    of tracking hits (runtime/tracking/outbox.py)."""
    cfg = replace(config or ServerConfig(Path(store)), ingest_thread=False)
    app = create_app(cfg)
    # What is alive now lives as long as the server: kept out of the garbage
    # collector's full passes, which walked it all (tens of ms, a p99 spike
    # on every answer in flight) several times a second under load.
    gc.collect()
    gc.freeze()
    # the tracking events' ingester, and the worker storing webhook leads
    children = [
        _start_child("audience.runtime.tracking.outbox", cfg.store),
        _start_child("audience.integrations.meta.leads.worker", cfg.store),
    ]
    try:
        _run(app, store, host, port, threads)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
        app.extensions["audience"].close()  # a local cluster started for the server, with it


def _start_child(module: str, store: Path) -> subprocess.Popen[bytes]:
    import audience

    here = str(Path(audience.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", module, str(store)]
    cmd += ["--parent", str(os.getpid())]
    return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": path})


def _run(app: Flask, store: str | Path, host: str, port: int, threads: int) -> None:
    server = _create(app, host, port, threads)
    log.info(
        "serving %s on http://%s:%s with %d threads",
        store,
        server.effective_host,
        server.effective_port,
        threads,
    )
    server.run()


class ServerThread:
    """The real server in a daemon thread: ``start()``, then ``url``; ``stop()``."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        self.app = app
        self._server: Any = _create(app, host, port, threads)
        self.host = str(self._server.effective_host)
        self.port = int(self._server.effective_port)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="waitress")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        server = self._server
        # waitress's own run() loops until its map is empty; poll in short
        # rounds instead so that stop() can end the loop from this thread
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        with self._lock:  # stop() must not pull a trigger closed here
            self._closed = True
            for channel in list(server._map.values()):
                channel.close()
        server.task_dispatcher.shutdown()

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping.set()
            if not self._closed and self._thread.is_alive():
                self._server.pull_trigger()  # wake the loop now
        self._thread.join(timeout)
        state = self.app.extensions.get("audience")
        if state is not None:
            state.close()  # the tracking ingester's thread and log

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
