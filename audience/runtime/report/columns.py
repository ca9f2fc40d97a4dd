"""The report's inputs, read from a snapshot as whole columns: the tracking
events (with their delivery id) and each contact's recipient domain.

The recipient domain of a send is the domain of its contact's ``email``
profile property, the address plans and journeys send to; it is worked out
once per distinct address with Arrow compute and then looked up per contact
by numpy indexing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from audience.runtime.plans.frozen import strings
from audience.runtime.report.params import ReportError
from audience.snapshot import Column, Snapshot, dictionary_key

SENT = "email_sent"
# the event types after a send, in the order of their ``kind`` code below
AFTER: tuple[str, ...] = (
    "email_opened",
    "email_clicked",
    "email_bounced",
    "email_complained",
    "unsubscribed",
)
BOUNCE_CLASSES: tuple[str, ...] = ("hard", "soft", "block", "undetermined")


def kinds(snapshot: Snapshot) -> np.ndarray:
    """Event type code -> 0 for a send, 1 + its index in ``AFTER``, -1 other."""
    out = np.full(max(len(snapshot.event_types), 1), -1, dtype=np.int8)
    for k, name in enumerate((SENT, *AFTER)):
        code = snapshot.event_types.code(name)
        if code >= 0:
            out[code] = k
    return out


def valid_of(col: Column) -> np.ndarray:
    """A column's validity for the kernels: empty when every row has a value."""
    return np.zeros(0, np.bool_) if col.valid is None else np.asarray(col.valid)


def class_codes(snapshot: Snapshot) -> np.ndarray:
    """``bounce_class`` code + 1 -> index in ``BOUNCE_CLASSES`` (-1: any other)."""
    return _codes(snapshot, "bounce_class", BOUNCE_CLASSES)


def _codes(snapshot: Snapshot, prop: str, values: tuple[str, ...]) -> np.ndarray:
    """Store code + 1 -> index in ``values`` (-1 for any other string or none)."""
    d = snapshot.dictionaries.get(dictionary_key("event", prop))
    size = len(d) if d is not None else 0
    out = np.full(size + 1, -1, dtype=np.int8)
    if d is not None:
        for i, v in enumerate(values):
            c = d.code(v)
            if c >= 0:
                out[c + 1] = i
    return out


def group_code(snapshot: Snapshot, name: str) -> int:
    d = snapshot.dictionaries.get(dictionary_key("event", "mail_group"))
    return -1 if d is None else d.code(name)


@dataclass(frozen=True)
class Domains:
    """``names[code]``; ``of_contact[i]``: contact i's domain code, -1 when
    it has no usable email."""

    names: tuple[str, ...]
    of_contact: np.ndarray


def contact_domains(snapshot: Snapshot) -> Domains:
    if "email" not in snapshot.schema.profile:
        raise ReportError(
            "the profiles have no 'email' property: a send's domain is its contact's email's"
        )
    col = snapshot.profile.get("email")
    d = snapshot.dictionaries.get(dictionary_key("profile", "email"))
    n = snapshot.n_contacts
    if col is None or d is None or col.kind != "code" or not len(d):
        return Domains((), np.full(n, -1, np.int32))
    emails = pc.utf8_lower(pc.utf8_trim_whitespace(strings(d.values)))
    found = pc.extract_regex(emails, r"^[^@\s]+@(?P<d>[^@\s]+)$")
    raw = pc.struct_field(found, [0]).dictionary_encode()
    # one IDNA normalization per distinct domain; two spellings of one
    # domain (Unicode and A-label) get one code
    names: dict[str, int] = {}
    remap = np.array(
        [names.setdefault(_idna(s), len(names)) for s in raw.dictionary.to_pylist()] + [-1],
        dtype=np.int32,
    )
    idx = raw.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    of_email = remap[idx]
    vals = np.asarray(col.values)[:n].astype(np.int64)
    of_contact = of_email[np.clip(vals, 0, len(of_email) - 1)]
    if col.valid is not None:
        of_contact = np.where(np.asarray(col.valid)[:n], of_contact, -1)
    if len(of_contact) < n:  # contacts without a profile row
        of_contact = np.concatenate([of_contact, np.full(n - len(of_contact), -1, np.int32)])
    return Domains(tuple(names), of_contact.astype(np.int32))


def _idna(domain: str) -> str:
    try:
        return domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return domain.rstrip(".")
