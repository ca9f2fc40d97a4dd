"""The thin Flask API over the runtime: ``create_app(config)`` (app.py), served
by waitress (serve.py, ``audience serve``)."""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the CLI imports audience.server.auth without Flask.
    if name == "create_app":
        from audience.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from audience.server.context import ServerConfig

        return ServerConfig
    raise AttributeError(f"module 'audience.server' has no attribute {name!r}")
