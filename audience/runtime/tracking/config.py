"""The store's tracking settings: STORE/tracking.toml (``[tracking]`` base_url,
bot_seconds, return_path_domain), overridden by AUDIENCE_TRACKING_BASE_URL; and the signing secret,
STORE/tracking.secret, made when the store is created (or, for a store made
before tracking existed, on first use) and never printed."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_FILE = "tracking.toml"
SECRET_FILE = "tracking.secret"
ENV_BASE_URL = "AUDIENCE_TRACKING_BASE_URL"
DEFAULT_BOT_SECONDS = 10.0
# setting -> (help, default) as ``audience config`` lists them
KEYS: dict[str, tuple[str, Any]] = {
    "tracking.base_url": ("where /t/ links point, e.g. https://t.shop.example", None),
    "tracking.bot_seconds": (
        "a click or open this soon after sending is flagged as a bot",
        DEFAULT_BOT_SECONDS,
    ),
    "tracking.return_path_domain": (
        "bounces come back to bounces+TOKEN@ this domain (docs/bounces.md)",
        None,
    ),
}
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


class TrackingConfigError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class TrackingConfig:
    base_url: str | None = None  # None: links are not rewritten
    bot_seconds: float = DEFAULT_BOT_SECONDS
    return_path_domain: str | None = None  # None: the envelope sender is not a VERP address

    @property
    def enabled(self) -> bool:
        return self.base_url is not None

    @classmethod
    def load(
        cls, store_root: Path | str | None, env: dict[str, str] | None = None
    ) -> TrackingConfig:
        data = read_settings(store_root)
        env = dict(os.environ) if env is None else env
        base = env.get(ENV_BASE_URL) or data.get("base_url")
        where = ENV_BASE_URL if env.get(ENV_BASE_URL) else f"{CONFIG_FILE} base_url"
        return cls(
            base_url=None if base is None else check_base_url(str(base), where),
            bot_seconds=check_seconds(data.get("bot_seconds", DEFAULT_BOT_SECONDS)),
            return_path_domain=(
                None
                if data.get("return_path_domain") is None
                else check_domain(str(data["return_path_domain"]))
            ),
        )


def check_base_url(value: str, where: str = "tracking.base_url") -> str:
    """An http(s) URL with a host and no query or fragment, without its final slash."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrackingConfigError(
            f"{where}: {value!r} is not an http(s) URL with a host (e.g. https://t.shop.example)"
        )
    if parts.query or parts.fragment:
        raise TrackingConfigError(f"{where}: {value!r} may not have a query or a fragment")
    return value.strip().rstrip("/")


def check_domain(value: str, where: str = "tracking.return_path_domain") -> str:
    """A host name (lower-case ASCII labels: an IDN in its xn-- form)."""
    domain = value.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise TrackingConfigError(
            f"{where}: {value!r} is not a domain name (e.g. bounces.shop.example)"
        )
    return domain


def check_seconds(value: Any, where: str = "tracking.bot_seconds") -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise TrackingConfigError(f"{where}: {value!r} is not a number of seconds") from None
    if not 0 <= seconds <= 86_400:
        raise TrackingConfigError(f"{where}: {value!r} must be between 0 and 86400 seconds")
    return seconds


def read_settings(store_root: Path | str | None) -> dict[str, Any]:
    """The ``[tracking]`` table of STORE/tracking.toml ({} without the file)."""
    if store_root is None:
        return {}
    path = Path(store_root) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrackingConfigError(f"{path}: {exc}") from None
    table = data.get("tracking", {})
    if not isinstance(table, dict):
        raise TrackingConfigError(f"{path}: [tracking] must be a table")
    return table


def write_setting(store_root: Path | str, key: str, value: str | None) -> Any:
    """Set (``value`` None: remove) one setting of ``KEYS``; returns the value stored."""
    if key not in KEYS:
        raise TrackingConfigError(f"unknown setting {key!r}; settings: {', '.join(KEYS)}")
    name = key.split(".", 1)[1]
    data = read_settings(store_root)
    stored: Any = None
    if value is None:
        data.pop(name, None)
    else:
        check = {"base_url": check_base_url, "return_path_domain": check_domain}
        stored = check.get(name, check_seconds)(value)
        data[name] = stored
    lines = ["[tracking]"] + [f"{k} = {_toml_value(v)}" for k, v in sorted(data.items())]
    _write_atomic(Path(store_root) / CONFIG_FILE, "\n".join(lines) + "\n", 0o644)
    return stored


def _toml_value(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def secret(store_root: Path | str | None) -> bytes:
    """The store's signing secret (made on first use; in memory: one per process)."""
    if store_root is None:
        return _MEMORY_SECRET
    path = Path(store_root) / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write_file(tmp, secrets.token_urlsafe(32) + "\n", 0o600)
    try:
        os.link(tmp, path)  # fails when another process made it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()


_MEMORY_SECRET = secrets.token_urlsafe(32).encode()


def _write_file(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    _write_file(tmp, text, mode)
    os.replace(tmp, path)
