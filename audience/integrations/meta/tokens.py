"""Connected ads accounts and their access tokens, in STORE/integrations.sqlite
(beside the definitions; file mode 0600 because it holds live tokens).

A token is never shown back whole (``mask``).  Its status is read from the
stored facts and the injected clock: ``inactive`` when the platform refused it
(error 190, or ``debug_token`` says invalid) or it has expired, ``expiring``
within 7 days of its expiry, else ``active``.  The expiry is the earlier of the
token's own ``expires_at`` and its data-access expiry (90 days after the user
last consented): past either, calls fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from audience.integrations.meta.graph import (
    GraphClient,
    GraphConfig,
    TokenInvalid,
)
from audience.runtime.plans.clock import Clock
from audience.runtime.store.errors import StoreError
from audience.runtime.triggers.definitions import check_name

INTEGRATIONS_FILE = "integrations.sqlite"
DAY_MS = 86_400_000
EXPIRING_WITHIN_MS = 7 * DAY_MS

ACTIVE = "active"
EXPIRING = "expiring"
INACTIVE = "inactive"

_ACCOUNT = re.compile(r"(?:act_)?(\d{1,20})")
T = TypeVar("T")


class IntegrationError(ValueError):
    """Bad input or a refused token: nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def mask(token: str) -> str:
    """Enough to tell two tokens apart, never enough to use one."""
    if len(token) <= 12:
        return "…" + token[-2:]
    return f"{token[:4]}…{token[-4:]}"


@dataclass(frozen=True)
class Integration:
    name: str
    account_id: str  # digits, without ``act_``
    masked_token: str
    refused: str | None  # why the platform refused the token, when it did
    expires_ms: int | None  # token expiry; None = never
    data_access_expires_ms: int | None
    scopes: tuple[str, ...]
    user_id: str | None
    connected_ms: int
    checked_ms: int
    # where its reminders are posted (None: the store's reminder webhook, if any)
    reminder_url: str | None = None
    # tells this token from the next one without revealing it (reminder keys)
    token_id: str = ""

    @property
    def ends_ms(self) -> int | None:
        """When calls start failing: the earlier of the two expiries."""
        ends = [t for t in (self.expires_ms, self.data_access_expires_ms) if t]
        return min(ends) if ends else None

    def status(self, now_ms: int) -> str:
        ends = self.ends_ms
        if self.refused is not None or (ends is not None and ends <= now_ms):
            return INACTIVE
        if ends is not None and ends - now_ms <= EXPIRING_WITHIN_MS:
            return EXPIRING
        return ACTIVE


@dataclass(frozen=True)
class Reminder:
    name: str
    status: str
    ends_ms: int | None
    days_left: int | None  # whole days until it ends; None when inactive without an end
    message: str


_SCHEMA = (
    "create table if not exists integrations (name text primary key, platform text not null, "
    "account_id text not null, token text not null, refused text, expires_ms integer, "
    "data_access_expires_ms integer, scopes text not null, user_id text, "
    "connected_ms integer not null, checked_ms integer not null, reminder_url text)"
)
_COLUMNS = (
    "name, account_id, token, refused, expires_ms, data_access_expires_ms, scopes, user_id, "
    "connected_ms, checked_ms, reminder_url"
)


@dataclass(frozen=True)
class _TokenFacts:
    expires_ms: int | None
    data_access_expires_ms: int | None
    scopes: tuple[str, ...]
    user_id: str | None


class Integrations:
    """The store's Meta integrations.  ``sleep`` goes to the Graph client (tests)."""

    def __init__(
        self,
        store_root: Path | str,
        config: GraphConfig,
        clock: Clock,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.path = Path(store_root) / INTEGRATIONS_FILE
        self.config = config
        self.clock = clock
        self._sleep = sleep
        # made 0600 before SQLite opens it: the tokens are never readable by others
        # (O_EXCL: when two processes race, the loser finds the winner's file)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with self._db() as db:
            db.execute(_SCHEMA)
            # a file made before reminder webhooks existed gains the column
            cols = {r[1] for r in db.execute("pragma table_info(integrations)")}
            if "reminder_url" not in cols:
                db.execute("alter table integrations add column reminder_url text")

    # ---- reading ------------------------------------------------------------
    def all(self) -> list[Integration]:
        with self._db() as db:
            rows = db.execute(f"select {_COLUMNS} from integrations order by name").fetchall()
        return [_integration(r) for r in rows]

    def get(self, name: str) -> Integration:
        return _integration(self._row(name))

    def client(self, name: str) -> GraphClient:
        """A Graph client calling as this integration's token."""
        return self._client(self._row(name)[2])

    def call(self, name: str, fn: Callable[[GraphClient], T]) -> T:
        """``fn(client)``; a refused token (190) marks the integration inactive."""
        try:
            return fn(self.client(name))
        except TokenInvalid as err:
            self.mark_inactive(name, _refusal(err.subcode, err.message))
            raise

    def reminders(self, within_ms: int = EXPIRING_WITHIN_MS) -> list[Reminder]:
        """Integrations that end within ``within_ms`` or have ended (soonest first)."""
        now = self.clock()
        out = []
        for i in self.all():
            status, ends = i.status(now), i.ends_ms
            if status == ACTIVE and (ends is None or ends - now > within_ms):
                continue
            days = None if ends is None else max(0, (ends - now) // DAY_MS)
            if status == INACTIVE:
                why = i.refused or "its token expired"
                msg = f"integration {i.name!r} is inactive ({why}): re-authorize it"
            else:
                msg = f"integration {i.name!r} expires in {days} day(s): re-authorize it"
            out.append(Reminder(i.name, status, ends, days, msg))
        return sorted(out, key=lambda r: (r.ends_ms is not None, r.ends_ms or 0, r.name))

    # ---- changing -----------------------------------------------------------
    def connect(
        self, name: str, account_id: str, token: str, reminder_url: str | None = None
    ) -> Integration:
        """Save an ads account with a token the platform says is valid."""
        try:
            name = check_name(name, "integration")
        except StoreError as err:
            raise IntegrationError("bad_name", str(err)) from err
        if "/" in name:  # the name is a path segment of /v1/integrations/{name}
            raise IntegrationError("bad_name", f"bad integration name {name!r}: no '/'")
        account = _account(account_id)
        token = _token(token)
        url = check_url(reminder_url)
        with self._db() as db:
            if db.execute("select 1 from integrations where name = ?", (name,)).fetchone():
                raise IntegrationError(
                    "integration_exists",
                    f"integration {name!r} already exists: re-authorize it to change its token",
                )
        facts = self._debug(token)
        now = self.clock()
        with self._db() as db:
            db.execute(
                f"insert into integrations (platform, {_COLUMNS}) "
                "values ('meta', ?, ?, ?, null, ?, ?, ?, ?, ?, ?, ?)",
                (name, account, token, *_fact_values(facts), now, now, url),
            )
        return self.get(name)

    def check(self, name: str) -> Integration:
        """Ask the platform (``debug_token``) and record what it says."""
        token = self._row(name)[2]
        try:
            facts = self._debug(token)
        except IntegrationError as err:
            self.mark_inactive(name, str(err))
            return self.get(name)
        with self._db() as db:
            db.execute(
                "update integrations set refused = null, expires_ms = ?, "
                "data_access_expires_ms = ?, scopes = ?, user_id = ?, checked_ms = ? "
                "where name = ?",
                (*_fact_values(facts), self.clock(), name),
            )
        return self.get(name)

    def set_reminder_url(self, name: str, url: str | None) -> Integration:
        """Post NAME's reminders to ``url`` (None: to the store's reminder webhook)."""
        clean = check_url(url)
        self._row(name)
        with self._db() as db:
            db.execute("update integrations set reminder_url = ? where name = ?", (clean, name))
        return self.get(name)

    def delete(self, name: str) -> None:
        """Forget NAME and its token (the platform's side is left as it is)."""
        self._row(name)
        with self._db() as db:
            db.execute("delete from integrations where name = ?", (name,))

    def mark_inactive(self, name: str, reason: str) -> Integration:
        with self._db() as db:
            db.execute(
                "update integrations set refused = ?, checked_ms = ? where name = ?",
                (reason, self.clock(), name),
            )
        return self.get(name)

    def reauthorize(self, name: str, token: str) -> Integration:
        """Replace the token; a short-lived one is exchanged for a long-lived one
        when the app's id and secret are configured."""
        self._row(name)
        token = _token(token)
        if self.config.app_id and self.config.app_secret:
            try:
                answer = self._client(None).get(
                    "oauth/access_token",
                    {
                        "grant_type": "fb_exchange_token",
                        "client_id": self.config.app_id,
                        "client_secret": self.config.app_secret,
                        "fb_exchange_token": token,
                    },
                )
            except TokenInvalid as err:
                raise IntegrationError(
                    "token_refused",
                    "the new token cannot be exchanged: " + _refusal(err.subcode, err.message),
                ) from err
            token = _token(str(answer.get("access_token", "")))
        facts = self._debug(token)
        with self._db() as db:
            db.execute(
                "update integrations set token = ?, refused = null, expires_ms = ?, "
                "data_access_expires_ms = ?, scopes = ?, user_id = ?, checked_ms = ? "
                "where name = ?",
                (token, *_fact_values(facts), self.clock(), name),
            )
        return self.get(name)

    # ---- helpers ------------------------------------------------------------
    def _client(self, token: str | None) -> GraphClient:
        if self._sleep is None:
            return GraphClient(self.config, token)
        return GraphClient(self.config, token, sleep=self._sleep)

    def _debug(self, token: str) -> _TokenFacts:
        # the app token when configured; else a token may inspect itself
        as_token = self.config.app_token or token
        try:
            data = self._client(None).get(
                "debug_token", {"input_token": token, "access_token": as_token}
            )["data"]
        except TokenInvalid as err:
            raise IntegrationError("token_refused", _refusal(err.subcode, err.message)) from err
        if not data.get("is_valid"):
            why = (data.get("error") or {}).get("message") or "the platform says it is not valid"
            raise IntegrationError("token_refused", f"token refused: {why}")
        if self.config.app_id and str(data.get("app_id")) != self.config.app_id:
            raise IntegrationError("token_refused", "token refused: it belongs to another app")
        return _TokenFacts(
            _ms(data.get("expires_at")),
            _ms(data.get("data_access_expires_at")),
            tuple(str(s) for s in data.get("scopes") or ()),
            str(data["user_id"]) if data.get("user_id") is not None else None,
        )

    def _row(self, name: str) -> tuple[Any, ...]:
        with self._db() as db:
            row = db.execute(
                f"select {_COLUMNS} from integrations where name = ?", (name,)
            ).fetchone()
        if row is None:
            raise IntegrationError("no_integration", f"no integration named {name!r}")
        return tuple(row)

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A transaction on the integrations file (reminders.py keeps its settings there)."""
        return self._db()

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()


def _integration(row: tuple[Any, ...]) -> Integration:
    name, account, token, refused, exp, dexp, scopes, user, connected, checked, url = row
    return Integration(
        name,
        account,
        mask(token),
        refused,
        exp,
        dexp,
        tuple(json.loads(scopes)),
        user,
        connected,
        checked,
        url,
        hashlib.sha256(token.encode()).hexdigest()[:16],
    )


def _fact_values(f: _TokenFacts) -> tuple[object, ...]:
    return (f.expires_ms, f.data_access_expires_ms, json.dumps(list(f.scopes)), f.user_id)


def _ms(unix_s: object) -> int | None:
    # 0 (or absent) means "never"
    return int(unix_s) * 1000 if isinstance(unix_s, int) and unix_s > 0 else None


def _account(account_id: str) -> str:
    m = _ACCOUNT.fullmatch(account_id.strip())
    if m is None:
        raise IntegrationError(
            "bad_account", f"bad ads account id {account_id!r}: digits, optionally after act_"
        )
    return m.group(1)


def _token(token: str) -> str:
    clean = token.strip()
    if not clean or any(c.isspace() or ord(c) < 32 for c in clean):
        raise IntegrationError("bad_token", "bad access token: empty or containing spaces")
    return clean


def integration_json(i: Integration, now_ms: int) -> dict[str, Any]:
    """An integration as the CLI and the API show it (the token masked)."""
    from audience.timecalc import iso_utc

    def iso(ms: int | None) -> str | None:
        return None if ms is None else iso_utc(ms, "seconds")

    return {
        "name": i.name,
        "platform": "meta",
        "account_id": i.account_id,
        "token": i.masked_token,
        "status": i.status(now_ms),
        "ends": iso(i.ends_ms),
        "expires": iso(i.expires_ms),
        "data_access_expires": iso(i.data_access_expires_ms),
        "refused": i.refused,
        "scopes": list(i.scopes),
        "user_id": i.user_id,
        "connected": iso(i.connected_ms),
        "checked": iso(i.checked_ms),
        "reminder_url": i.reminder_url,
    }


MAX_URL = 2000


def check_url(url: str | None) -> str | None:
    """A reminder webhook URL: http(s) with a host; None or blank clears it."""
    if url is None or not url.strip():
        return None
    clean = url.strip()
    try:
        parts = urlsplit(clean)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed [IPv6 literal
        ok = False
    if not ok or len(clean) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in clean):
        raise IntegrationError(
            "bad_url", f"bad webhook URL {url!r}: http(s)://host/..., at most {MAX_URL} characters"
        )
    return clean


def _refusal(subcode: int | None, message: str) -> str:
    return f"refused by the platform (190/{subcode}): {message}"
