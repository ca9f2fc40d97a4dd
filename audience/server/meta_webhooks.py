"""The ads platform's leadgen webhook, ``/hooks/meta`` (docs/integrations/meta-leads.md),
public (the platform sends no API token: the signature is the proof):

- ``GET``: the subscription handshake: ``hub.mode=subscribe`` and our verify
  token (the server's ``meta_verify_token``, else AUDIENCE_META_VERIFY_TOKEN)
  answer ``hub.challenge``; anything else 403;
- ``POST``: a notification, accepted only with a valid ``X-Hub-Signature-256``
  (HMAC-SHA256 of the raw body with the app secret of the server's ``graph``
  configuration, else AUDIENCE_META_APP_SECRET, compared in
  constant time); otherwise (or without an app secret) 403 and nothing
  is stored.  Its leads go into the
  inbox (synced, deduplicated on ``leadgen_id``) and the answer is sent; the
  worker fetches and stores them afterwards (in this process for a server in a
  thread, in a child process under ``audience serve``).
"""

from __future__ import annotations

import threading

from flask import Blueprint, Response, current_app, jsonify, request

from audience.integrations.meta.leads.config import LeadSettings, settings
from audience.integrations.meta.leads.inbox import Inbox
from audience.integrations.meta.leads.webhook import (
    SIGNATURE_HEADER,
    BadNotification,
    challenge,
    leads_of,
    signed,
)
from audience.server.context import ServerState, state
from audience.server.contract import Raw, accepts
from audience.server.errors import ApiError

bp = Blueprint("meta_webhooks", __name__)
PATH = "/hooks/meta"
_lock = threading.Lock()
# the raw bytes are what is signed: read and checked by the handler
NOTIFICATION = Raw(
    {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
)


@bp.get(PATH)
def verify() -> Response:
    answer = challenge(request.args, _settings(state()).verify_token)
    # the challenge is echoed as given: plain text that no browser may sniff
    headers = {"X-Content-Type-Options": "nosniff"}
    if answer is None:
        return Response("forbidden\n", 403, mimetype="text/plain", headers=headers)
    return Response(answer, 200, mimetype="text/plain", headers=headers)


@bp.post(PATH)
@accepts(NOTIFICATION)
def notify() -> Response:
    raw = request.get_data(cache=False)
    st = state()
    secret = _settings(st).graph.app_secret
    if not secret:
        # nothing can be verified: refused like a bad signature
        raise ApiError(403, "webhook_not_configured", "no app secret: set AUDIENCE_META_APP_SECRET")
    if not signed(secret, raw, request.headers.get(SIGNATURE_HEADER)):
        raise ApiError(403, "bad_signature", f"missing or wrong {SIGNATURE_HEADER}")
    try:
        rows = leads_of(raw)
    except BadNotification as err:
        raise ApiError(400, "bad_notification", str(err)) from None
    new = _inbox(st).add(rows, "webhook", st.config.clock()) if rows else 0
    if new:
        _wake(st)
    return jsonify({"received": len(rows), "new": new})


def _settings(st: ServerState) -> LeadSettings:
    return settings(st.config.graph, st.config.meta_verify_token)


def _inbox(st: ServerState) -> Inbox:
    ext = current_app.extensions
    with _lock:
        if "audience_lead_inbox" not in ext:
            ext["audience_lead_inbox"] = Inbox(st.config.store)
        inbox: Inbox = ext["audience_lead_inbox"]
    return inbox


def _wake(st: ServerState) -> None:
    """Wake this process's worker (started on first use; ``audience serve``
    runs one in a child process instead)."""
    if not st.config.ingest_thread:
        return
    from audience.integrations.meta.leads.worker import LeadThread, LeadWorker

    ext = current_app.extensions
    with _lock:
        thread = ext.get("audience_lead_worker")
        if thread is None:
            nodes = st.nodes
            worker = LeadWorker.of(
                st.config.store,
                st.config.clock,
                config=st.config.graph,
                store_for=lambda node: nodes.get(node).store,
            )
            thread = ext["audience_lead_worker"] = LeadThread(worker)
            st.closers.append(thread.stop)
    thread.notify()
