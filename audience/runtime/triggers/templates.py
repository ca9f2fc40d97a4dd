"""Email templates: a subject, an HTML body and a text body with ``{{ field }}``s.

Rendered in Jinja2's sandbox (a template cannot reach Python internals), the
HTML part with autoescaping (a field's ``<`` is text, not markup), and with
``StrictUndefined``: a field the template uses but the sender does not give
is an error, never an empty string.  When a trigger is saved, the fields a
template uses are checked against what its ``send_email(fields: ...)`` gives;
a template saved or changed later is checked at send time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

_TEXT_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_HTML_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
PARTS = ("subject", "html", "text")


class TemplateError(Exception):
    """A template that does not parse, or that cannot be rendered with the fields given."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "html": self.html, "text": self.text}


def _env(part: str) -> SandboxedEnvironment:
    return _HTML_ENV if part == "html" else _TEXT_ENV


def template_fields(subject: str, html: str, text: str) -> set[str]:
    """The names the three parts use (raises TemplateError on a syntax error)."""
    out: set[str] = set()
    for part, source in zip(PARTS, (subject, html, text), strict=True):
        try:
            out |= meta.find_undeclared_variables(_env(part).parse(source))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{part}: line {exc.lineno}: {exc.message}") from None
    return out


def missing_fields(used: Iterable[str], given: Iterable[str]) -> list[str]:
    return sorted(set(used) - set(given))


class CompiledTemplate:
    def __init__(self, name: str, version: int, subject: str, html: str, text: str) -> None:
        self.name = name
        self.version = version
        self.fields = template_fields(subject, html, text)
        self._parts = [
            _env(part).from_string(source)
            for part, source in zip(PARTS, (subject, html, text), strict=True)
        ]

    def render(self, fields: Mapping[str, Any]) -> RenderedEmail:
        """Raises TemplateError naming the missing fields (or the failing part)."""
        missing = missing_fields(self.fields, fields)
        if missing:
            raise TemplateError(
                f"template {self.name!r} uses {', '.join(missing)}, which the sender does not give"
            )
        out: list[str] = []
        for part, tpl in zip(PARTS, self._parts, strict=True):
            try:
                out.append(tpl.render(**fields))
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template {self.name!r}, {part}: {exc}") from None
            except Exception as exc:  # e.g. a filter given a value of the wrong type
                raise TemplateError(
                    f"template {self.name!r}, {part}: {type(exc).__name__}: {exc}"
                ) from None
        return RenderedEmail(*out)


_cache: dict[tuple[str, int, str, str, str], CompiledTemplate] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 1024


def compiled(name: str, version: int, subject: str, html: str, text: str) -> CompiledTemplate:
    """Parse once per saved version (raises TemplateError on a syntax error)."""
    key = (name, version, subject, html, text)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    tpl = CompiledTemplate(name, version, subject, html, text)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = tpl
    return tpl
