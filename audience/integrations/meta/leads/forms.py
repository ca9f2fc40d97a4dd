"""Lead forms connected to a node: which integration reads them, the page and
the form, the mapping, the metadata kept, the source tag, and the backfill's
watermark (unix seconds: the newest lead creation time fully stored)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audience.integrations.meta.graph import GraphError
from audience.integrations.meta.leads import db
from audience.integrations.meta.leads.mapping import (
    METADATA,
    FieldMap,
    LeadFormError,
    check_mapping,
)
from audience.integrations.meta.tokens import Integrations
from audience.runtime.plans.clock import Clock
from audience.runtime.store.errors import StoreError
from audience.runtime.triggers.definitions import check_name
from audience.schema import Schema

_GRAPH_ID = re.compile(r"\d{1,24}")
NOT_FOUND_CODE = 100  # "Unsupported get request": no such object
MAX_SOURCE = 200


@dataclass(frozen=True)
class LeadForm:
    name: str
    node: str
    integration: str
    page_id: str
    form_id: str
    fields: tuple[FieldMap, ...]
    metadata: tuple[str, ...]
    source: str  # the constant tag every lead of this form carries
    source_field: str | None  # a profile field the tag is also written to
    match_field: str | None  # the profile field an existing contact is found by
    watermark_s: int
    connected_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node": self.node,
            "integration": self.integration,
            "page_id": self.page_id,
            "form_id": self.form_id,
            "mapping": [m.to_json() for m in self.fields],
            "metadata": list(self.metadata),
            "source": self.source,
            "source_field": self.source_field,
            "match_field": self.match_field,
            "watermark": self.watermark_s,
        }


_COLUMNS = (
    "name, node, integration, page_id, form_id, mapping, metadata, source, source_field, "
    "match_field, watermark_s, connected_ms"
)


class LeadForms:
    def __init__(self, store_root: Path | str, clock: Clock) -> None:
        self.root = Path(store_root)
        self.path = db.ensure(self.root)
        self.clock = clock

    def all(self, node: str | None = None) -> list[LeadForm]:
        sql = f"select {_COLUMNS} from lead_forms"
        args: list[str] = []
        if node is not None:
            sql += " where node = ?"
            args.append(node)
        with db.connect(self.path) as conn:
            rows = conn.execute(sql + " order by name", args).fetchall()
        return [_form(r) for r in rows]

    def get(self, name: str, node: str | None = None) -> LeadForm:
        with db.connect(self.path) as conn:
            row = conn.execute(f"select {_COLUMNS} from lead_forms where name = ?", [name])
            found = row.fetchone()
        if found is None or (node is not None and found[1] != node):
            raise LeadFormError("no_lead_form", f"no lead form named {name!r}")
        return _form(found)

    def by_form_id(self, form_id: str) -> LeadForm | None:
        with db.connect(self.path) as conn:
            row = conn.execute(
                f"select {_COLUMNS} from lead_forms where form_id = ?", [form_id]
            ).fetchone()
        return None if row is None else _form(row)

    def connect(
        self,
        name: str,
        *,
        node: str,
        schema: Schema,
        integration: str,
        page_id: str,
        form_id: str,
        fields: Iterable[FieldMap],
        metadata: Iterable[str] = METADATA,
        source: str,
        source_field: str | None = None,
        match_field: str | None = "email",
        since_s: int = 0,
        questions: Callable[[str], set[str]] | None = None,
    ) -> LeadForm:
        """Connect a form to ``node`` (whose schema is ``schema``); refused, with
        nothing written, when the mapping names a field the schema lacks, or
        (``questions``: the form's question keys, asked of the platform) a
        form field the form does not have."""
        try:
            name = check_name(name, "lead form")
        except StoreError as err:
            raise LeadFormError("bad_name", str(err)) from None
        page_id, form_id = _graph_id(page_id, "page"), _graph_id(form_id, "form")
        fields, metadata = tuple(fields), tuple(dict.fromkeys(metadata))
        tag = source.strip()
        if not tag or len(tag) > MAX_SOURCE or any(ord(c) < 32 for c in tag):
            raise LeadFormError(
                "bad_source", f"bad source tag {source!r}: 1 to {MAX_SOURCE} printable characters"
            )
        if match_field is not None and match_field not in schema.profile:
            match_field = None if match_field == "email" else match_field  # default is optional
        check_mapping(schema, fields, metadata, source_field, match_field)
        if since_s < 0:
            raise LeadFormError("bad_since", "the backfill start must not be negative")
        if questions is not None:
            keys = questions(form_id)
            for m in fields:
                if keys and m.field not in keys:
                    raise LeadFormError(
                        "unknown_form_field",
                        f"form field {m.field!r} is not a question of form {form_id} "
                        f"(its questions: {', '.join(sorted(keys))})",
                    )
        with db.connect(self.path) as conn:
            taken = conn.execute(
                "select name from lead_forms where name = ? or form_id = ?", [name, form_id]
            ).fetchone()
            if taken is not None:
                raise LeadFormError(
                    "lead_form_exists",
                    f"lead form {name!r} exists"
                    if taken[0] == name
                    else f"form {form_id} is already connected as {taken[0]!r}",
                )
            conn.execute(
                f"insert into lead_forms ({_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    name,
                    node,
                    integration,
                    page_id,
                    form_id,
                    json.dumps([m.to_json() for m in fields]),
                    json.dumps(list(metadata)),
                    tag,
                    source_field,
                    match_field,
                    since_s,
                    self.clock(),
                ],
            )
            # leads that arrived before their form was connected are processed now
            conn.execute(
                "update lead_inbox set state = 'pending', next_ms = 0 "
                "where form_id = ? and state = 'unrouted'",
                [form_id],
            )
        return self.get(name)

    def disconnect(self, name: str, node: str | None = None) -> LeadForm:
        """Stop routing the form's leads (those stored stay; new ones wait, unrouted)."""
        form = self.get(name, node)
        with db.connect(self.path) as conn:
            conn.execute("delete from lead_forms where name = ?", [name])
        return form

    def advance(self, name: str, watermark_s: int) -> None:
        """Move the watermark forward (never back)."""
        with db.connect(self.path) as conn:
            conn.execute(
                "update lead_forms set watermark_s = max(watermark_s, ?) where name = ?",
                [watermark_s, name],
            )


def parse_mapping(items: Iterable[str], required: Iterable[str] = ()) -> tuple[FieldMap, ...]:
    """``FORM_FIELD=PROFILE_FIELD`` items (the CLI's ``--map``)."""
    req = set(required)
    out = []
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise LeadFormError("bad_mapping", f"bad mapping {item!r}: FORM_FIELD=PROFILE_FIELD")
        out.append(FieldMap(src.strip(), dst.strip(), src.strip() in req))
    unknown = req - {m.field for m in out}
    if unknown:
        raise LeadFormError(
            "bad_mapping", f"required form field {sorted(unknown)[0]!r} is not mapped"
        )
    return tuple(out)


def fields_of(raw: Any) -> tuple[FieldMap, ...]:
    """A mapping as JSON (``[{"field", "to", "required"}]`` or ``{"field": "to"}``)."""
    if isinstance(raw, dict):
        raw = [{"field": k, "to": v} for k, v in raw.items()]
    if not isinstance(raw, list):
        raise LeadFormError("bad_mapping", "the mapping is a list of {field, to, required}")
    out = []
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("field"), str)
            or not isinstance(item.get("to"), str)
        ):
            raise LeadFormError("bad_mapping", f"mapping[{i}]: needs 'field' and 'to' strings")
        out.append(FieldMap(item["field"], item["to"], bool(item.get("required", False))))
    return tuple(out)


def _graph_id(value: str, what: str) -> str:
    clean = str(value).strip()
    if not _GRAPH_ID.fullmatch(clean):
        raise LeadFormError(f"bad_{what}_id", f"bad {what} id {value!r}: digits only")
    return clean


def _form(row: tuple[Any, ...]) -> LeadForm:
    name, node, integ, page, form, mapping, metadata, source, sfield, mfield, wm, at = row
    return LeadForm(
        name,
        node,
        integ,
        page,
        form,
        fields_of(json.loads(mapping)),
        tuple(json.loads(metadata)),
        source,
        sfield,
        mfield,
        wm,
        at,
    )


def form_questions(integrations: Integrations, integration: str) -> Callable[[str], set[str]]:
    """The question keys of a form, asked of the platform with the integration's token."""

    def ask(form_id: str) -> set[str]:
        try:
            form = integrations.call(
                integration, lambda c: c.get(form_id, {"fields": "id,name,questions"})
            )
        except GraphError as err:
            if err.code == NOT_FOUND_CODE:
                raise LeadFormError(
                    "no_form", f"form {form_id}: the platform does not know it ({err.message})"
                ) from None
            raise
        return {
            str(q["key"])
            for q in form.get("questions") or ()
            if isinstance(q, dict) and q.get("key") is not None
        }

    return ask
