"""The tracking endpoints under ``/t/`` (docs/tracking.md), reached from the
links of sent messages, so without a token:

- ``GET /t/c/TOKEN``: 302 to the link as it was in the message, and an
  ``email_clicked`` event; ``HEAD`` redirects too and records the click as a bot's;
- ``GET /t/o/TOKEN``: a 1x1 GIF, and an ``email_opened`` event;
- ``GET /t/u/TOKEN``: a page with a button (records nothing: mail scanners GET links);
- ``POST /t/u/TOKEN`` (RFC 8058 one-click, or the page's button): the address
  goes on the suppression list, and an ``unsubscribed`` event.

A token that does not verify or names nothing the log holds: 404, plain text,
never a redirect, nothing recorded.  The events go into the contact's node
through the ordinary ingest, right after the answer (runtime/tracking/outbox.py),
so triggers and journeys see them.
"""

from __future__ import annotations

import base64
import html

from flask import Blueprint, Response, request

from audience.runtime.tracking.hits import Hit
from audience.server.context import state
from audience.server.contract import Raw, accepts

bp = Blueprint("tracking", __name__)

# the smallest transparent GIF (1x1)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# RFC 8058: what a mail client's one-click sends (the page's button sends the same)
ONE_CLICK = Raw(
    {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"List-Unsubscribe": {"const": "One-Click"}},
                }
            }
        },
    }
)
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _not_found() -> Response:
    return Response("not found\n", 404, mimetype="text/plain", headers=_NO_STORE)


def _ingest(hit: Hit) -> None:
    """The hit's event is in the outbox (committed with the hit): the server's
    ingester puts it into the contact's node now, without making the visitor wait."""
    if hit.event is not None:
        state().hit_recorded()


@bp.route("/t/c/<token>", methods=["GET"])
def click(token: str) -> Response:
    head = request.method == "HEAD"
    hit = state().tracking.click(token, request.headers.get("User-Agent"), head=head)
    if hit is None or hit.link is None:
        return _not_found()
    _ingest(hit)
    resp = Response("", 302, headers={**_NO_STORE, "Location": hit.link.url})
    return resp


@bp.route("/t/o/<token>", methods=["GET"])
def open_pixel(token: str) -> Response:
    hit = state().tracking.open(
        token, request.headers.get("User-Agent"), head=request.method == "HEAD"
    )
    if hit is None:
        return _not_found()
    _ingest(hit)
    return Response(PIXEL, 200, mimetype="image/gif", headers=_NO_STORE)


@bp.get("/t/u/<token>")
def unsubscribe_page(token: str) -> Response:
    d = state().tracking.unsubscribe_page(token)
    if d is None:
        return _not_found()
    return _page(
        "Unsubscribe",
        f"<p>Stop marketing email to {html.escape(_masked(d.email))}?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit" id="unsubscribe">Unsubscribe</button></form>',
    )


@bp.post("/t/u/<token>")
@accepts(ONE_CLICK)
def unsubscribe(token: str) -> Response:
    hit = state().tracking.unsubscribe(token, request.headers.get("User-Agent"))
    if hit is None:
        return _not_found()
    _ingest(hit)
    return _page(
        "Unsubscribed",
        f'<p id="done">{html.escape(_masked(hit.delivery.email))} is unsubscribed: '
        "no more marketing email will be sent to it.</p>",
    )


def _masked(email: str | None) -> str:
    """An address as the page shows it: enough to recognise, not to harvest."""
    if not email or "@" not in email:
        return "this address"
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}***@{domain}"


def _page(title: str, body: str) -> Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
    )
    return Response(text, 200, mimetype="text/html", headers=_NO_STORE)
