"""Signed tokens of the tracking links: ``itsdangerous`` HMAC signatures over
(delivery id, link index), one salt per kind, so a click token is no open
token and a token of another store (another secret) is nobody's."""

from __future__ import annotations

from typing import Literal

from itsdangerous import BadData, URLSafeSerializer

# click, open, unsubscribe: the /t/KIND/ of the URL; b: a VERP return path (bounces)
Kind = Literal["c", "o", "u", "b"]
_SALTS: dict[str, str] = {
    "c": "audience.tracking.click",
    "o": "audience.tracking.open",
    "u": "audience.tracking.unsubscribe",
    "b": "audience.tracking.bounce",
}


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._by_kind = {k: URLSafeSerializer(secret, salt=s) for k, s in _SALTS.items()}

    def sign(self, kind: Kind, delivery_id: int, link_index: int | None = None) -> str:
        body = [delivery_id] if link_index is None else [delivery_id, link_index]
        return str(self._by_kind[kind].dumps(body))

    def read(self, kind: str, token: str) -> tuple[int, int | None] | None:
        """(delivery id, link index or None) of a valid token; None for anything
        forged, altered, truncated or of another kind."""
        serializer = self._by_kind.get(kind)
        if serializer is None or len(token) > 512:
            return None
        try:
            body = serializer.loads(token)
        except BadData:
            return None
        if not isinstance(body, list) or not all(type(v) is int for v in body):
            return None
        if kind == "c" and len(body) == 2:
            return body[0], body[1]
        if kind != "c" and len(body) == 1:
            return body[0], None
        return None
