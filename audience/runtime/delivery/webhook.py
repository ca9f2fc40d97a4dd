"""Webhooks: an HTTP POST of a JSON body, with a timeout and retries with backoff.

A delivery's ``Idempotency-Key`` header is its Message-ID, the same on every
attempt, so a receiver can drop a repeat (see worker.py on resends).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audience.runtime.delivery.smtp import SendError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class WebhookResult:
    status: int
    attempts: int


def post_json(
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    retries: int = 2,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> WebhookResult:
    """POST ``body`` as JSON; retry a timeout, a connection error, 408, 429 or a
    5xx up to ``retries`` times, waiting ``backoff_s * 2**k``; raise SendError
    (permanent for another 4xx or a bad URL) when it does not succeed."""
    if not url.startswith(("http://", "https://")):
        raise SendError(f"webhook URL must be http(s): {url!r}", permanent=True)
    data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    hdrs = {"Content-Type": "application/json", "User-Agent": "audience-webhook/1"}
    hdrs.update(headers or {})
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        req = urllib.request.Request(url, data=data, headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
                return WebhookResult(resp.status, attempt + 1)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} from {url}"
            if exc.code not in RETRY_STATUSES:
                raise SendError(last, permanent=400 <= exc.code < 500) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            last = f"webhook {url}: {getattr(exc, 'reason', exc)}"
    raise SendError(last)
