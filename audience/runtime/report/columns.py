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


@dataclass(frozen=True)
class Events:
    """The tracking events at or before ``as_of`` that name a delivery, as
    parallel arrays.  ``kind``: 0 for a send, 1 + the index in ``AFTER``;
    ``group``: the mail group's code (-1 none); ``bounce``: the index in
    ``BOUNCE_CLASSES`` (-1 none or another value); ``bot``: a machine's hit."""

    ts: np.ndarray
    contact: np.ndarray
    delivery: np.ndarray
    kind: np.ndarray
    group: np.ndarray
    bounce: np.ndarray
    bot: np.ndarray


def read_events(snapshot: Snapshot, first_ms: int, as_of_ms: int) -> Events:
    """The events of ``snapshot`` between ``first_ms`` and ``as_of_ms``
    (partitions outside are skipped unread)."""
    types = np.full(len(snapshot.event_types), -1, dtype=np.int8)
    for k, name in enumerate((SENT, *AFTER)):
        code = snapshot.event_types.code(name)
        if code >= 0:
            types[code] = k
    classes = _codes(snapshot, "bounce_class", BOUNCE_CLASSES)
    parts: list[tuple[np.ndarray, ...]] = []
    for p in snapshot.partitions:
        if p.max_ts < first_ms or p.min_ts > as_of_ms or not len(types):
            continue
        kind = types[p.type]
        did = p.columns["delivery_id"]
        keep = (kind >= 0) & (p.ts >= first_ms) & (p.ts <= as_of_ms) & _valid(did)
        if not keep.any():
            continue
        rows = np.flatnonzero(keep)
        group = _take_code(p.columns["mail_group"], rows)
        bounce_code = _take_code(p.columns["bounce_class"], rows)
        bounce = classes[bounce_code + 1]
        bot_col = p.columns["bot"]
        bot = bot_col.values[rows] & _valid(bot_col)[rows]
        parts.append(
            (p.ts[rows], p.contact[rows], did.values[rows], kind[rows], group, bounce, bot)
        )
    if not parts:
        empty = np.zeros(0, np.int64)
        return Events(empty, empty, empty, empty, empty, empty, np.zeros(0, bool))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Events(*cols)


def _valid(col: Column) -> np.ndarray:
    return np.ones(len(col.values), bool) if col.valid is None else np.asarray(col.valid)


def _take_code(col: Column, rows: np.ndarray) -> np.ndarray:
    """The string codes of ``rows`` (-1 where missing)."""
    codes = col.values[rows].astype(np.int32)
    if col.valid is not None:
        codes[~col.valid[rows]] = -1
    return codes


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
