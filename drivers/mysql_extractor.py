"""mysql.extractor: stream a MySQL/MariaDB table or query as Arrow record batches, with exact types."""

from __future__ import annotations

import re

from osiris_drivers._common import StepContext, StepError
from osiris_drivers._mysql import (
    CONNECTION_FIELDS,
    CONNECTION_POLICY,
    CX_SESSION,
    Column,
    columns_from_fields,
    connect,
    connection_params,
    connectorx_url,
    error_from,
    json_column_names,
    normalise_batch,
    qualified,
    quote_ident,
)

# Accepted so that Osiris pipelines validate; validation warns (OML080) that they change nothing here.
NOPOOL = "each step opens one connection and closes it; there is no pool to size"
NO_ECHO = "SQL is not logged; the DDL a step runs is in its events and artifacts"

SPEC = {
    "name": "mysql.extractor",
    "families": ["mysql"],
    "modes": ["extract", "discover"],
    "connection": CONNECTION_POLICY,
    "secrets": ["password"],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **CONNECTION_FIELDS,
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": ["string", "null"]},
            "query": {"type": "string", "minLength": 1},
            "columns": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0, "default": 0},
            "batch_size": {"type": "integer", "minimum": 100, "maximum": 100000, "default": 10000},
            "pool_size": {"type": "integer", "minimum": 1, "maximum": 20, "x-no-effect": NOPOOL},
            "pool_recycle": {"type": "integer", "minimum": 60, "x-no-effect": NOPOOL},
            "echo": {"type": "boolean", "x-no-effect": NO_ECHO},
        },
    },
    "constraints": [{"one_of": ["table", "query"]}],
    "requires": ["connectorx", "pyarrow", "pymysql"],
    "helpers": ["_mysql.py"],
}

DUPLICATE_COLUMN = 1060
SYNTAX_ERROR = 1064
MAX_LIMIT = 18446744073709551615  # MySQL has no OFFSET without LIMIT; this is its documented "all rows"


def run(step: dict, inputs: dict, ctx: StepContext):
    """Stream the table or query as Arrow record batches with the exact types of its columns.

    A PyMySQL probe (`LIMIT 0`, no rows) comes first: it gives the column metadata the types are built
    from, and it turns a wrong host, password, database or SQL into a clear error in milliseconds, where
    connectorx would retry for 30 s and then report something terse. connectorx then streams the rows
    (11x faster than PyMySQL), batch by batch, each cast to the exact type as it arrives. Columns
    connectorx cannot carry exactly (DECIMAL beyond 18 integer digits or scale 10, a bare NULL such as
    SUM over no rows, GEOMETRY) are selected in a form it carries (DECIMAL and NULL as text, then cast
    to the exact decimal; GEOMETRY as bytes); a query with such columns is read as a derived table.
    """
    config = step["config"]
    params, columns, sql = _inspect(config, ctx, planning=False)
    batch_size = config.get("batch_size") or 10000
    as_text = [column.name for column in columns if not column.connectorx]
    if config.get("query") and as_text:
        sql, session = _query_select(sql, columns)
    else:
        session = []
    done = lambda rows: ctx.report(  # noqa: E731
        "extract.complete", rows=rows, columns=len(columns), reader="connectorx", **_text_note(as_text)
    )
    return _read_connectorx(params, sql, columns, batch_size, session, done)


def _text_note(names: list[str]) -> dict:
    return {"read_as_text": names} if names else {}


# How a query's column is selected when connectorx cannot read it as it is: a GEOMETRY keeps MySQL's own
# bytes (SRID + WKB, as the server sends them), anything else becomes text and is cast back exactly.
QUERY_FORMS = {"ST_AsBinary({})": "CAST({} AS BINARY)"}
ORDERED = re.compile(r"\border\s+by\b", re.IGNORECASE)


def _query_select(sql: str, columns: list[Column]) -> tuple[str, list[str]]:
    """The query as a derived table whose outer SELECT converts the columns connectorx cannot read.

    The server may drop an ORDER BY inside a derived table that it merges into the outer query; a query
    with ORDER BY is therefore read with derived_merge off, which keeps the derived table's order."""
    projection = []
    for c in columns:
        name = quote_ident(c.name)
        if c.connectorx:
            projection.append(name)
        else:
            form = QUERY_FORMS.get(c.select, c.select if c.select != "{}" else "CAST({} AS CHAR)")
            projection.append(f"{form.format(name)} AS {name}")
    session = ["SET SESSION optimizer_switch = 'derived_merge=off'"] if ORDERED.search(sql) else []
    return f"SELECT {', '.join(projection)} FROM ({sql}\n) AS osiris_query", session


def plan(step: dict, inputs: dict, ctx: StepContext):
    """Plan mode: the server checks the query and names its columns, and no row leaves it.

    The same probe as a run (`SELECT * FROM (<query>) LIMIT 0` on a PyMySQL connection) gives the exact
    column types, so the plan's types are the run's; a wrong table, column or syntax fails here with the
    server's own message. Returns an empty table of those types for the steps downstream.
    """
    import pyarrow as pa

    _, columns, sql = _inspect(step["config"], ctx, planning=True)
    ctx.report("extract.planned", query=sql, check="LIMIT 0", columns=len(columns), rows_fetched=0)
    return pa.schema([column.field() for column in columns]).empty_table()


def _inspect(config: dict, ctx: StepContext, planning: bool) -> tuple[dict, list[Column], str]:
    """Probe the query or table with `LIMIT 0`: its exact column types, and the SQL a run reads with."""
    params = connection_params(config, ctx.connection)
    schema = config.get("schema") or (ctx.connection or {}).get("schema")
    conn = connect(params)
    try:
        with conn.cursor() as cursor:
            if config.get("query"):
                _refuse_table_options(config)
                sql = config["query"].strip().rstrip(";").strip()
                columns = _probe(
                    cursor, sql, params, "checking the query" if planning else "running the query"
                )
                return params, columns, sql
            target = qualified(schema or params["database"], config["table"])
            names = config.get("columns") or ["*"]
            projection = ", ".join("*" if n == "*" else quote_ident(n) for n in names)
            source = qualified(schema, config["table"])
            sql = f"SELECT {projection} FROM {source}"
            doing = f"checking table {target}" if planning else f"reading table {target}"
            columns = _probe(cursor, sql, params, doing)
            if not planning:  # a run selects some columns in a form connectorx carries exactly
                sql = _table_select(cursor, columns, source, schema or params["database"], config)
            return params, columns, sql
    finally:
        conn.close()


def _refuse_table_options(config: dict) -> None:
    given = [key for key in ("table", "columns", "limit", "offset") if config.get(key)]  # offset 0 is unset
    if given:
        raise StepError(
            f"mysql.extractor got both `query` and {', '.join(f'`{k}`' for k in given)}.",
            "Use either `query` (and write columns, LIMIT and OFFSET in it) or `table` with "
            "`columns`, `limit` and `offset`.",
        )


def _probe(cursor, sql: str, params: dict, doing: str) -> list[Column]:
    """The result's columns, from the server's metadata of the query wrapped with `LIMIT 0`."""
    import pymysql

    try:
        # Unmerged, the derived table keeps each column's source table, which the JSON check needs.
        cursor.execute("SET SESSION optimizer_switch = 'derived_merge=off'")
        cursor.execute(f"SELECT * FROM ({sql}\n) AS osiris_probe LIMIT 0")
        fields = cursor._result.fields  # PyMySQL's description drops the flags and charset we need
        json_names = json_column_names(cursor, fields, params["database"])
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        if code == DUPLICATE_COLUMN:
            raise StepError(
                f"The query returns more than one column named {exc.args[1].split(chr(39))[1]!r}.",
                "Give every selected column a unique name with AS; an Arrow table needs unique names.",
            ) from None
        if code == SYNTAX_ERROR:
            raise _syntax_error(cursor, sql, params, doing) from None
        raise error_from(exc, params, doing) from None
    return columns_from_fields(fields, json_names)


def _syntax_error(cursor, sql: str, params: dict, doing: str) -> StepError:
    """The server's words about the user's own SQL: PREPARE parses it without running it."""
    import pymysql

    try:
        cursor.execute("PREPARE osiris_check FROM %s", (sql,))
        cursor.execute("DEALLOCATE PREPARE osiris_check")
    except pymysql.MySQLError as own:
        return error_from(own, params, doing)
    return StepError(
        f"The query is valid SQL for MySQL at {params['host']}:{params['port']} but does not return a table "
        "that can be read (it cannot stand as a subquery).",
        "Write one SELECT (or WITH ... SELECT); SHOW, CALL and several statements are not supported.",
        "SQLError",
    )


def _table_select(cursor, columns: list[Column], source: str, database: str, config: dict) -> str:
    """SELECT with backtick-quoted names; exact-only columns as text, paged rows in primary-key order."""
    projection = ", ".join(
        quote_ident(c.name)
        if c.select == "{}"
        else f"{c.select.format(quote_ident(c.name))} AS {quote_ident(c.name)}"
        for c in columns
    )
    sql = f"SELECT {projection} FROM {source}"
    limit, offset = config.get("limit"), config.get("offset") or 0
    if limit is None and not offset:
        return sql
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
        (database, config["table"]),
    )
    keys = [row[0] for row in cursor.fetchall()]
    if keys:  # without an order, LIMIT/OFFSET pages are whatever the plan happens to scan
        sql += " ORDER BY " + ", ".join(quote_ident(k) for k in keys)
    return f"{sql} LIMIT {limit if limit is not None else MAX_LIMIT} OFFSET {offset}"


def _read_connectorx(params: dict, sql: str, columns: list[Column], batch_size: int, session, done):
    """A lazy stream: connectorx fetches in the background, each batch is cast as it is pulled, and
    `done(rows)` runs after the last one."""
    import connectorx
    import pyarrow as pa

    schema = pa.schema([column.field() for column in columns])
    try:
        source = connectorx.read_sql(
            connectorx_url(params),
            sql,
            return_type="arrow_stream",
            batch_size=batch_size,
            pre_execution_query=[*CX_SESSION, *session],
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # connectorx raises pyo3's PanicException, which is a BaseException
        raise _connectorx_error(exc, params) from None

    def batches():
        rows = 0
        try:
            for batch in source:
                batch = normalise_batch(batch, columns)
                rows += batch.num_rows
                yield batch
        except (StepError, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:
            raise _connectorx_error(exc, params) from None
        done(rows)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _connectorx_error(exc: BaseException, params: dict) -> StepError:
    text = str(exc)
    if match := re.search(r"Couldn't convert the value `(\w+)\((.*?)\)` to", text):
        kind, value = match.group(1), match.group(2).strip("\"'")
        return StepError(
            f"connectorx could not convert the {kind.upper()} value {value} read from MySQL at "
            f"{params['host']}:{params['port']}.",
            "TIME outside 00:00:00–23:59:59 and zero dates have no Arrow equivalent: select "
            "TIME_TO_SEC(col), or CAST(col AS CHAR), or NULLIF(col, '0000-00-00') in a query.",
        )
    return error_from(exc, params, "reading rows")
