"""A stateful stand-in for the Graph API on loopback, for the demo and the tests.

``server.py`` holds the HTTP server, tokens, faults and paging; each further
part of the protocol lives in its own module and registers its routes on a
``FakeGraph`` with ``FakeGraph.route``.
"""

from audience.integrations.meta.fake.server import (
    APP_ID,
    APP_SECRET,
    VERSION,
    Call,
    Fail,
    FakeGraph,
    Token,
    running,
)

__all__ = ["APP_ID", "APP_SECRET", "VERSION", "Call", "Fail", "FakeGraph", "Token", "running"]
