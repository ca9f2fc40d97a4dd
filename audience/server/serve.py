"""Running the API on waitress (a production WSGI server with a thread pool).

``serve`` blocks (``audience serve``); ``ServerThread`` runs the same server
in a background thread on a free loopback port, for tests and benchmarks.
Waitress's own body cap sits above the app's, so an oversized body reaches
the app and gets the JSON 413 rather than waitress's plain-text one.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from waitress import create_server, wasyncore

from audience.server.app import create_app
from audience.server.context import ServerConfig

log = logging.getLogger("audience.server")


def _waitress_options(app: Flask, threads: int) -> dict[str, Any]:
    limit = int(app.config["MAX_CONTENT_LENGTH"])
    return {
        "threads": threads,
        "max_request_body_size": limit + 1024 * 1024,
        "ident": "audience",
        "clear_untrusted_proxy_headers": True,
    }


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
    """Serve the store until interrupted."""
    app = create_app(config or ServerConfig(Path(store)))
    server = create_server(app, host=host, port=port, **_waitress_options(app, threads))
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
        self._server: Any = create_server(
            app, host=host, port=port, **_waitress_options(app, threads)
        )
        self.host = str(self._server.effective_host)
        self.port = int(self._server.effective_port)
        self._stopping = threading.Event()
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
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown()

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._server.pull_trigger()
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
