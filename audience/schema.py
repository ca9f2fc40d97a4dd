"""The data schema (docs/schema.md): a TOML file with a ``[profile]`` table and
one ``[events.TYPE]`` table per event type.  Nested tables are flattened into
dotted names (``[events.viewed_product.product]`` ``name = "string"`` declares
``product.name``)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FieldType = Literal["string", "int", "float", "bool", "date", "datetime", "list<string>"]
FIELD_TYPES: tuple[str, ...] = (
    "string",
    "int",
    "float",
    "bool",
    "date",
    "datetime",
    "list<string>",
)
NUMERIC_TYPES = frozenset({"int", "float"})
TIME_TYPES = frozenset({"date", "datetime"})

# Fields every event has, whatever its type (docs/schema.md).
EVENT_BUILTINS: dict[str, str] = {
    "id": "string",
    "contact_id": "string",
    "type": "string",
    "ts": "datetime",
    "context": "string",
}
# The event types of email tracking (docs/tracking.md), built into every
# schema: the sending path and the tracking endpoints record them, and a
# schema may add properties to them but not change these.
_EMAIL_COMMON: dict[str, str] = {
    "delivery_id": "int",
    "delivery_key": "string",
    "source": "string",
    "delivery": "string",
    "plan": "string",
    "journey": "string",
    "step": "string",
    "mail_group": "string",
}
TRACKING_EVENTS: dict[str, dict[str, str]] = {
    "email_sent": dict(_EMAIL_COMMON),
    "email_opened": {**_EMAIL_COMMON, "user_agent": "string", "bot": "bool"},
    "email_clicked": {
        **_EMAIL_COMMON,
        "link": "string",
        "link_index": "int",
        "link_text": "string",
        "user_agent": "string",
        "bot": "bool",
    },
    "email_bounced": {
        **_EMAIL_COMMON,
        "bounce_class": "string",
        "status_code": "string",
        "diagnostic": "string",
        "action": "string",
        "remote_mta": "string",
        "reporting_mta": "string",
        "via": "string",
    },
    "email_complained": {
        **_EMAIL_COMMON,
        "feedback_type": "string",
        "user_agent": "string",
        "reporting_mta": "string",
        "via": "string",
    },
    "unsubscribed": {**_EMAIL_COMMON, "user_agent": "string"},
}
CONTEXTS: tuple[str, ...] = (
    "WEB",
    "MOBILE",
    "ECOMMERCE",
    "RETAIL",
    "SOCIAL",
    "DIGITAL_CAMPAIGN",
    "CONTACT_CENTER",
    "IOT",
    "OTHER",
)


class SchemaError(ValueError):
    """A schema file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Schema:
    profile: dict[str, str] = field(default_factory=dict)
    events: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # every schema has the tracking events, whoever built it
        object.__setattr__(self, "events", with_tracking_events(self.events))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_toml(cls, text: str, source: str = "<schema>") -> Schema:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SchemaError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise SchemaError(f"{p}: cannot read the schema: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{p}: not UTF-8 text (byte {exc.start})") from None
        return cls.from_toml(text, str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<schema>") -> Schema:
        unknown = sorted(set(data) - {"profile", "events"})
        if unknown:
            raise SchemaError(
                f"{source}: unknown table [{unknown[0]}]; a schema has [profile] and [events.TYPE]"
            )
        profile = _flatten(data.get("profile", {}), "profile", source)
        profile.pop("contact_id", None)  # always there, always a string
        events_raw = data.get("events", {})
        if not isinstance(events_raw, dict):
            raise SchemaError(f"{source}: 'events' must be a table of event types")
        events: dict[str, dict[str, str]] = {}
        for etype, props in events_raw.items():
            flat = _flatten(props, f"events.{etype}", source)
            for builtin in EVENT_BUILTINS:
                if builtin in flat and flat[builtin] != EVENT_BUILTINS[builtin]:
                    raise SchemaError(
                        f"{source}: events.{etype}.{builtin} is a built-in field of type "
                        f"{EVENT_BUILTINS[builtin]}"
                    )
                flat.pop(builtin, None)
            events[etype] = flat
        return cls(profile=profile, events=with_tracking_events(events, source))

    # ------------------------------------------------------------------ queries
    def event_property_type(self, etype: str, name: str) -> str | None:
        if name in EVENT_BUILTINS:
            return EVENT_BUILTINS[name]
        return self.events.get(etype, {}).get(name)

    def event_property_names(self, etypes: tuple[str, ...] | None = None) -> list[str]:
        names = set(EVENT_BUILTINS)
        for t in self.events if etypes is None else etypes:
            names.update(self.events.get(t, {}))
        return sorted(names)

    @property
    def version(self) -> str:
        """A short hash that changes whenever the schema does (plan cache key)."""
        blob = json.dumps({"profile": self.profile, "events": self.events}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_toml(self) -> str:
        """The schema as written; a tracking event type only when it adds properties."""
        out = ["[profile]"]
        out += [f"{_key(k)} = {json.dumps(v)}" for k, v in self.profile.items()]
        for etype, props in self.events.items():
            if TRACKING_EVENTS.get(etype) == props:
                continue
            out += ["", f"[events.{_key(etype)}]"]
            out += [f"{_key(k)} = {json.dumps(v)}" for k, v in props.items()]
        return "\n".join(out) + "\n"


def with_tracking_events(
    events: dict[str, dict[str, str]], source: str = "<schema>"
) -> dict[str, dict[str, str]]:
    """``events`` with the tracking event types added.  A tracking type the
    schema declares may add properties but not retype these.  A property name
    the schema's own event types use with another type (a store made before
    tracking) keeps its type: the tracking events go without that property."""
    out = dict(events)
    taken: dict[str, str] = {}
    for etype, props in events.items():
        if etype not in TRACKING_EVENTS:
            for name, t in props.items():
                taken.setdefault(name, t)
    for etype, builtin in TRACKING_EVENTS.items():
        mine = events.get(etype, {})
        for name, t in builtin.items():
            if name in mine and mine[name] != t:
                raise SchemaError(
                    f"{source}: events.{etype}.{name} is a built-in property of type {t} "
                    "(email tracking)"
                )
        kept = {name: t for name, t in builtin.items() if taken.get(name, t) == t}
        out[etype] = {**kept, **mine}
    return out


def _key(k: str) -> str:
    return k if k.replace("_", "a").isalnum() and k.isascii() else json.dumps(k)


def _flatten(table: Any, where: str, source: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise SchemaError(f"{source}: [{where}] must be a table of 'name = \"type\"'")
    out: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            for sub, t in _flatten(value, f"{where}.{key}", source).items():
                out[f"{key}.{sub}"] = t
        elif isinstance(value, str) and value.strip() in FIELD_TYPES:
            out[key] = value.strip()
        else:
            raise SchemaError(
                f"{source}: {where}.{key} = {value!r} is not a type; "
                f"use one of {', '.join(FIELD_TYPES)}"
            )
    return out
