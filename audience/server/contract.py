"""The request side of the HTTP contract, declared once.

A handler declares the JSON body and the query parameters it takes with
``@accepts(body=..., query=...)``: fields built with ``text``, ``integer``,
``flag``, ``choice``, ``time`` or ``field``, each a JSON Schema plus the
default an absent field takes.  The decorator checks the request against
those schemas before the handler runs and hands it the values (defaults
filled in); the OpenAPI document (openapi.py) publishes the same schemas for
the route, read from the decorated view.  So a field exists in both or in
neither, and a test checks the checker against an independent JSON Schema
validator.

The checker knows the part of JSON Schema the declarations use (``KEYWORDS``;
anything else is refused when the field is declared, so nothing can be
published that is not checked).  A refusal is a 400 ``invalid_request`` (or
a field's own code) whose message names the field and why ("unknown field
'x' in the body", "'limit' must be an integer from 1 to 1000").  An optional
field may be null, which means absent (the document says so).  Bounds that
come from the server's configuration (``max_limit``) are ``Setting``s,
resolved for both.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, TypeVar, cast

from flask import request

from audience.server.bodies import json_object, query_int
from audience.server.context import ServerConfig, state
from audience.server.errors import bad_request

F = TypeVar("F", bound=Callable[..., Any])
Values = dict[str, Any]

# keywords the checker enforces, and annotations it may ignore
KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "additionalProperties",
        "oneOf",
    }
)
ANNOTATIONS = frozenset({"description", "default"})
TIME_TEXT = "ISO 8601 (without an offset: the segment's time zone) or epoch milliseconds"


@dataclass(frozen=True)
class Limits:
    """The configuration's values a ``Setting`` may name."""

    max_limit: int
    default_limit: int


@dataclass(frozen=True)
class Setting:
    """A bound taken from the server's configuration (``ServerConfig.NAME``)."""

    name: str


def resolve(value: Any, limits: Limits) -> Any:
    """``value`` with every ``Setting`` in it replaced by its configured value."""
    if isinstance(value, Setting):
        return getattr(limits, value.name)
    if isinstance(value, dict):
        return {k: resolve(v, limits) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, limits) for v in value]
    return value


@dataclass(frozen=True)
class Field:
    """One field: its schema, the value it takes when absent (or null, unless
    ``null`` is a value of its own), and why a value that does not fit is
    refused (else said from the schema)."""

    schema: dict[str, Any]
    default: Any = None
    required: bool = False
    message: str | None = None
    null: bool = False
    code: str = "invalid_request"  # of a refusal: a field's own where clients know one
    # (schema, default) resolved, per configuration: a request does not copy them
    _resolved: dict[Limits, tuple[dict[str, Any], Any]] = dataclass_field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        _declared(self.schema)

    def resolved(self, limits: Limits) -> tuple[dict[str, Any], Any]:
        """The schema and the default under the configuration's ``limits``."""
        got = self._resolved.get(limits)
        if got is None:
            got = self._resolved[limits] = (
                resolve(self.schema, limits),
                resolve(self.default, limits),
            )
        return got

    def published(self, limits: Limits) -> dict[str, Any]:
        schema = resolve(self.schema, limits)
        default = resolve(self.default, limits)
        if default is not None:
            schema = {**schema, "default": default}
        return schema if self.required else _or_null(schema)


def _declared(schema: dict[str, Any]) -> None:
    unknown = set(schema) - KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(f"the checker does not enforce {sorted(unknown)}")
    for sub in (schema.get("items"), schema.get("additionalProperties")):
        if isinstance(sub, dict):
            _declared(sub)
    for sub in (*schema.get("properties", {}).values(), *schema.get("oneOf", ())):
        _declared(sub)


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that null fits too."""
    out = dict(schema)
    if isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    if "oneOf" in schema:
        out["oneOf"] = [*schema["oneOf"], {"type": "null"}]
    if out == schema:
        raise ValueError(f"cannot say that null fits {schema}")
    return out


# ---------------------------------------------------------------------------- fields
def _with(schema: dict[str, Any], description: str | None) -> dict[str, Any]:
    return schema if description is None else {**schema, "description": description}


def text(
    max_len: int | Setting,
    *,
    required: bool = False,
    min_len: int = 0,
    pattern: str | None = None,
    default: str | None = None,
    null: bool = False,
    description: str | None = None,
) -> Field:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_len}
    if min_len:
        schema["minLength"] = min_len
    if pattern is not None:
        schema["pattern"] = pattern
    return Field(_with(schema, description), default, required, null=null)


def integer(
    lo: int | Setting,
    hi: int | Setting,
    default: int | Setting | None = None,
    *,
    required: bool = False,
    description: str | None = None,
) -> Field:
    schema = {"type": "integer", "minimum": lo, "maximum": hi}
    return Field(_with(schema, description), default, required)


def flag(default: bool = False, description: str | None = None) -> Field:
    return Field(_with({"type": "boolean"}, description), default)


_FIRST = object()


def choice(*choices: str | int, default: Any = _FIRST, description: str | None = None) -> Field:
    """One of ``choices``; when absent ``default``, else the first."""
    return Field(
        _with({"enum": list(choices)}, description), choices[0] if default is _FIRST else default
    )


def time(description: str = TIME_TEXT, *, required: bool = False) -> Field:
    """An instant: ISO 8601 text or epoch milliseconds (parsed by the handler)."""
    schema = {
        "description": description,
        "oneOf": [{"type": "string", "maxLength": 64}, {"type": "integer"}],
    }
    message = "must be an ISO 8601 time or epoch milliseconds"
    return Field(schema, required=required, message=message)


def field(
    schema: dict[str, Any],
    message: str,
    *,
    default: Any = None,
    required: bool = False,
    null: bool = False,
    code: str = "invalid_request",
) -> Field:
    """Any other schema, with what to say when a value does not fit it."""
    return Field(schema, default, required, message, null, code)


# ---------------------------------------------------------------------------- checking
def fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` (from JSON) fits ``schema``, for the keywords of KEYWORDS."""
    kind = schema.get("type")
    if kind is not None and not (
        _is(value, kind) if isinstance(kind, str) else any(_is(value, k) for k in kind)
    ):
        return False
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        return False
    if "oneOf" in schema and sum(fits(value, s) for s in schema["oneOf"]) != 1:
        return False
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return False
        return "pattern" not in schema or _pattern(schema["pattern"]).search(value) is not None
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int | float):
        return schema.get("minimum", value) <= value <= schema.get("maximum", value)
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        items = schema.get("items")
        return items is None or all(fits(v, items) for v in value)
    return _fits_object(value, schema)


def _fits_object(value: dict[str, Any], schema: dict[str, Any]) -> bool:
    props = schema.get("properties", {})
    if any(k not in value for k in schema.get("required", ())):
        return False
    extra = schema.get("additionalProperties", True)
    for k, v in value.items():
        sub = props.get(k, extra)
        if sub is False or (isinstance(sub, dict) and not fits(v, sub)):
            return False
    return True


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    # as JSON Schema's (ECMA 262) regular expressions: '$' is the very end, not
    # also before a final newline as Python's
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        # 1.0 is a JSON Schema integer; a request's count is written without a fraction
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    types: dict[str, Any] = {
        "string": str,
        "boolean": bool,
        "null": type(None),
        "array": list,
        "object": dict,
    }
    return isinstance(value, types[kind])


def _same(value: Any, wanted: Any) -> bool:
    # JSON's true is not 1
    return type(value) is type(wanted) and value == wanted


_NOUNS = {"string": "a string", "object": "an object", "array": "a list", "number": "a number"}


def _why(value: Any, f: Field, schema: dict[str, Any]) -> str:
    """Why ``value`` does not fit ``f`` (its schema resolved as ``schema``)."""
    if f.message is not None:
        return f.message
    if "enum" in schema:
        return "must be one of " + ", ".join(str(e) for e in schema["enum"])
    kind = schema.get("type")
    if kind == "boolean":
        return "must be true or false"
    if kind == "integer":
        return f"must be an integer from {schema['minimum']} to {schema['maximum']}"
    if kind == "string" and isinstance(value, str):
        if len(value) > schema["maxLength"]:
            return f"is longer than {schema['maxLength']} characters"
        if len(value) < schema.get("minLength", 0):
            return "must not be empty"
        return f"must match {schema['pattern']}"
    return "must be " + _NOUNS.get(str(kind), "as /openapi.json describes it")


def _field_values(given: Mapping[str, Any], fields: Mapping[str, Field], limits: Limits) -> Values:
    out: Values = {}
    for name, f in fields.items():
        value = given.get(name)
        if value is None and f.null and name in given:
            out[name] = None
            continue
        if value is None:
            if f.required:
                raise bad_request("invalid_request", f"{name!r} is required")
            default = f.resolved(limits)[1]
            # a fresh copy: a handler may change what it is given
            out[name] = list(default) if isinstance(default, list) else default
            continue
        schema = f.resolved(limits)[0]
        if not fits(value, schema):
            raise bad_request(f.code, f"{name!r} {_why(value, f, schema)}")
        out[name] = value
    return out


def _unknown(given: Any, allowed: Mapping[str, Field], what: str, where: str = "") -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise bad_request(
            "invalid_request",
            f"unknown {what} {unknown[0]!r}{where}",
            f"{what}s: {', '.join(sorted(allowed))}" if allowed else f"no {what}s",
        )


# ---------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Body:
    """A JSON object body: its component name in the document and its fields.
    ``optional``: an empty body is the empty object; ``open``: any fields
    (the handler checks them, e.g. a profile patch against the schema)."""

    name: str
    fields: Mapping[str, Field]
    description: str | None = None
    optional: bool = False
    open: bool = False

    def schema(self, limits: Limits) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object"}
        if self.description:
            out["description"] = self.description
        required = [n for n, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if not self.open:
            out["additionalProperties"] = False
            out["properties"] = {n: f.published(limits) for n, f in self.fields.items()}
        return out

    def check(self, obj: dict[str, Any], limits: Limits) -> Values:
        if self.open:
            return obj
        _unknown(obj, self.fields, "field", " in the body")
        return _field_values(obj, self.fields, limits)

    def read(self, limits: Limits) -> Values:
        """The request's body, checked."""
        if self.optional and not request.get_data(cache=True).strip():
            return self.check({}, limits)
        return self.check(json_object(), limits)


@dataclass(frozen=True)
class Raw:
    """A body the handler reads itself (records, a signed webhook, a form):
    only published, as its OpenAPI request body."""

    request_body: dict[str, Any]


@dataclass(frozen=True)
class Query:
    """Query parameters; anything else is refused.  An array field is
    repeatable; a value is read as the type its schema names."""

    fields: Mapping[str, Field]

    def parameters(self, limits: Limits) -> list[dict[str, Any]]:
        out = []
        for name, f in self.fields.items():
            schema = resolve(f.schema, limits)
            param: dict[str, Any] = {"name": name, "in": "query"}
            if f.required:
                param["required"] = True
            if "description" in schema:
                param["description"] = schema.pop("description")
            default = resolve(f.default, limits)
            param["schema"] = schema if default is None else {**schema, "default": default}
            if schema.get("type") == "array":
                param |= {"style": "form", "explode": True}
            out.append(param)
        return out

    def check(self, args: Any, limits: Limits) -> Values:
        _unknown(args, self.fields, "query parameter")
        given = {}
        for name, f in self.fields.items():
            if name not in args:
                continue
            if f.schema.get("type") == "array":
                given[name] = [_typed(v, f.schema["items"]) for v in args.getlist(name)]
            else:
                given[name] = _typed(args.get(name), f.schema)
        return _field_values(given, self.fields, limits)


def _typed(raw: str, schema: dict[str, Any]) -> Any:
    """A query value as its schema's type (left as text when it is not one:
    the check then refuses it)."""
    if "enum" in schema:
        return next((e for e in schema["enum"] if str(e) == raw), raw)
    kind = schema.get("type")
    if kind == "integer":
        number = query_int(raw)
        return raw if number is None else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(raw.lower(), raw)
    return raw


@dataclass(frozen=True)
class Contract:
    """What a route takes: the decorated view's ``contract``."""

    body: Body | Raw | None = None
    query: Query | None = None


def limits_of(config: ServerConfig | None) -> Limits:
    """The bounds of ``config`` (None: the defaults)."""
    if config is None:
        return Limits(ServerConfig.max_limit, ServerConfig.default_limit)
    return Limits(config.max_limit, config.default_limit)


def accepts(body: Body | Raw | None = None, query: Query | None = None) -> Callable[[F], F]:
    """Check the request against ``body`` and ``query`` before the view runs,
    which then gets their values as ``body=`` and ``query=``."""
    contract = Contract(body, query)

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            limits = limits_of(state().config)
            if query is not None:
                kwargs["query"] = query.check(request.args, limits)
            if isinstance(body, Body):
                kwargs["body"] = body.read(limits)
            return view(*args, **kwargs)

        inner.contract = contract  # type: ignore[attr-defined]
        return cast(F, inner)

    return wrap


def contract_of(view: Callable[..., Any]) -> Contract:
    return cast(Contract, getattr(view, "contract", Contract()))
