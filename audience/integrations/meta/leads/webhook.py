"""The platform's leadgen webhook, apart from HTTP: the subscription handshake,
the signature, and the notifications' leads.

The signature is ``sha256=`` + hex HMAC-SHA256(app secret, the body's raw
bytes): the platform escapes non-ASCII as ``\\uXXXX``, so a body decoded and
encoded again would not match.  Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"


class BadNotification(ValueError):
    """A signed body that is not a notification; the message says where."""


def challenge(params: Mapping[str, str], verify_token: str | None) -> str | None:
    """The challenge to echo when the handshake's token is ours, else None."""
    if verify_token is None or params.get("hub.mode") != "subscribe":
        return None
    given = params.get("hub.verify_token", "")
    if not hmac.compare_digest(given.encode(), verify_token.encode()):
        return None
    return params.get("hub.challenge")


def sign(app_secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def signed(app_secret: str | None, raw: bytes, header: str | None) -> bool:
    if not app_secret or not header:
        return False
    return hmac.compare_digest(sign(app_secret, raw).encode(), header.strip().encode())


def leads_of(raw: bytes) -> list[tuple[str, str | None, str | None, dict[str, Any], None]]:
    """The leadgen changes of a notification, as inbox rows (other fields and
    objects are ignored: the app may be subscribed to more than leadgen)."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadNotification(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        raise BadNotification("the body has no 'entry' list")
    out: list[tuple[str, str | None, str | None, dict[str, Any], None]] = []
    if body.get("object") != "page":
        return out
    for i, entry in enumerate(body["entry"]):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for j, change in enumerate(changes if isinstance(changes, list) else ()):
            if not isinstance(change, dict) or change.get("field") != "leadgen":
                continue
            value = change.get("value")
            lid = value.get("leadgen_id") if isinstance(value, dict) else None
            if not isinstance(value, dict) or not isinstance(lid, str | int) or not str(lid):
                raise BadNotification(f"entry[{i}].changes[{j}]: no leadgen_id")
            form, page = value.get("form_id"), value.get("page_id") or entry.get("id")
            out.append(
                (
                    str(lid),
                    None if form is None else str(form),
                    None if page is None else str(page),
                    value,
                    None,
                )
            )
    return out
