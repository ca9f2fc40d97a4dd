"""A trigger's actions and options (docs/language/triggers.md).

Known actions and their arguments:
``send_email(campaign: string, to: profile.x | "a@b", fields: {...})``,
``webhook(url: "http(s)://...", body: {...})``, ``add_tag("x")``,
``set(prop: value, ...)`` and ``enter_journey("Name")`` (a journey of the
program or saved, ``Known.journeys``)."""

from __future__ import annotations

from collections.abc import Callable

from audience.dsl.ast import (
    NOSPAN,
    Action,
    Arg,
    AtMostOncePer,
    Delay,
    MapValue,
    OncePerContact,
    Ref,
    Span,
    StringLit,
    Trigger,
    TriggerOption,
    UseDnd,
    Value,
)
from audience.dsl.check.context import Ctx
from audience.dsl.check.names import event_property_type, field_type, suggest
from audience.dsl.check.structure import check_duration
from audience.dsl.check.values import a_type, check_value, compatible, kind_of, show

OPTION_WORDS: dict[type, str] = {
    OncePerContact: "once per contact",
    AtMostOncePer: "at most once per ... per contact",
    Delay: "delay",
    UseDnd: "dnd",
}
# Per action: its keyword arguments and whether each is required.
KEYWORDS: dict[str, dict[str, bool]] = {
    "send_email": {"campaign": True, "to": True, "fields": False},
    "webhook": {"url": True, "body": False},
}


def check_actions(ctx: Ctx, trigger: Trigger, types: tuple[str, ...] | None) -> None:
    """``types``: the trigger's known event types, for ``event.x`` references."""
    for action in trigger.actions:
        check = CHECKS.get(action.name)
        if check is None:
            ctx.error(
                "unknown_action",
                f"unknown action '{action.name}'",
                name_span(action),
                suggest(action.name, CHECKS, "actions"),
            )
            for arg in action.args:
                _check_refs(ctx, arg.value, types)
            continue
        check(ctx, action, types)


def check_options(ctx: Ctx, options: tuple[TriggerOption, ...]) -> None:
    """Each option at most once; ``once per contact`` excludes ``at most once per``."""
    seen: dict[type, TriggerOption] = {}
    for opt in options:
        if isinstance(opt, AtMostOncePer | Delay):
            check_duration(ctx, opt.duration)
        if type(opt) in seen:
            ctx.error(
                "duplicate_option",
                f"option '{OPTION_WORDS[type(opt)]}' is given twice",
                opt.span,
                "keep one of them",
            )
        seen.setdefault(type(opt), opt)
    if OncePerContact in seen and AtMostOncePer in seen:
        later = max(seen[OncePerContact], seen[AtMostOncePer], key=options.index)
        ctx.error(
            "duplicate_option",
            "'once per contact' and 'at most once per ... per contact' conflict",
            later.span,
            "keep one of them",
        )


def name_span(action: Action) -> Span:
    """The span of the action's name, which starts the call."""
    return _head(action.span, action.name)


def key_span(arg: Arg) -> Span:
    """The span of a keyword argument's key, which starts the argument."""
    return _head(arg.span, arg.key or "")


def _head(s: Span, text: str) -> Span:
    # the AST has no span for names inside a node; they start it
    return s if s == NOSPAN or not text else Span(s.line, s.column, s.line, s.column + len(text))


# --------------------------------------------------------------------------- references


def _check_refs(ctx: Ctx, value: Value, types: tuple[str, ...] | None) -> None:
    """Every ``profile.x`` / ``event.x`` in a value (maps included) must exist."""
    if isinstance(value, Ref):
        field_type(ctx, value, types)
    elif isinstance(value, MapValue):
        for _, v in value.items:
            _check_refs(ctx, v, types)


def _value_type(ctx: Ctx, value: Value, types: tuple[str, ...] | None) -> str | None:
    """Report unknown references; the type of a reference (None: unknown or not one)."""
    _check_refs(ctx, value, types)
    if isinstance(value, Ref):
        # already reported when unknown; ask again without a second report
        if value.scope == "profile":
            return ctx.schema.profile.get(value.name) if ctx.schema else None
        return event_property_type(ctx, value.name, value.span, types, report=False)
    return None


# --------------------------------------------------------------------------- arguments


def _split(ctx: Ctx, action: Action) -> tuple[dict[str, Arg], list[Arg]]:
    """Keyword arguments by name (a repeated one reported) and the positional ones."""
    keyed: dict[str, Arg] = {}
    positional: list[Arg] = []
    for arg in action.args:
        if arg.key is None:
            positional.append(arg)
        elif arg.key in keyed:
            ctx.error(
                "invalid_argument",
                f"argument '{arg.key}' is given twice to {action.name}()",
                arg.span,
            )
        else:
            keyed[arg.key] = arg
    return keyed, positional


def _keyword_action(ctx: Ctx, action: Action) -> dict[str, Arg]:
    """Check the argument names of a keyword-only action; return them by name."""
    spec = KEYWORDS[action.name]
    keyed, positional = _split(ctx, action)
    for arg in positional:
        ctx.error(
            "invalid_argument",
            f"{action.name}() takes named arguments only",
            arg.span,
            f"write one of: {', '.join(k + ':' for k in spec)}",
        )
    for key, arg in list(keyed.items()):
        if key not in spec:
            ctx.error(
                "invalid_argument",
                f"{action.name}() has no argument '{key}'",
                key_span(arg),
                suggest(key, spec, "arguments"),
            )
            del keyed[key]
    for key, required in spec.items():
        if required and key not in keyed:
            ctx.error(
                "invalid_argument",
                f"{action.name}() needs the argument '{key}:'",
                action.span,
            )
    return keyed


def _need_string(ctx: Ctx, action: Action, arg: Arg, types: tuple[str, ...] | None) -> None:
    found = _value_type(ctx, arg.value, types)
    if isinstance(arg.value, Ref):
        if found is not None and found != "string":
            ctx.error(
                "type_mismatch",
                f"'{arg.key}' of {action.name}() needs a string, but '{arg.value.scope}."
                f"{arg.value.name}' is {a_type(found)}",
                arg.value.span,
            )
    elif not isinstance(arg.value, StringLit):
        _not_a(ctx, action, arg, "a string")


def _not_a(ctx: Ctx, action: Action, arg: Arg, what: str) -> None:
    value = arg.value
    if isinstance(value, MapValue):
        got = "a map"
    elif isinstance(value, Ref):
        got = f"'{value.scope}.{value.name}'"
    else:
        got = kind_of(value)
    name = f"'{arg.key}:'" if arg.key else "the argument"
    ctx.error("invalid_argument", f"{name} of {action.name}() needs {what}, not {got}", value.span)


def _need_map(
    ctx: Ctx, action: Action, arg: Arg, types: tuple[str, ...] | None, *, nested: bool
) -> None:
    if not isinstance(arg.value, MapValue):
        _check_refs(ctx, arg.value, types)
        _not_a(ctx, action, arg, "a map such as {key: value}")
        return
    seen: set[str] = set()
    for key, v in arg.value.items:
        if key in seen:
            ctx.error("invalid_argument", f"key '{key}' is given twice", arg.value.span)
        seen.add(key)
        if isinstance(v, MapValue) and not nested:
            ctx.error(
                "invalid_argument",
                f"'{key}' in {arg.key}: needs a single value, not a map",
                v.span,
            )
        _check_refs(ctx, v, types)


def _send_email(ctx: Ctx, action: Action, types: tuple[str, ...] | None) -> None:
    args = _keyword_action(ctx, action)
    if "campaign" in args:
        _need_string(ctx, action, args["campaign"], types)
        _check_template(ctx, action, args)
    if "to" in args:
        _check_to(ctx, action, args["to"], types)
    if "fields" in args:
        _need_map(ctx, action, args["fields"], types, nested=False)


def _check_template(ctx: Ctx, action: Action, args: dict[str, Arg]) -> None:
    """The campaign is the name of a saved template (resolved only when the
    templates are known: a store), which must get every field it uses."""
    campaign = args["campaign"].value
    templates = ctx.known.templates
    if templates is None or not isinstance(campaign, StringLit):
        return
    name = campaign.value
    info = templates.get(name)
    if info is None:
        ctx.error(
            "unknown_template",
            f"unknown template '{name}'",
            campaign.span,
            suggest(name, templates, "templates")
            or f"save a template named '{name}' first (the campaign names the email template)",
        )
        return
    if info.error is not None:
        ctx.error(
            "template_error", f"template '{name}' does not parse: {info.error}", campaign.span
        )
        return
    fields = args.get("fields")
    given = set()
    if fields is not None and isinstance(fields.value, MapValue):
        given = {k for k, _ in fields.value.items}
    missing = sorted(info.fields - given)
    if missing:
        ctx.error(
            "template_fields",
            f"template '{name}' uses {', '.join(missing)}, which fields: does not give",
            fields.span if fields is not None else action.span,
            "add " + ", ".join(f"{m}: ..." for m in missing) + " to fields:",
        )


def _check_to(ctx: Ctx, action: Action, arg: Arg, types: tuple[str, ...] | None) -> None:
    value = arg.value
    if isinstance(value, StringLit):
        if "@" not in value.value:
            ctx.error(
                "invalid_argument",
                f"'to:' needs an email address, but {show(value)} has no '@'",
                value.span,
                'write to: profile.email, or a test address such as "test@example.com"',
            )
    elif isinstance(value, Ref) and value.scope == "profile":
        _need_string(ctx, action, arg, types)
    else:
        _check_refs(ctx, value, types)
        ctx.error(
            "invalid_argument",
            "'to:' must be the contact's address (profile.email) or a constant address",
            value.span,
            "write to: profile.email",
        )


def _webhook(ctx: Ctx, action: Action, types: tuple[str, ...] | None) -> None:
    args = _keyword_action(ctx, action)
    if "url" in args:
        url = args["url"].value
        if not isinstance(url, StringLit):
            _check_refs(ctx, url, types)
            _not_a(ctx, action, args["url"], "a constant URL")
        elif not url.value.startswith(("http://", "https://")):
            ctx.error(
                "invalid_argument",
                f"'url:' must start with http:// or https://, found {show(url)}",
                url.span,
            )
    if "body" in args:
        _need_map(ctx, action, args["body"], types, nested=True)


def _one_string(ctx: Ctx, action: Action, types: tuple[str, ...] | None) -> None:
    """``add_tag("x")`` / ``enter_journey("Name")``: one positional string."""
    for arg in action.args:
        _check_refs(ctx, arg.value, types)
    if len(action.args) != 1 or action.args[0].key is not None:
        ctx.error(
            "invalid_argument",
            f'{action.name}() takes one string, such as {action.name}("name")',
            action.span,
        )
    elif not isinstance(action.args[0].value, StringLit):
        _not_a(ctx, action, action.args[0], "a string")


def _add_tag(ctx: Ctx, action: Action, types: tuple[str, ...] | None) -> None:
    _one_string(ctx, action, types)


def _enter_journey(ctx: Ctx, action: Action, types: tuple[str, ...] | None) -> None:
    _one_string(ctx, action, types)
    if len(action.args) != 1 or not isinstance(action.args[0].value, StringLit):
        return
    name = action.args[0].value
    journeys = ctx.known.journeys
    if name.value not in journeys:
        ctx.error(
            "unknown_journey",
            f"unknown journey '{name.value}'",
            name.span if name.span != NOSPAN else name_span(action),
            suggest(name.value, journeys, "journeys")
            or f'define it first: journey "{name.value}" {{ start now ... }}',
        )


def _set(ctx: Ctx, action: Action, types: tuple[str, ...] | None) -> None:
    keyed, positional = _split(ctx, action)
    for arg in positional:
        _check_refs(ctx, arg.value, types)
        ctx.error(
            "invalid_argument",
            "set() takes named arguments: set(property: value)",
            arg.span,
        )
    if not action.args:
        ctx.error(
            "invalid_argument",
            'set() needs at least one property, such as set(city: "Milan")',
            action.span,
        )
    for key, arg in keyed.items():
        ptype = _set_target(ctx, key, arg)
        value = arg.value
        if isinstance(value, MapValue):
            ctx.error("invalid_argument", f"'{key}' cannot be set to a map", value.span)
            _check_refs(ctx, value, types)
        elif isinstance(value, Ref):
            vtype = _value_type(ctx, value, types)
            if ptype is not None and vtype is not None and not compatible(ptype, vtype):
                ctx.error(
                    "type_mismatch",
                    f"'{key}' is {a_type(ptype)} property, but '{value.scope}.{value.name}' is "
                    f"{a_type(vtype)}",
                    value.span,
                )
        elif ptype is not None:
            check_value(ctx, key, ptype, value)


def _set_target(ctx: Ctx, key: str, arg: Arg) -> str | None:
    if ctx.schema is None:
        return None
    found = ctx.schema.profile.get(key)
    if found is None:
        ctx.error(
            "unknown_profile_property",
            f"unknown profile property '{key}'",
            key_span(arg),
            suggest(key, ctx.schema.profile, "profile properties"),
        )
    return found


CHECKS: dict[str, Callable[[Ctx, Action, tuple[str, ...] | None], None]] = {
    "send_email": _send_email,
    "webhook": _webhook,
    "add_tag": _add_tag,
    "set": _set,
    "enter_journey": _enter_journey,
}
