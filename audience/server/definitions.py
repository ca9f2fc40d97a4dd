"""What the definition endpoints (triggers, DND policies, templates) share:
checking a DSL text through the node's trigger engine, and taking the one
definition a request's text must hold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, jsonify

from audience.dsl.ast import Program
from audience.runtime.store import StoreError
from audience.server.contract import Body, text
from audience.server.errors import ApiError, bad_request
from audience.server.evaluate import MAX_TEXT, out_of_range

T = TypeVar("T")

DSL_TEXT = text(MAX_TEXT, required=True, description="the definition as DSL text")
# the body of a write that is one DSL text (segments, DND policies, plans, journeys)
DSL_BODY = Body("DslText", {"text": DSL_TEXT})


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a check or a save: a DslError stays (400, docs/http.md#errors); a bad name or span
    (StoreError) and an out-of-range date become 400s too."""
    try:
        return fn(*args, **kwargs)
    except StoreError as exc:
        raise bad_request("invalid_request", str(exc)) from None
    except (OverflowError, ValueError) as exc:
        raise out_of_range(exc) from None


def one_definition(
    program: Program,
    kind: type,
    word: str,
    name: str | None = None,
    beside: tuple[type, ...] = (),
) -> str:
    """The name of the one ``kind`` definition of ``program``, which may hold
    definitions of the ``beside`` kinds too but nothing else (it would not be
    saved); with ``name``, it must be that one."""
    found = [d for d in program.definitions if isinstance(d, kind)]
    others = [d for d in program.definitions if not isinstance(d, (kind, *beside))]
    if program.condition is not None or len(found) != 1 or others:
        raise bad_request(
            f"not_one_{word.replace(' ', '_')}",
            f"the text must hold exactly one {word} definition"
            + (" (and DND policies)" if beside else "")
            + " and nothing else",
        )
    got = str(getattr(found[0], "name", ""))
    if name is not None and got != name:
        raise bad_request(
            "name_mismatch", f"the text defines {got!r}, not {name!r}", "rename it in the text"
        )
    if "/" in got:
        raise bad_request("invalid_request", f"a {word} name cannot hold '/'")
    return got


def missing(word: str, name: str) -> ApiError:
    return ApiError(404, "not_found", f"no {word} {name!r}")


def exists(word: str, name: str) -> ApiError:
    return ApiError(409, "conflict", f"a {word} {name!r} exists", "replace it with PUT")


def created(body: dict[str, Any], location: str, status: int = 201) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    if status == 201:
        resp.headers["Location"] = location
    return resp
