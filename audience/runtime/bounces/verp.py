"""The VERP return path: each delivery's envelope sender is
``bounces+TOKEN@DOMAIN`` (DOMAIN: the store's ``tracking.return_path_domain``),
TOKEN the delivery id signed like the tracking links (kind ``b``), so a
bounce sent back to it names its delivery, and a forged one names none.
The same token goes in the ``X-Audience-Token`` header."""

from __future__ import annotations

import re

from audience.runtime.tracking.tokens import Signer

LOCAL = "bounces"  # the local part; the token follows its "+"
# every marketing email carries the same token in this header, for the
# feedback reports that return the message without its return path
TOKEN_HEADER = "X-Audience-Token"
# a token is URL-safe base64 and dots (itsdangerous)
_VERP = re.compile(r"(?<![A-Za-z0-9_.+\-])" + LOCAL + r"\+([A-Za-z0-9_.\-]+)@[A-Za-z0-9.\-]+", re.I)
_OURS = re.compile(LOCAL + r"(?:\+[A-Za-z0-9_.\-]*)?@([A-Za-z0-9.\-]+)", re.I)


def return_path(signer: Signer, domain: str, delivery_id: int) -> str:
    return f"{LOCAL}+{signer.sign('b', delivery_id)}@{domain}"


def delivery_of(signer: Signer, address: str) -> int | None:
    """The delivery id a VERP address names (bare or in ``<...>``); None for any
    other address or a token that does not verify."""
    m = _VERP.fullmatch(address.strip().strip("<>").strip())
    if m is None:
        return None
    found = signer.read("b", m.group(1))
    return None if found is None else found[0]


def is_ours(address: str, domain: str | None) -> bool:
    """An address the receiver takes mail for: ``bounces`` or ``bounces+...``
    at the return-path domain (any domain when none is configured)."""
    m = _OURS.fullmatch(address.strip().strip("<>").strip())
    return m is not None and (domain is None or m.group(1).lower().rstrip(".") == domain)


def deliveries_in(signer: Signer, values: list[str]) -> list[int]:
    """The deliveries named by the VERP addresses found in header values (a
    pattern search: an address parser costs more than the rest of a report)."""
    out: list[int] = []
    for value in values:
        for m in _VERP.finditer(value):
            found = signer.read("b", m.group(1))
            if found is not None and found[0] not in out:
                out.append(found[0])
    return out
