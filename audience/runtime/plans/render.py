"""A delivery's messages (docs/language/plans.md): its template (the delivery's subject
overriding the template's) rendered with its fields, plus the envelope.

Rendered once per distinct combination of field values, not per contact:
contacts sharing a first name share one payload text, and a chunk's payloads
are an Arrow dictionary array over those texts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.dsl.ast import Ref
from audience.dsl.ast_sending import DeliveryDef, Plan
from audience.runtime.delivery.model import dumps
from audience.runtime.plans.frozen import FIELD_PREFIX, field_items
from audience.runtime.triggers.actions import literal
from audience.runtime.triggers.templates import CompiledTemplate, TemplateError, compiled

if TYPE_CHECKING:
    from audience.runtime.node import Node


class RunFailed(Exception):
    """The run cannot go on (a deleted delivery, a template that does not render)."""


class Renderer:
    def __init__(
        self,
        store: Node,
        delivery: DeliveryDef,
        version: int,
        plan: Plan | None = None,
        occurrence_ms: int | None = None,
    ) -> None:
        saved = store.triggers.defs.get_template(delivery.template)
        if saved is None:
            raise RunFailed(f"template {delivery.template!r} is not saved")
        try:
            self.template: CompiledTemplate = compiled(
                saved.name,
                saved.version,
                delivery.subject if delivery.subject is not None else saved.subject,
                saved.html,
                saved.text,
            )
        except TemplateError as exc:
            raise RunFailed(str(exc)) from None
        items = field_items(delivery)
        missing = sorted(self.template.fields - {k for k, _ in items})
        if missing:
            raise RunFailed(
                f"template {saved.name!r} uses {', '.join(missing)}, which delivery "
                f"{delivery.name!r} does not give in fields"
            )
        self.constants = {k: literal(v) for k, v in items if not isinstance(v, Ref)}
        self.refs = [k for k, v in items if isinstance(v, Ref)]
        self.ref_props = {k: v.name for k, v in items if isinstance(v, Ref)}
        self.envelope = envelope(delivery, version, saved.version)
        if plan is not None:
            self.envelope["plan"] = plan.name
            self.envelope["occurrence_ms"] = occurrence_ms

    def render(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Raises TemplateError."""
        shown = {k: ("" if v is None else v) for k, v in fields.items()}
        return {**self.envelope, **self.template.render(shown).to_dict(), "fields": shown}

    def chunk(self, part: pa.Table) -> tuple[pa.Array, pa.Array, Any, int]:
        """(contacts, emails, payloads, render failures) of a frozen chunk; a
        contact whose message does not render is left out (counted)."""
        cids = part.column("contact_id").combine_chunks()
        emails = part.column("email").combine_chunks()
        if not self.refs:
            try:
                return cids, emails, self.render(dict(self.constants)), 0
            except TemplateError as exc:
                raise RunFailed(str(exc)) from None
        cols = [part.column(FIELD_PREFIX + k).combine_chunks() for k in self.refs]
        group, first = _groups(cols)
        texts: list[str | None] = []
        for row in first.tolist():
            fields = {**self.constants}
            for k, col in zip(self.refs, cols, strict=True):
                fields[k] = col[row].as_py()
            try:
                texts.append(dumps(self.render(fields)))
            except TemplateError:
                texts.append(None)
        ok = np.array([t is not None for t in texts], dtype=bool)
        payloads = pa.DictionaryArray.from_arrays(
            pa.array(group.astype(np.int32)), pa.array(texts, pa.string())
        )
        keep = ok[group]
        failed = int(len(keep) - np.count_nonzero(keep))
        if failed:
            mask = pa.array(keep)
            return (
                pc.filter(cids, mask),
                pc.filter(emails, mask),
                pc.filter(payloads, mask),
                failed,
            )
        return cids, emails, payloads, 0


def _groups(cols: list[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """A group number per row, equal for rows with equal values in every
    column, and the first row of each group."""
    n = len(cols[0])
    key = np.zeros(n, dtype=np.int64)
    for col in cols:
        try:
            enc = pc.dictionary_encode(col)
            codes = np.asarray(pc.fill_null(enc.indices, -1), dtype=np.int64) + 1
            card = len(enc.dictionary) + 1
        except pa.ArrowNotImplementedError:  # e.g. lists: by their text
            _, codes = np.unique(np.array([repr(v) for v in col.to_pylist()]), return_inverse=True)
            card = int(codes.max(initial=0)) + 1
        if len(cols) == 1:
            key = codes
            break
        # fold the column in, then renumber densely so the key stays below n
        key = np.unique(key * card + codes, return_inverse=True)[1].reshape(-1)
    # renumber the keys in use densely; each group's first row (scattered in
    # reverse, so the first one wins)
    used = np.zeros(int(key.max(initial=0)) + 1, dtype=bool)
    used[key] = True
    dense = np.cumsum(used) - 1
    group = dense[key]
    first = np.empty(int(used.sum()), dtype=np.int64)
    first[group[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)
    return group, first


def envelope(delivery: DeliveryDef, version: int, template_version: int) -> dict[str, Any]:
    """The payload fields every message of a delivery shares."""
    out: dict[str, Any] = {
        "campaign": delivery.name,
        "delivery": delivery.name,
        "delivery_version": version,
        "template": delivery.template,
        "template_version": template_version,
    }
    for key, value in (
        ("mail_group", delivery.mail_group),
        ("from", delivery.from_addr),
        ("sender", delivery.sender),
        ("reply_to", delivery.reply_to),
    ):
        if value is not None:
            out[key] = value
    return out
