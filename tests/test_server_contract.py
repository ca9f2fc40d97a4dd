"""The request side of the HTTP contract has one source (server/contract.py):
every route's declared body and query parameters are what the served OpenAPI
document publishes, the checker refuses exactly what an independent JSON
Schema validator refuses, and each live route refuses a body or a query the
published schema refuses.  Driven by the routes' declarations: a new route is
covered without touching this file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from werkzeug.datastructures import MultiDict

from audience.server.context import ServerConfig
from audience.server.contract import Body, Field, Query, Raw, fits, limits_of, text
from audience.server.errors import ApiError
from audience.server.openapi import contracts
from tests.helpers.server_api import Live, build_store, start

# bounds of the server below, unlike the defaults: the document must follow them
CONFIG = {"max_limit": 500, "default_limit": 7}
LIMITS = limits_of(ServerConfig(Path("unused"), **CONFIG))
ROUTES = sorted(contracts().items())
BODIES = [(p, m, c.body) for (p, m), c in ROUTES if isinstance(c.body, Body)]
QUERIES = [(p, m, c.query) for (p, m), c in ROUTES if c.query is not None]
BODY_IDS = [f"{m} {p}" for p, m, _ in BODIES]
QUERY_IDS = [f"{m} {p}" for p, m, _ in QUERIES]
PATH_VALUES = {"name": "x", "contact_id": "c", "token": "t", "job_id": "1"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = build_store(tmp_path_factory.mktemp("contract") / "shop", n_events=200, n_contacts=20)
    srv = start(path, **CONFIG)
    yield srv
    srv.server.stop()


@pytest.fixture(scope="module")
def served(live: Live) -> dict[str, Any]:
    r = live.client(None).get("/openapi.json")
    assert r.status == 200
    return r.json()


def url(path: str) -> str:
    for key, value in PATH_VALUES.items():
        path = path.replace("{" + key + "}", value)
    return path


def samples(schema: dict[str, Any]) -> list[Any]:
    """JSON values around ``schema``'s edges, fitting and not (no 1.0: JSON
    Schema calls it an integer, a request's count is written without one)."""
    out: list[Any] = [None, True, False, 0, -1, 7, 1.5, "", "x", "12", "12\n", [], {}, ["x"], [3]]
    out.append({"a": "b"})
    for key in ("minimum", "maximum"):
        if key in schema:
            out += [schema[key] - 1, schema[key], schema[key] + 1]
    for key in ("minLength", "maxLength"):
        if key in schema:
            out += ["a" * max(schema[key] - 1, 0), "a" * schema[key], "a" * (schema[key] + 1)]
    out += schema.get("enum", [])
    out += [str(e) for e in schema.get("enum", [])]
    for sub in schema.get("oneOf", []):
        out += samples(sub)
    if "items" in schema:
        items = samples(schema["items"])
        out += [[v] for v in items]
        fitting = next((v for v in items if fits(v, schema["items"])), None)
        for key in ("minItems", "maxItems"):
            if key in schema:
                out += [[fitting] * max(schema[key] - 1, 0), [fitting] * (schema[key] + 1)]
    if isinstance(schema.get("additionalProperties"), dict):
        out += [{"k": v} for v in samples(schema["additionalProperties"])]
    if "properties" in schema:
        whole = {k: fitting_value(s) for k, s in schema["properties"].items()}
        out += [whole, {**whole, "zz": 1}]
        out += [{k: v for k, v in whole.items() if k != gone} for gone in whole]
    return out


def fitting_value(schema: dict[str, Any]) -> Any:
    """A value ``schema`` takes (by the independent validator)."""
    check = jsonschema_rs.validator_for(schema)
    return next(v for v in samples_flat(schema) if check.is_valid(v))


def samples_flat(schema: dict[str, Any]) -> list[Any]:
    # strings of digits first: patterns of ids want them
    return ["123", *[v for v in samples(schema) if v is not None], None]


def minimal(body: Body) -> dict[str, Any]:
    """A body with its required fields only, each with a value that fits."""
    return {n: fitting_value(f.published(LIMITS)) for n, f in body.fields.items() if f.required}


def changed(case: dict[str, Any], base: dict[str, Any]) -> set[str]:
    """The keys ``case`` adds, drops or sets otherwise than ``base`` (true is not 1)."""
    differs = {k for k in case.keys() & base.keys() if repr(case[k]) != repr(base[k])}
    return differs | (case.keys() ^ base.keys())


def codes(body: Body) -> set[str]:
    """The codes a refusal of ``body`` may carry (a field may keep its own)."""
    return {"invalid_request"} | {f.code for f in body.fields.values()}


def refusal(body: Body, value: dict[str, Any]) -> ApiError | None:
    try:
        body.check(value, LIMITS)
    except ApiError as err:
        return err
    return None


@pytest.mark.parametrize(("path", "method", "body"), BODIES, ids=BODY_IDS)
def test_the_checker_refuses_what_the_schema_refuses_and_nothing_else(
    path: str, method: str, body: Body
) -> None:
    schema = body.schema(LIMITS)
    validator = jsonschema_rs.validator_for(schema)
    base = minimal(body)
    assert validator.is_valid(base) and refusal(body, base) is None
    cases = [{**base, "zz_unknown": 1}] + [
        {k: v for k, v in base.items() if k != name} for name in base
    ]
    for name, f in body.fields.items():
        cases += [{**base, name: v} for v in samples(f.published(LIMITS))]
    for case in cases:
        err = refusal(body, case)
        assert validator.is_valid(case) == (err is None), (path, method, case, err)
        if err is not None:
            assert err.status == 400 and err.code in codes(body)
            assert any(repr(k) in err.message for k in changed(case, base)), err.message


@pytest.mark.parametrize(("path", "method", "query"), QUERIES, ids=QUERY_IDS)
def test_query_parameters_are_refused_as_their_schema_refuses(
    path: str, method: str, query: Query
) -> None:
    params = {p["name"]: p for p in query.parameters(LIMITS)}
    base = {
        n: str(fitting_value(params[n]["schema"])) for n, f in query.fields.items() if f.required
    }
    query.check(MultiDict(base), LIMITS)
    with pytest.raises(ApiError, match="unknown query parameter 'zz'"):
        query.check(MultiDict({**base, "zz": "1"}), LIMITS)
    for name in query.fields:
        schema = params[name]["schema"]
        item = schema.get("items", schema)
        for raw in ("x", "-1", "99999999999", "1.5", "true", "a" * 300):
            # the value OpenAPI reads ``raw`` as, for a parameter of this schema
            value: Any = raw
            if item.get("type") == "integer" or all(
                isinstance(e, int) for e in item.get("enum", ["x"])
            ):
                value = int(raw) if raw.lstrip("-").isdigit() else raw
            if item.get("type") == "boolean":
                value = {"true": True}.get(raw, raw)
            if schema.get("type") == "array":
                value = [value]
            ok = jsonschema_rs.validator_for(schema).is_valid(value)
            try:
                query.check(MultiDict({**base, name: raw}), LIMITS)
                refused = None
            except ApiError as err:
                refused = err
            assert ok == (refused is None), (path, name, raw, refused)
            if refused is not None:
                assert f"{name!r}" in refused.message, refused.message


def test_the_document_publishes_each_routes_declaration(served: dict[str, Any]) -> None:
    with_body = set()
    for (path, method), contract in ROUTES:
        op = served["paths"][path][method]
        body = contract.body
        if isinstance(body, Body):
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{body.name}"
            assert served["components"]["schemas"][body.name] == body.schema(LIMITS)
            assert op["requestBody"]["required"] is not body.optional
        elif isinstance(body, Raw):
            assert op["requestBody"] == body.request_body
        if body is not None:
            with_body.add((path, method))
        query = [p for p in op.get("parameters", ()) if p["in"] == "query"]
        if contract.query is None:
            # the platform's handshake: any other query is a 403, so it declares none
            assert query == [] or path == "/hooks/meta", (path, method)
        else:
            assert query == contract.query.parameters(LIMITS), (path, method)
    documented = {
        (path, method)
        for path, item in served["paths"].items()
        for method, op in item.items()
        if method != "parameters" and "requestBody" in op
    }
    assert documented == with_body
    # the server's own bounds, not the defaults
    evaluate = served["components"]["schemas"]["EvaluateRequest"]["properties"]["limit"]
    assert (evaluate["maximum"], evaluate["default"]) == (500, 7)


@pytest.mark.parametrize(("path", "method", "body"), BODIES, ids=BODY_IDS)
def test_each_route_refuses_a_body_its_schema_refuses(
    live: Live, served: dict[str, Any], path: str, method: str, body: Body
) -> None:
    before = live.version()
    schema = served["components"]["schemas"][body.name]
    validator = jsonschema_rs.validator_for(schema)
    c = live.client("write")
    bad: list[tuple[dict[str, Any], str]] = []
    if not body.open:
        bad.append(({**minimal(body), "zz_unknown": 1}, "unknown field 'zz_unknown' in the body"))
    for name in schema.get("properties", {}):
        bad.append(({**minimal(body), name: [[]]}, f"{name!r}"))
    for name in schema.get("required", []):
        bad.append(({k: v for k, v in minimal(body).items() if k != name}, f"{name!r} is required"))
    for value, says in bad:
        assert not validator.is_valid(value)
        r = c.request(method.upper(), url(path), value)
        assert r.status == 400, (path, value, r)
        err = r.json()["error"]
        assert err["code"] in codes(body) and says in err["message"], err
    if body.open:
        r = c.request(method.upper(), url(path), ["not an object"])
        assert r.status == 400 and r.json()["error"]["code"] == "bad_json"
    assert live.version() == before


@pytest.mark.parametrize(("path", "method", "query"), QUERIES, ids=QUERY_IDS)
def test_each_route_refuses_a_query_its_schema_refuses(
    live: Live, path: str, method: str, query: Query
) -> None:
    c = live.client("write")
    r = c.request(method.upper(), url(path) + "?zz=1")
    assert r.status == 400 and "unknown query parameter 'zz'" in r.json()["error"]["message"]
    for name, f in query.fields.items():
        item = f.schema.get("items", f.schema)
        if item.get("type") == "string" and "pattern" not in item:
            continue  # any short text fits
        r = c.request(method.upper(), f"{url(path)}?{name}=%7B%7D")
        assert r.status == 400, (path, name, r)
        assert f"{name!r}" in r.json()["error"]["message"]


def test_a_declaration_uses_only_what_the_checker_enforces() -> None:
    with pytest.raises(ValueError, match="does not enforce"):
        Field({"type": "string", "format": "email"})
    with pytest.raises(ValueError, match="does not enforce"):
        Field({"type": "array", "items": {"type": "string", "uniqueItems": True}})
    assert text(3).published(LIMITS) == {"type": ["string", "null"], "maxLength": 3}
