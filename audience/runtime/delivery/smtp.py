"""Sending email with the standard library's smtplib.

Configuration: STORE/smtp.toml (a ``[smtp]`` table or top-level keys: host,
port, user, password, starttls, ssl, from, timeout), overridden by the
environment: AUDIENCE_SMTP_HOST, _PORT, _USER, _PASSWORD, _STARTTLS, _FROM.
With neither, no server is configured: the worker sends no email and says so
(it does not guess a server on localhost).
"""

from __future__ import annotations

import os
import smtplib
import ssl as ssl_mod
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from audience.runtime.delivery.model import Delivery

CONFIG_FILE = "smtp.toml"


class SendError(Exception):
    """A failed attempt; ``permanent`` ones are not retried (a 5xx reply, a bad address).
    ``reply``: the receiving server's refusal of the message (code, text), at
    MAIL, RCPT or DATA; None for anything else (no connection, a login)."""

    def __init__(
        self, message: str, *, permanent: bool = False, reply: tuple[int, str] | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.reply = reply


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False  # SMTPS (implicit TLS, usually port 465)
    from_addr: str = "audience@localhost"
    timeout: float = 30.0
    # where the settings came from, for messages; "" when nowhere (``load`` found
    # no file and no variable): then no server is configured and nothing is sent
    origin: str = "the caller"

    @property
    def configured(self) -> bool:
        return bool(self.origin)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def load(cls, store_root: Path | str | None, env: dict[str, str] | None = None) -> SmtpConfig:
        cfg = cls()
        origins: list[str] = []
        if store_root is not None:
            path = Path(store_root) / CONFIG_FILE
            if path.is_file():
                try:
                    data = tomllib.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                    raise SmtpConfigError(f"{path}: {exc}") from None
                data = data.get("smtp", data)
                cfg = cfg._with(data, str(path))
                origins.append(str(path))
        env = dict(os.environ) if env is None else env
        from_env = {
            k[len(ENV_PREFIX) :].lower(): v
            for k, v in env.items()
            if k.startswith(ENV_PREFIX) and v != ""
        }
        cfg = cfg._with(from_env, ENV_PREFIX + "*")
        known = sorted(ENV_PREFIX + k.upper() for k in from_env if k in _FIELDS)
        if known:
            origins.append(", ".join(known))
        return replace(cfg, origin=" and ".join(origins))

    def _with(self, data: dict[str, Any], where: str) -> SmtpConfig:
        """A copy with the known settings of ``data`` (unknown keys are ignored)."""
        changes = {}
        for k, v in data.items():
            if k in _FIELDS:
                try:
                    changes[_FIELDS[k][0]] = _FIELDS[k][1](v)
                except (TypeError, ValueError):
                    raise SmtpConfigError(f"{where}: bad {k} {v!r}") from None
        return replace(self, **changes)


class SmtpConfigError(Exception):
    """SMTP settings that cannot be read or are missing; the message says where
    and how to fix them."""


ENV_PREFIX = "AUDIENCE_SMTP_"
HOW_TO_CONFIGURE = (
    "Write the SMTP server's settings into {file}:\n"
    "  [smtp]\n"
    '  host = "smtp.example.com"\n'
    "  port = 587\n"
    "  starttls = true\n"
    '  user = "..."\n'
    '  password = "..."\n'
    '  from = "Shop <news@shop.example>"\n'
    "or set them in the environment: AUDIENCE_SMTP_HOST, AUDIENCE_SMTP_PORT, AUDIENCE_SMTP_USER, "
    "AUDIENCE_SMTP_PASSWORD, AUDIENCE_SMTP_STARTTLS, AUDIENCE_SMTP_FROM."
)


def not_configured_message(store_root: Path | str | None) -> str:
    """Why no email can leave, and where to say which server to use."""
    file = Path(store_root) / CONFIG_FILE if store_root is not None else f"STORE/{CONFIG_FILE}"
    return "no SMTP server is configured, so no email was sent.\n" + HOW_TO_CONFIGURE.format(
        file=file
    )


# setting name (config file or AUDIENCE_SMTP_*) -> (field, conversion)
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "host": ("host", str),
    "port": ("port", int),
    "user": ("user", str),
    "password": ("password", str),
    "starttls": ("starttls", lambda v: _flag(v)),
    "ssl": ("ssl", lambda v: _flag(v)),
    "from": ("from_addr", str),
    "timeout": ("timeout", float),
}


def build_message(
    d: Delivery, cfg: SmtpConfig, headers: dict[str, str] | None = None
) -> EmailMessage:
    """The message of a send_email delivery: payload to/subject/text/html/from/
    reply_to, and ``headers`` (tracking's List-Unsubscribe); the Message-ID is
    the delivery's own (stable across attempts).  A message that cannot be
    built is a permanent SendError (never retried)."""
    p = d.payload
    to = p.get("to") or d.email
    if not to:
        raise SendError("no recipient address", permanent=True)
    try:
        msg = _message(d, p, str(to), cfg)
        for name, value in (headers or {}).items():
            msg[name] = value
        return msg
    except (ValueError, TypeError) as exc:
        raise SendError(f"the message cannot be built: {exc}", permanent=True) from None


def _message(d: Delivery, p: dict[str, Any], to: str, cfg: SmtpConfig) -> EmailMessage:
    msg = EmailMessage()
    # an address with a line break would inject headers: refused (ValueError)
    msg["From"] = str(p.get("from") or cfg.from_addr)
    msg["To"] = to
    # a rendered subject may carry a field's line break: one header line
    msg["Subject"] = " ".join(str(p.get("subject", "")).splitlines())
    if p.get("reply_to"):
        msg["Reply-To"] = str(p["reply_to"])
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = d.message_id or f"<audience.{d.id}@audience.invalid>"
    msg["X-Audience-Delivery"] = " ".join(d.key.splitlines())
    if p.get("campaign"):
        msg["X-Audience-Campaign"] = " ".join(str(p["campaign"]).splitlines())
    text, html = p.get("text"), p.get("html")
    msg.set_content(str(text) if text is not None else "")
    if html is not None:
        msg.add_alternative(str(html), subtype="html")
    return msg


class SmtpSender:
    """One connection, opened on first use and reused; reset after any error."""

    def __init__(self, cfg: SmtpConfig) -> None:
        self.cfg = cfg
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is None:
            c = self.cfg
            conn: smtplib.SMTP
            if c.ssl:
                conn = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout)
            else:
                conn = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
                if c.starttls:
                    conn.starttls(context=ssl_mod.create_default_context())
            if c.user:
                conn.login(c.user, c.password or "")
            self._conn = conn
        return self._conn

    def send(
        self,
        msg: EmailMessage,
        before_data: Callable[[], None],
        envelope_from: str | None = None,
    ) -> None:
        """Send ``msg``; ``before_data`` runs after the envelope is accepted and
        before the message itself goes (the point after which the server may
        have it: see worker.py).  ``envelope_from``: the address bounces go to
        (a delivery's ``sender``), by default the From address."""
        try:
            # CRLF line ends: smtplib leaves bytes as they are, and a server
            # reads an LF-only message as one line (refused once over 1000 bytes)
            data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
        except (ValueError, TypeError) as exc:  # e.g. text that cannot be encoded
            raise SendError(f"the message cannot be built: {exc}", permanent=True) from None
        try:
            conn = self._connect()
            conn.ehlo_or_helo_if_needed()
            sender = envelope_from or msg["From"]
            code, resp = conn.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, resp, sender)
            code, resp = conn.rcpt(msg["To"])
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({msg["To"]: (code, resp)})
            before_data()
            code, resp = conn.data(data)
            if code != 250:
                raise smtplib.SMTPDataError(code, resp)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            codes = [c for c, _ in exc.recipients.values()]
            # one RCPT per transaction: the refusal is this recipient's
            [(code, text)] = exc.recipients.values() or [(0, b"")]
            raise SendError(
                f"recipient refused: {exc.recipients}",
                permanent=_permanent(codes),
                reply=(code, _text(text)),
            ) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            refused = isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError)
            raise SendError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                permanent=_permanent([exc.smtp_code]),
                reply=(exc.smtp_code, _text(exc.smtp_error)) if refused else None,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise SendError(f"SMTP {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _permanent(codes: list[int]) -> bool:
    return bool(codes) and all(500 <= c < 600 for c in codes)
