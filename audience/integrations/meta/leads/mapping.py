"""A lead form's mapping: form fields to the node's profile fields, checked
against the schema when the form is connected, and applied to each lead's
``field_data`` (``[{"name": ..., "values": [...]}]``; several values for a
multiple-choice question).

Form answers are text: each is converted to its profile field's type.  An
answer that does not convert, and a field the mapping does not name, are kept
with the lead (``unmapped``) and counted, never dropped silently; a required
field the lead lacks is listed (``missing``) and the lead is stored all the same.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audience.schema import Schema

LEAD_EVENT = "lead_received"
# the platform's metadata of a lead; stored as properties of its lead_received event
METADATA = ("ad_id", "adgroup_id", "form_id", "page_id", "leadgen_id", "created_time")
METADATA_TYPES = {name: "datetime" if name == "created_time" else "string" for name in METADATA}
# what every lead_received event carries, whatever the form chose
REQUIRED_PROPS = {"leadgen_id": "string", "source": "string"}
# written when the schema declares them (with these types)
OPTIONAL_PROPS = {
    "form": "string",
    "organic": "bool",
    "platform": "string",
    "campaign_id": "string",
    "adset_id": "string",
    "unmapped": "string",
    "missing": "string",
}
_INT = re.compile(r"[+-]?\d{1,18}")
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


class LeadFormError(ValueError):
    """A form that cannot be connected (or a lead form request that cannot be
    done); nothing was changed.  ``code`` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FieldMap:
    field: str  # the form's field (question) key
    to: str  # the profile field
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "to": self.to, "required": self.required}


@dataclass(frozen=True)
class Mapped:
    profile: dict[str, Any]
    unmapped: dict[str, Any] = field(default_factory=dict)  # form field -> values (or why)
    missing: tuple[str, ...] = ()  # required form fields the lead lacks


def check_mapping(
    schema: Schema,
    fields: Iterable[FieldMap],
    metadata: Iterable[str],
    source_field: str | None,
    match_field: str | None,
) -> None:
    """Refuse a mapping the node's schema cannot hold, naming the first bad field."""
    seen_forms: set[str] = set()
    seen_targets: set[str] = set()
    for m in fields:
        if not m.field.strip():
            raise LeadFormError("bad_mapping", "a mapping has an empty form field name")
        if m.field in seen_forms:
            raise LeadFormError("bad_mapping", f"form field {m.field!r} is mapped twice")
        if m.to not in schema.profile:
            raise LeadFormError(
                "unknown_field",
                f"form field {m.field!r} maps to profile field {m.to!r}, which the node's "
                f"schema does not have (profile fields: {', '.join(sorted(schema.profile))})",
            )
        if m.to in seen_targets:
            raise LeadFormError(
                "bad_mapping", f"profile field {m.to!r} is the target of two form fields"
            )
        seen_forms.add(m.field)
        seen_targets.add(m.to)
    if source_field is not None:
        _string_field(schema, source_field, "the source field")
        if source_field in seen_targets:
            raise LeadFormError(
                "bad_mapping", f"profile field {source_field!r} is both mapped and the source field"
            )
    if match_field is not None:
        _string_field(schema, match_field, "the match field")
    _check_event(schema, metadata)


def _string_field(schema: Schema, name: str, what: str) -> None:
    ftype = schema.profile.get(name)
    if ftype is None:
        raise LeadFormError(
            "unknown_field", f"{what} {name!r} is not a profile field of the node's schema"
        )
    if ftype != "string":
        raise LeadFormError("bad_field_type", f"{what} {name!r} is a {ftype}, not a string")


def _check_event(schema: Schema, metadata: Iterable[str]) -> None:
    props = schema.events.get(LEAD_EVENT)
    if props is None:
        raise LeadFormError(
            "no_lead_event",
            f"the node's schema has no [events.{LEAD_EVENT}]: declare it (with leadgen_id and "
            "source strings, and the metadata kept) so leads can reach triggers and journeys",
        )
    wanted = dict(REQUIRED_PROPS)
    for name in metadata:
        if name not in METADATA_TYPES:
            raise LeadFormError(
                "bad_metadata", f"unknown metadata field {name!r} (one of {', '.join(METADATA)})"
            )
        wanted[name] = METADATA_TYPES[name]
    wanted |= {k: v for k, v in OPTIONAL_PROPS.items() if k in props}
    for name, ftype in wanted.items():
        have = props.get(name)
        if have is None:
            raise LeadFormError(
                "bad_lead_event",
                f"events.{LEAD_EVENT} lacks the property {name!r} ({ftype}) leads carry",
            )
        if have != ftype:
            raise LeadFormError(
                "bad_lead_event",
                f"events.{LEAD_EVENT}.{name} is a {have}; leads carry a {ftype} there",
            )


def field_values(field_data: Any) -> dict[str, list[str]]:
    """``field_data`` as form field -> its answers (text)."""
    out: dict[str, list[str]] = {}
    for item in field_data or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        raw = item.get("values")
        values = raw if isinstance(raw, list) else [] if raw is None else [raw]
        out[item["name"]] = [str(v) for v in values if v is not None]
    return out


def map_lead(schema: Schema, fields: Iterable[FieldMap], answers: dict[str, list[str]]) -> Mapped:
    profile: dict[str, Any] = {}
    unmapped: dict[str, Any] = {}
    missing: list[str] = []
    named: set[str] = set()
    for m in fields:
        named.add(m.field)
        values = [v for v in answers.get(m.field, []) if v.strip()]
        if not values:
            if m.required:
                missing.append(m.field)
            continue
        ftype = schema.profile.get(m.to, "string")
        try:
            profile[m.to] = convert(values, ftype)
        except ValueError as exc:
            unmapped[m.field] = {"values": values, "problem": f"not stored in {m.to!r}: {exc}"}
            if m.required:
                missing.append(m.field)
    for name, values in answers.items():
        if name not in named:
            unmapped[name] = values
    return Mapped(profile, unmapped, tuple(missing))


def convert(values: list[str], ftype: str) -> Any:
    """Form answers as a value of ``ftype``; ValueError says why not."""
    if ftype == "list<string>":
        return [v.strip() for v in values]
    if ftype == "string":
        return ", ".join(v.strip() for v in values)
    if len(values) > 1:
        raise ValueError(f"{len(values)} answers for a {ftype}")
    text = values[0].strip()
    if ftype == "int":
        if not _INT.fullmatch(text):
            raise ValueError(f"{text!r} is not a whole number")
        return int(text)
    if ftype == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if ftype == "bool":
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(f"{text!r} is not yes or no")
    if ftype == "date":
        return _date(text).isoformat()
    if ftype == "datetime":
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date and time") from None
        return when.isoformat()
    raise ValueError(f"no conversion to {ftype}")


def _date(text: str) -> dt.date:
    # forms answer ISO dates, and US-style MM/DD/YYYY for date-of-birth questions
    for fmt in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD or MM/DD/YYYY)")
