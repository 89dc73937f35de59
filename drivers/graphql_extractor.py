"""graphql.extractor: read rows from a GraphQL API into Arrow, following cursor pagination.

Each page is one POST of `{"query", "variables"}`; the rows are read at `data_path` and the next cursor at
`pagination_path` of the same response (one request per page). `endpoint`, `auth_token`, `auth_username`
and `headers` come from the step's `graphql` connection (secrets as `${ENV}` there), step config first for
`endpoint` and `headers`; a step without `connection:` and without auth needs no connection at all.

Rows: with `flatten_result` (the default) nested objects become columns named by their dotted path as
Osiris names them (`total.amount`, `customer.address.city`); lists, and objects when not flattened,
become JSON text marked as JSON. A GraphQL response declares no types, so each page is typed from its
values and spilled to disk as Arrow; when the last page is in, the types of all pages are joined (an
integer column null on page 1 stays integer, big integers stay exact) and the step returns a reader that
streams the pages back from disk in that one schema (see `_pages.py`). `plan` sends the first page's
request only and returns the columns that page gives.

`data_path` and `pagination_path` are JSONPath in the form Osiris's examples use: dotted keys with an
optional leading `$`, `[*]` over a list and `[n]` for one item (`data.orders.edges[*].node`).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from osiris_drivers._common import StepContext, StepError
from osiris_drivers._http import Http, checked_url, mapping_field, server_message, shown_url
from osiris_drivers._pages import Spill

SPEC = {
    "name": "graphql.extractor",
    "families": ["graphql"],
    "modes": ["extract"],
    "connection": {
        "endpoint": "allowed",
        "auth_token": "forbidden",
        "auth_username": "forbidden",
        "headers": "warning",
    },
    "connection_optional": True,  # a public API needs no connection entry
    "secrets": ["auth_token", "auth_username", "headers"],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["query"],
        "properties": {
            "endpoint": {"type": "string", "format": "uri", "minLength": 1},
            "query": {"type": "string", "minLength": 1},
            "variables": {"type": "object", "default": {}},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
            "auth_type": {"enum": ["none", "bearer", "basic", "api_key"], "default": "none"},
            "auth_token": {"type": "string"},
            "auth_username": {"type": "string"},
            "auth_header_name": {"type": "string", "minLength": 1, "default": "X-API-Key"},
            "timeout": {"type": "integer", "minimum": 5, "maximum": 300, "default": 30},
            "max_retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
            "retry_delay": {"type": "number", "minimum": 0.1, "maximum": 60, "default": 1.0},
            "pagination_enabled": {"type": "boolean", "default": False},
            "pagination_path": {"type": "string", "default": "data.pageInfo"},
            "pagination_cursor_field": {"type": "string", "default": "endCursor"},
            "pagination_has_next_field": {"type": "string", "default": "hasNextPage"},
            "pagination_variable_name": {"type": "string", "default": "after"},
            "max_pages": {"type": "integer", "minimum": 0, "default": 0},
            "data_path": {"type": "string", "default": "data"},
            "flatten_result": {"type": "boolean", "default": True},
            "validate_ssl": {"type": "boolean", "default": True},
        },
    },
    "constraints": [
        {"require": "endpoint", "hint": "Set `endpoint` on the step or on its graphql connection."},
        {
            "when": {"auth_type": ["bearer", "api_key"]},
            "require": "auth_token",
            "hint": "Set `auth_token: ${ENV_VAR}` on the step's graphql connection.",
        },
        {
            "when": {"auth_type": ["basic"]},
            "require": "auth_username",
            "hint": "Set `auth_username` on the step's graphql connection in osiris_connections.yaml.",
        },
        {
            "when": {"auth_type": ["basic"]},
            "require": "auth_token",
            "hint": "Set `auth_token: ${ENV_VAR}` (the password) on the step's graphql connection.",
        },
        *(
            {
                "when": {"pagination_enabled": [True]},
                "require": key,
                "hint": f"Set `{key}` (or turn pagination off).",
            }
            for key in ("pagination_path", "pagination_cursor_field", "pagination_variable_name")
        ),
    ],
    "requires": ["httpx", "pyarrow"],
    "helpers": ["_http.py", "_pages.py"],
}

USER_AGENT = "osiris-action graphql.extractor"
PATH_TOKEN = re.compile(r"\[(\*|-?\d+)\]|\['([^']*)'\]|([^.\[\]]+)")


def run(step: dict, inputs: dict, ctx: StepContext):
    """Fetch every page into a spill of Arrow pages; return a reader over them in one schema."""
    config = step["config"]
    spill = Spill()
    try:
        with _client(config, ctx) as http:
            for rows in _pages(http, config, ctx):
                names, values = _columns(rows, bool(config.get("flatten_result", True)))
                spill.add(names, values, len(rows))
    except BaseException:
        spill.discard()
        raise
    drop = _stray_parents(spill) if config.get("flatten_result", True) else set()
    reader = spill.reader(drop)
    ctx.report(
        "extract.complete",
        rows=spill.rows,
        pages=spill.pages,
        requests=http.requests,
        retries=http.retries,
        columns=len(reader.schema),
        endpoint=shown_url(http.url),
    )
    return reader


def plan(step: dict, inputs: dict, ctx: StepContext):
    """One request, the first page's: the query is checked by the server, and its columns named."""
    import pyarrow as pa

    config = step["config"]
    with _client(config, ctx) as http:
        rows = next(_pages(http, config, ctx), [])  # the first page's request only
    names, values = _columns(rows, bool(config.get("flatten_result", True)))
    spill = Spill()  # one page, typed as a run types it; nothing is kept
    try:
        spill.add(names, values, len(rows))
        schema = spill.schema(_stray_parents(spill) if config.get("flatten_result", True) else set())
    finally:
        spill.discard()
    ctx.report(
        "extract.planned",
        endpoint=shown_url(http.url),
        requests=http.requests,
        rows_fetched=len(rows),
        columns=len(schema),
        check="first page only: later pages may add columns",
    )
    return pa.schema(schema).empty_table()


class _Client(Http):
    url: str
    headers: dict[str, str]


def _client(config: dict, ctx: StepContext) -> _Client:
    """The endpoint, the request headers (auth first, then connection and step headers) and the client."""
    connection = ctx.connection or {}
    endpoint = config.get("endpoint") or connection.get("endpoint")
    checked_url(endpoint, ctx.step_id, "endpoint")
    token = connection.get("auth_token") or config.get("auth_token") or ""
    username = connection.get("auth_username") or config.get("auth_username") or ""
    auth_type = config.get("auth_type") or "none"
    where = "its graphql connection" if ctx.connection else "a graphql connection in osiris_connections.yaml"
    missing = [
        key
        for key, needed in (("auth_token", auth_type != "none"), ("auth_username", auth_type == "basic"))
        if needed and not (token if key == "auth_token" else username)
    ]
    if missing:
        raise StepError(
            f"step '{ctx.step_id}': auth_type {auth_type} needs {' and '.join(missing)}, which is empty.",
            f"Set {' and '.join(f'`{k}`' for k in missing)} on {where} (as `${{ENV_VAR}}`).",
        )
    headers: dict[str, str] = {}
    secrets = [token, username]
    if auth_type == "bearer":
        headers["Authorization"] = f"Bearer {token}"
    elif auth_type == "basic":
        basic = base64.b64encode(f"{username}:{token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
        secrets.append(basic)
    elif auth_type == "api_key":
        headers[config.get("auth_header_name") or "X-API-Key"] = token
    for extra in (mapping_field(connection, "headers"), config.get("headers") or {}):
        for name, value in extra.items():
            headers[str(name)] = str(value)
            secrets.append(str(value))
    headers.setdefault("Content-Type", "application/json")
    headers.setdefault("User-Agent", USER_AGENT)
    fix = (
        f"Check auth_type ({auth_type}) and the token of {where}: the server refused it."
        if auth_type != "none"
        else "The API wants credentials: set auth_type and put auth_token on the step's graphql connection."
    )
    http = _Client(
        ctx,
        "GraphQL endpoint",
        secrets,
        fix,
        timeout=float(config.get("timeout") or 30),
        max_retries=int(config.get("max_retries", 3)),
        retry_delay=float(config.get("retry_delay") or 1.0),
        verify=bool(config.get("validate_ssl", True)),
    )
    http.url, http.headers = endpoint, headers
    return http


def _pages(http: _Client, config: dict, ctx: StepContext):
    """Yield the rows of each page; one request per page, the cursor read from the same response."""
    variables = dict(config.get("variables") or {})
    paginate = bool(config.get("pagination_enabled"))
    limit = int(config.get("max_pages") or 0)
    seen_cursors: set[str] = set()
    page = 0
    while True:
        body = http.post_json(http.url, {"query": config["query"], "variables": variables}, http.headers)
        page += 1
        if not isinstance(body, dict):
            raise http.error(
                f"the GraphQL endpoint at {shown_url(http.url)} answered with JSON that is not an object.",
                "Check that `endpoint` is the GraphQL API's address.",
                "ResponseError",
            )
        if isinstance(body.get("errors"), list) and body["errors"]:
            raise http.error(
                f"the GraphQL endpoint at {shown_url(http.url)} reported an error on page {page}: "
                f"{http.scrub(server_message(body))}",
                "Fix the query or its variables; the message above is the server's own.",
                "GraphQLError",
            )
        yield _rows(body, config.get("data_path", "data"), ctx, page)
        if not paginate:
            return
        path = config.get("pagination_path") or "data.pageInfo"
        info = _single(_find(body, path))
        has_next = config.get("pagination_has_next_field") or "hasNextPage"
        cursor_field = config.get("pagination_cursor_field") or "endCursor"
        if not isinstance(info, dict) or has_next not in info or cursor_field not in info:
            # Osiris stops here in silence; a wrong path would pass for a one-page result
            ctx.emit(
                "step.note",
                note=f"pagination_path {path!r} has no {has_next} and {cursor_field} on "
                f"page {page}: reading stopped there",
            )
            return
        if not info[has_next]:
            return
        if limit and page >= limit:
            ctx.emit("step.note", note=f"stopped at max_pages {limit}: the API has more pages")
            return
        cursor = info[cursor_field]
        if cursor in (None, ""):
            ctx.emit("step.note", note=f"page {page} says it has a next page but gives no {cursor_field}")
            return
        key = repr(cursor)
        if key in seen_cursors:
            raise http.error(
                f"the GraphQL endpoint at {shown_url(http.url)} returned the cursor of an earlier page "
                f"again on page {page}; following it would loop forever.",
                "Check pagination_cursor_field: it must name the cursor of the page's last row (endCursor).",
                "PaginationError",
            )
        seen_cursors.add(key)
        variables[config.get("pagination_variable_name") or "after"] = cursor


def _rows(body: dict, data_path: str, ctx: StepContext, page: int) -> list:
    """Osiris's reading of `data_path`: one match gives its list (or one row), several are concatenated."""
    found = _find(body, data_path)
    if not found:
        ctx.emit("extract.warning", page=page, message=f"data_path {data_path!r} matched nothing")
        return []
    if len(found) == 1:
        value = found[0]
        return value if isinstance(value, list) else ([] if value is None else [value])
    if all(isinstance(v, list) for v in found):
        return [row for value in found for row in value]
    return found


def _single(found: list) -> Any:
    return found[0] if found else None


def _find(document: Any, path: str) -> list:
    """Every value at `path` (`data.a.b`, `$.data.a`, `data.edges[*].node`, `items[0]`)."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    current = [document]
    position = 0
    while position < len(text):
        if text[position] == ".":
            position += 1
            continue
        match = PATH_TOKEN.match(text, position)
        if match is None:
            raise StepError(
                f"cannot read the path {path!r}", "Write a dotted path such as data.orders.nodes."
            )
        position = match.end()
        index, quoted, key = match.groups()
        following = []
        for value in current:
            if index == "*" and isinstance(value, list | dict):
                following += value if isinstance(value, list) else list(value.values())
            elif index not in (None, "*"):
                if isinstance(value, list) and -len(value) <= int(index) < len(value):
                    following.append(value[int(index)])
            elif isinstance(value, dict) and (quoted if quoted is not None else key) in value:
                following.append(value[quoted if quoted is not None else key])
        current = following
    return current


def _columns(rows: list, flatten: bool) -> tuple[list[str], dict[str, list]]:
    """The page's columns in order of first appearance, each a list with one value per row."""
    values: dict[str, list] = {}
    count = len(rows)
    for position, row in enumerate(rows):
        items = _flat(row, "") if flatten and isinstance(row, dict) else _top(row)
        for name, value in items:
            cells = values.get(name)
            if cells is None:
                cells = values[name] = [None] * count
            cells[position] = value
    return list(values), values


def _top(row: Any):
    if isinstance(row, dict):
        return row.items()
    return [("value", row)]


def _flat(row: dict, prefix: str):
    """Nested objects as dotted names, the way pandas.json_normalize names them for Osiris."""
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flat(value, name + ".")
        else:
            yield name, value


def _stray_parents(spill: Spill) -> set[str]:
    """A column that is null on every page while other columns hold its fields (`customer` beside
    `customer.email`) only says the object was null somewhere; its fields already say so."""
    import pyarrow as pa

    names = list(spill.columns)
    return {
        name
        for name, kinds in spill.columns.items()
        if all(pa.types.is_null(k.type) for k in kinds) and any(n.startswith(name + ".") for n in names)
    }
