"""supabase.extractor: read a Postgres/Supabase table into Arrow, as a stream of record batches.

SQL channel (`sql_copy`), whenever the connection gives pg_dsn/dsn or host + user + database:
`SELECT <select> FROM schema.table WHERE <filter> ORDER BY <order> [LIMIT] [OFFSET]` through ADBC, which
returns Arrow directly. Types are exact: numeric(p,s) becomes decimal128(p,s); json/jsonb, uuid and numeric
without a declared precision become strings marked with field metadata osiris.type = json | uuid | numeric
(so supabase.writer recreates them as JSONB, UUID, NUMERIC); other types Arrow cannot hold come as text.

REST channel (`rest`), when the connection gives only a url and a key: PostgREST pages of limit+offset,
read until an empty page (so a server max-rows below the page size loses nothing). Types come from JSON:
numbers, booleans and strings (timestamps stay ISO strings); JSON objects and arrays become JSON strings.
Without `order` the pages follow the table's physical order, so set `order` when rows may change meanwhile.

`limit` has no default: without it every row is read (from `offset` on). Osiris's spec gave it a default of
1000 (a PostgREST page); a default would silently cap every SQL read, so here 1000 is only the REST page
size, and a `limit` the pipeline sets caps the rows read on both channels.
`filter` is a mapping of column → value, each an equality (None means IS NULL), bound as parameters.
`select` is `*` or a comma-separated list of column names; `order` is `col`, `col.desc`, `col desc`,
optionally with nullsfirst/nullslast, comma-separated.
"""

from __future__ import annotations

import json
import re

from osiris_drivers._common import StepContext, StepError
from osiris_drivers._postgres import (
    CONNECTION_FIELDS,
    CONNECTION_POLICY,
    REST_PAGE_MAX,
    SECRET_FIELDS,
    Column,
    channels,
    connect,
    hint_for,
    qualified,
    quote,
    server_error,
    table_columns,
)

SPEC = {
    "name": "supabase.extractor",
    "families": ["supabase", "postgres"],
    "modes": ["extract", "discover"],
    "connection": CONNECTION_POLICY,
    "secrets": SECRET_FIELDS,
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["table"],
        "properties": {
            **CONNECTION_FIELDS,
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": "string", "minLength": 1, "default": "public"},
            "select": {"type": "string", "minLength": 1, "default": "*"},
            "filter": {"type": "object"},
            "order": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "offset": {"type": "integer", "minimum": 0, "default": 0},
            "timeout": {"type": "integer", "minimum": 1, "default": 30},
            "retries": {"type": "integer", "minimum": 0, "default": 3},
            "tables": {
                "type": "array",
                "items": {"type": "string"},
                "x-no-effect": "a step reads one table: `table`",
            },
        },
    },
    "constraints": [],
    "requires": ["pyarrow", "adbc_driver_postgresql", "psycopg", "httpx"],
    "helpers": ["_postgres.py"],
}

# Base types ADBC hands over as native Arrow; anything else is read as ::text.
NATIVE = {
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "bool",
    "text",
    "varchar",
    "bpchar",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "bytea",
    "interval",
}
# Types read as text and marked, so the meaning survives a round trip through the writer.
MARKED = {"json": "json", "jsonb": "json", "uuid": "uuid", "numeric": "numeric"}


def run(step: dict, inputs: dict, ctx: StepContext):
    cfg = step["config"]
    schema, table = cfg.get("schema") or "public", cfg["table"]
    select = _select(cfg.get("select") or "*")
    order = _order(cfg.get("order") or "")
    filters = dict(cfg.get("filter") or {})
    for name, value in filters.items():
        if isinstance(value, dict | list):
            raise StepError(
                f"filter {name!r} must be a single value (an equality), not {type(value).__name__}",
                "Filter on one value per column, or filter further in a duckdb.processor step.",
            )
    limit, offset = cfg.get("limit"), int(cfg.get("offset") or 0)
    sql, rest = channels(ctx.connection, cfg)
    if sql is not None:
        result = _read_sql(sql, schema, table, select, order, filters, limit, offset, cfg)
    elif rest is not None:
        result = _read_rest(rest, schema, table, select, order, filters, limit, offset, cfg, ctx)
    else:
        raise StepError(
            f'no way to reach the database for table "{schema}"."{table}": the connection has neither '
            "pg_dsn/dsn (or host, user, database) nor url + key",
            "Add pg_dsn (postgresql://user:password@host:5432/database), or url and a key, "
            "to the connection.",
        )
    channel = (sql or rest).name
    if sql is not None:  # a stream: it reports its rows when the last batch has been read
        return _counted(result, lambda rows: _complete(ctx, table, schema, rows, channel))
    _complete(ctx, table, schema, result.num_rows, channel)
    return result


def _complete(ctx: StepContext, table: str, schema: str, rows: int, channel: str) -> None:
    ctx.report("extract.complete", table=table, schema=schema, rows_read=rows, channel_used=channel)


def _counted(stream, done):
    import pyarrow as pa

    def batches():
        rows = 0
        for batch in stream:
            rows += batch.num_rows
            yield batch
        done(rows)

    return pa.RecordBatchReader.from_batches(stream.schema, batches())


def plan(step: dict, inputs: dict, ctx: StepContext):
    """Plan mode: the columns and types the step would produce, read with LIMIT 0."""
    from osiris_drivers._common import reader

    return reader(run({**step, "config": {**step["config"], "limit": 0}}, inputs, ctx)).read_all()


def _select(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if names == ["*"]:
        return []
    if not all(names) or "*" in names:
        raise StepError(f"select {text!r} is not * or a list of column names", "Write select: a, b, c")
    return names


def _order(text: str) -> list[tuple[str, bool, str | None]]:
    """(column, descending, nulls) from `a.desc.nullslast, b` or `a DESC NULLS LAST, b`."""
    terms = []
    for item in filter(None, (i.strip() for i in text.split(","))):
        words = item.split() if " " in item else item.split(".")
        mods = [w.lower() for w in words[1:]]
        name = (
            words[0]
            if all(m in ("asc", "desc", "nullsfirst", "nullslast", "nulls", "first", "last") for m in mods)
            else item
        )
        if name == item:
            mods = []
        nulls = (
            "FIRST"
            if {"nullsfirst", "first"} & set(mods)
            else ("LAST" if {"nullslast", "last"} & set(mods) else None)
        )
        terms.append((name, "desc" in mods, nulls))
    return terms


# --- SQL channel ------------------------------------------------------------------------------------------


def _read_sql(channel, schema, table, select, order, filters, limit, offset, cfg):
    """The rows as a stream: ADBC reads them with COPY ... TO STDOUT (FORMAT binary), and each batch is
    normalised as it arrives; the connection closes when the last batch has been read."""
    import adbc_driver_manager
    import pyarrow as pa

    where = f'"{schema}"."{table}" at {channel.where}'
    conn = connect(channel, int(cfg.get("timeout") or 30))
    try:
        cur = conn.cursor()
        columns = table_columns(cur, schema, table)
        if columns is None:
            raise StepError(
                f'table "{schema}"."{table}" does not exist at {channel.where}',
                "Fix `table`/`schema` in the step config (names are case-sensitive).",
            )
        by_name = {c.name: c for c in columns}
        unknown = [n for n in [*select, *filters, *(o[0] for o in order)] if n not in by_name]
        if unknown:
            raise StepError(
                f'column(s) {", ".join(dict.fromkeys(unknown))} not in table "{schema}"."{table}"',
                f"Its columns are: {', '.join(by_name)}.",
            )
        chosen = [by_name[n] for n in select] if select else columns
        query, args = _query(schema, table, chosen, order, filters, by_name, limit, offset)
        cur.execute(query, args or None)
        source = cur.fetch_record_batch()
    except adbc_driver_manager.Error as exc:
        conn.close()
        raise _read_error(exc, where) from None
    except BaseException:
        conn.close()
        raise
    schema_out, convert = _normalise(source.schema, chosen)

    def batches():
        try:
            for batch in source:
                yield convert(batch)
        except adbc_driver_manager.Error as exc:
            raise _read_error(exc, where) from None
        finally:
            source.close()
            cur.close()
            conn.rollback()
            conn.close()

    return pa.RecordBatchReader.from_batches(schema_out, batches())


def _read_error(exc, where: str) -> StepError:
    message, state = server_error(exc)
    return StepError(
        f"reading {where} failed: {message}",
        hint_for(state, "Check the filter values and the table; the server's message says what it refused."),
        error_type="DatabaseError",
    )


def _query(schema, table, chosen: list[Column], order, filters, by_name, limit, offset):
    exprs = [quote(c.name) if _native(c) else f"{quote(c.name)}::text AS {quote(c.name)}" for c in chosen]
    where, args = [], []
    for name, value in filters.items():
        if value is None:
            where.append(f"{quote(name)} IS NULL")
        else:
            args.append(_text(value))
            where.append(f"{quote(name)} = ${len(args)}::{by_name[name].sql_type}")
    sql = f"SELECT {', '.join(exprs)} FROM {qualified(schema, table)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order:
        sql += " ORDER BY " + ", ".join(
            quote(n) + (" DESC" if desc else " ASC") + (f" NULLS {nulls}" if nulls else "")
            for n, desc, nulls in order
        )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if offset:
        sql += f" OFFSET {int(offset)}"
    return sql, args


def _native(c: Column) -> bool:
    if c.base == "numeric":
        return _numeric_size(c) is not None
    return c.base in NATIVE or (c.category == "A" and c.base.lstrip("_") in NATIVE)


def _numeric_size(c: Column) -> tuple[int, int] | None:
    match = re.search(r"numeric\((\d+),(-?\d+)\)", c.sql_type)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _normalise(schema, chosen: list[Column]):
    """ADBC's opaque numeric (a string) → decimal128(p,s); text-read types get their osiris.type mark.
    Returns the schema of the result and the function that converts each batch to it."""
    import pyarrow as pa

    fields, casts = [], []
    for c, f in zip(chosen, schema, strict=True):
        meta, t, cast = None, f.type, None
        if isinstance(t, pa.ExtensionType):
            t = t.storage_type
        size = _numeric_size(c) if c.base == "numeric" else None
        if size:
            precision, scale = size
            t = cast = (
                pa.decimal128(precision, scale)
                if precision <= 38
                else pa.decimal256(min(precision, 76), scale)
            )
        elif c.base in MARKED:
            meta = {b"osiris.type": MARKED[c.base].encode()}
        fields.append(pa.field(f.name, t, True, meta))
        casts.append(cast)
    out = pa.schema(fields)

    def convert(batch):
        columns = []
        for col, cast in zip(batch.columns, casts, strict=True):
            if isinstance(col.type, pa.ExtensionType):
                col = col.storage
            columns.append(col.cast(cast) if cast is not None else col)
        return pa.RecordBatch.from_arrays(columns, schema=out)

    return out, convert


# --- REST channel -----------------------------------------------------------------------------------------


def _read_rest(channel, schema, table, select, order, filters, limit, offset, cfg, ctx):
    from osiris_drivers._postgres import Rest

    params: list[tuple[str, str]] = [("select", ",".join(select) or "*")]
    for name, value in filters.items():
        if value is None or isinstance(value, bool):
            params.append((name, f"is.{_text(value) if value is not None else 'null'}"))
        else:
            params.append((name, f"eq.{_text(value)}"))
    if order:
        params.append(
            (
                "order",
                ",".join(
                    n + (".desc" if d else ".asc") + (f".nulls{x.lower()}" if x else "") for n, d, x in order
                ),
            )
        )
    page = min(limit or REST_PAGE_MAX, REST_PAGE_MAX)
    client = Rest(
        channel,
        schema,
        int(cfg.get("timeout") or 30),
        int(cfg.get("retries", 3)),
        on_retry=lambda **f: ctx.report("rest.retry", table=table, **f),
    )
    rows: list[dict] = []
    try:
        while True:  # until an empty page, or `limit` rows (limit 0: one request, to check the table)
            size = page if limit is None else min(page, limit - len(rows))
            resp = client.request(
                "GET", table, params=[*params, ("offset", str(offset + len(rows))), ("limit", str(size))]
            )
            if resp.status_code != 200:
                if resp.status_code == 404:
                    raise StepError(
                        f'table "{schema}"."{table}" does not exist at {channel.url}',
                        "Fix `table`/`schema` in the step config (names are case-sensitive).",
                    )
                raise client.error(resp, f'reading "{schema}"."{table}" at {channel.url}')
            batch = resp.json()
            rows.extend(batch)
            if not batch or (limit is not None and len(rows) >= limit):
                break
    finally:
        client.close()
    return _from_json(rows, select)


def _from_json(rows: list[dict], select: list[str]):
    import pyarrow as pa

    names = list(rows[0]) if rows else select
    arrays, fields = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        meta = None
        if any(isinstance(v, dict | list) for v in values):
            values = [None if v is None else json.dumps(v) for v in values]
            meta = {b"osiris.type": b"json"}
        try:
            array = pa.array(values) if rows else pa.array([], pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = pa.array([None if v is None else str(v) for v in values], pa.string())
        if pa.types.is_null(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
        fields.append(pa.field(name, array.type, True, meta))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
