"""Link rewriting (runtime/tracking/links.py): every tracked link maps back,
through its signed token, to exactly what the message said; nothing else of
the message changes."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st

from audience.runtime.tracking.links import rewrite
from audience.runtime.tracking.tokens import Signer

BASE = "https://t.shop.example"
SIGNER = Signer(b"test-secret")
_TOKEN = re.compile(re.escape(BASE) + r"/t/c/([A-Za-z0-9_.-]+)")
_PIXEL = re.compile(r'<img src="' + re.escape(BASE) + r'/t/o/[^"]+"[^>]*>')

# a URL of a text part that ends in sentence punctuation loses it (it reads as the sentence's)
paths = st.text(alphabet="abcxyz019-_/?=&%.~", max_size=20).filter(
    lambda p: not p.endswith(tuple(".,;:!?"))
)
words = st.text(alphabet="Hello wrd<>&\"'é\n", max_size=15)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}.example/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["shop", "a-b", "x1"]),
    paths,
)
untracked = st.sampled_from(["mailto:a@b.example", "tel:+390612345", "#top", "ftp://x.example/f"])


@st.composite
def anchors(draw: st.DrawFn) -> tuple[str, str, str | None]:
    """(the HTML of an <a>; as it reads back, its tracked href double-quoted;
    the URL it should be tracked as, or None)"""
    text = html.escape(draw(words))
    quote = draw(st.sampled_from(['"', "'"]))
    if draw(st.booleans()):
        url = draw(urls)
        escaped = html.escape(url, quote=True)
        if draw(st.booleans()):
            a = f"<a data-notrack href={quote}{escaped}{quote}>{text}</a>"
            return a, a, None
        a = f'<a class="c" href={quote}{escaped}{quote} title="t">{text}</a>'
        return a, f'<a class="c" href="{escaped}" title="t">{text}</a>', url
    a = f"<a href={quote}{draw(untracked)}{quote}>{text}</a>"
    return a, a, None


@given(st.lists(st.tuples(st.text(alphabet="Hi <p>&;\n", max_size=10), anchors()), max_size=8))
def test_html_links_map_back_to_what_was_sent(
    parts: list[tuple[str, tuple[str, str, str | None]]],
) -> None:
    source = "".join(filler + a for filler, (a, _, _) in parts)
    expected = "".join(filler + b for filler, (_, b, _) in parts)
    out = rewrite(source, None, BASE, 42, SIGNER)
    assert out.html is not None
    links = {k.index: k for k in out.links}
    tracked = [url for _, (_, _, url) in parts if url is not None]

    def back(m: re.Match[str]) -> str:
        read = SIGNER.read("c", m.group(1))
        assert read is not None and read[0] == 42 and read[1] is not None
        return html.escape(links[read[1]].url, quote=True)

    seen = [links[SIGNER.read("c", t)[1]].url for t in _TOKEN.findall(out.html)]  # type: ignore[index]
    assert seen == tracked
    # with the tokens replaced by the links and the pixel taken out: the message as written
    assert _PIXEL.sub("", _TOKEN.sub(back, out.html)) == expected
    assert len(_PIXEL.findall(out.html)) == 1


@given(st.lists(st.tuples(words, urls), max_size=6), words)
def test_text_urls_map_back_and_share_the_html_index(
    pairs: list[tuple[str, str]], tail: str
) -> None:
    text = "".join(f"{w} {u}. " for w, u in pairs) + tail
    page = "".join(f'<a href="{html.escape(u, quote=True)}">x</a>' for _, u in pairs)
    out = rewrite(page, text, BASE, 7, SIGNER)
    assert out.text is not None
    by_index = {k.index: k.url for k in out.links}

    def back(m: re.Match[str]) -> str:
        read = SIGNER.read("c", m.group(1).rstrip("."))
        assert read is not None and read[1] is not None
        return by_index[read[1]] + m.group(1)[len(m.group(1).rstrip(".")) :]

    assert _TOKEN.sub(back, out.text) == text
    # one link per distinct URL: the text part reuses the HTML part's indexes
    assert len(out.links) == len({u for _, u in pairs})
