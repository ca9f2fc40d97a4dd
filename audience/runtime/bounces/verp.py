"""The VERP return path: each delivery's envelope sender is
``bounces+TOKEN@DOMAIN`` (DOMAIN: the store's ``tracking.return_path_domain``),
TOKEN the delivery id signed like the tracking links (kind ``b``), so a
bounce sent back to it names its delivery, and a forged one names none."""

from __future__ import annotations

from email.utils import getaddresses, parseaddr

from audience.runtime.tracking.tokens import Signer

LOCAL = "bounces"  # the local part; the token follows its "+"


def return_path(signer: Signer, domain: str, delivery_id: int) -> str:
    return f"{LOCAL}+{signer.sign('b', delivery_id)}@{domain}"


def delivery_of(signer: Signer, address: str) -> int | None:
    """The delivery id a VERP address names; None for any other address or a
    token that does not verify."""
    addr = parseaddr(address.strip())[1] or address.strip().strip("<>")
    local, at, _domain = addr.rpartition("@")
    if not at or not local.lower().startswith(LOCAL + "+"):
        return None
    found = signer.read("b", local[len(LOCAL) + 1 :])
    return None if found is None else found[0]


def is_ours(address: str, domain: str | None) -> bool:
    """An address the receiver takes mail for: ``bounces`` or ``bounces+...``
    at the return-path domain (any domain when none is configured)."""
    addr = parseaddr(address.strip())[1] or address.strip().strip("<>")
    local, at, dom = addr.rpartition("@")
    local = local.lower()
    if not at or not (local == LOCAL or local.startswith(LOCAL + "+")):
        return False
    return domain is None or dom.lower().rstrip(".") == domain


def deliveries_in(signer: Signer, values: list[str]) -> list[int]:
    """The deliveries named by the VERP addresses among header values."""
    out: list[int] = []
    for _name, addr in getaddresses(values):
        found = delivery_of(signer, addr)
        if found is not None and found not in out:
            out.append(found)
    return out
