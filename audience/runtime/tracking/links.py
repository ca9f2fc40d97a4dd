"""Rewriting a message for tracking: every http(s) link of the HTML part and
the URLs of the text part point at ``BASE/t/c/TOKEN``, an open pixel is added,
and the links as they were are kept (``Link``) for the redirect to read: the
target of a click comes from what was sent, never from the request.

Left alone: ``mailto:``, ``tel:``, ``#anchors`` and any other scheme, and an
``<a>`` with a ``data-notrack`` attribute.  An ``<a>`` styled
``display:none`` is kept as a hidden link: only a scanner follows it.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from audience.runtime.tracking.tokens import Signer

# an <a ...> start tag, its content and its end (content without nested <a>)
_ANCHOR = re.compile(r"<a\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>(.*?)</a\s*>", re.I | re.S)
_ATTR = re.compile(r"([^\s=\"'>/]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?", re.S)
_TAG = re.compile(r"<[^>]*>")
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)
# a URL in plain text, without the punctuation that usually ends a sentence after it
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.I)
_TRAILING = ".,;:!?"
_BODY_END = re.compile(r"</body\s*>", re.I)


@dataclass(frozen=True)
class Link:
    index: int
    url: str  # as it was in the message (HTML entities decoded)
    text: str  # the anchor's text, "" for a URL of the text part
    hidden: bool = False


@dataclass(frozen=True)
class Rewritten:
    html: str | None
    text: str | None
    links: tuple[Link, ...]


def _tracked(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def rewrite(
    html_part: str | None, text_part: str | None, base: str, delivery_id: int, signer: Signer
) -> Rewritten:
    links: list[Link] = []
    by_url: dict[str, int] = {}

    def index_of(url: str, text: str, hidden: bool) -> int:
        if not hidden and url in by_url:
            return by_url[url]
        links.append(Link(len(links), url, text, hidden))
        if not hidden:
            by_url.setdefault(url, len(links) - 1)
        return len(links) - 1

    def click_url(i: int) -> str:
        return f"{base}/t/c/{signer.sign('c', delivery_id, i)}"

    def anchor(m: re.Match[str]) -> str:
        attrs_text, content = m.group(1), m.group(2)
        attrs = [(a.group(1).lower(), a.group(2), a.span(2)) for a in _ATTR.finditer(attrs_text)]
        if any(name == "data-notrack" for name, _, _ in attrs):
            return m.group(0)
        href = next(((v, span) for name, v, span in attrs if name == "href" and v), None)
        if href is None:
            return m.group(0)
        raw, (start, end) = href
        url = html.unescape(raw[1:-1] if raw[0] in "\"'" else raw).strip()
        if not _tracked(url):
            return m.group(0)
        style = next((v or "" for name, v, _ in attrs if name == "style"), "")
        text = " ".join(html.unescape(_TAG.sub(" ", content)).split())
        i = index_of(url, text, bool(_HIDDEN.search(style)))
        new_attrs = attrs_text[:start] + f'"{click_url(i)}"' + attrs_text[end:]
        return f"<a{new_attrs}>{content}</a>"

    new_html = None
    if html_part is not None:
        new_html = _ANCHOR.sub(anchor, html_part)
        pixel = (
            f'<img src="{base}/t/o/{signer.sign("o", delivery_id)}" width="1" height="1" '
            'alt="" style="display:block;border:0;width:1px;height:1px">'
        )
        ends = list(_BODY_END.finditer(new_html))
        at = ends[-1].start() if ends else len(new_html)
        new_html = new_html[:at] + pixel + new_html[at:]

    def text_url(m: re.Match[str]) -> str:
        url = m.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:
            url, tail = url[:-1], url[-1] + tail
        return click_url(index_of(url, "", False)) + tail

    new_text = None if text_part is None else _TEXT_URL.sub(text_url, text_part)
    return Rewritten(new_html, new_text, tuple(links))
