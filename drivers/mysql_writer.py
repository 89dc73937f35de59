"""mysql.writer: write an Arrow stream into MySQL/MariaDB (append, replace, upsert), in one transaction."""

from __future__ import annotations

import uuid

from osiris_drivers import _diff
from osiris_drivers._common import StepContext, StepError, counted
from osiris_drivers._mysql import (
    CONNECTION_FIELDS,
    CONNECTION_POLICY,
    UNKNOWN_DATABASE,
    connect,
    connection_params,
    error_from,
    infile_off,
    qualified,
    quote_ident,
)
from osiris_drivers._mysql_send import Sender

# Accepted so that Osiris pipelines validate; validation warns (OML080) that they change nothing here.
NOPOOL = "each step opens one connection and closes it; there is no pool to size"
NO_ECHO = "SQL is not logged; the DDL a step runs is in its events and artifacts"

SPEC = {
    "name": "mysql.writer",
    "families": ["mysql"],
    "modes": ["write", "discover"],
    "connection": CONNECTION_POLICY,
    "secrets": ["password"],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["table"],
        "properties": {
            **CONNECTION_FIELDS,
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": ["string", "null"]},
            "mode": {"enum": ["append", "replace", "upsert"], "default": "append"},
            "upsert_keys": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
            "create_table": {"type": "boolean", "default": False},
            "truncate_before": {"type": "boolean", "default": False},
            "pool_size": {"type": "integer", "minimum": 1, "maximum": 20, "x-no-effect": NOPOOL},
            "pool_recycle": {"type": "integer", "minimum": 60, "x-no-effect": NOPOOL},
            "echo": {"type": "boolean", "x-no-effect": NO_ECHO},
        },
    },
    "constraints": [{"when": {"mode": ["upsert"]}, "require": "upsert_keys"}],
    "requires": ["pyarrow", "pymysql"],
    "helpers": ["_mysql.py", "_mysql_send.py", "_diff.py"],
}

DUPLICATE_KEY = 1062
BAD_VALUE = {1264, 1265, 1292, 1366, 1406}  # out of range, truncated, incorrect value, too long

# Arrow type → MySQL column type for `create_table`. Parameterised types (decimal, timestamp, time, fixed
# binary) and JSON-marked strings are decided in `_column_type`.
DDL_TYPES = {
    "bool": "TINYINT(1)",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INT",
    "int64": "BIGINT",
    "uint8": "TINYINT UNSIGNED",
    "uint16": "SMALLINT UNSIGNED",
    "uint32": "INT UNSIGNED",
    "uint64": "BIGINT UNSIGNED",
    "halffloat": "FLOAT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date32[day]": "DATE",
    "date64[ms]": "DATE",
    "string": "LONGTEXT",
    "large_string": "LONGTEXT",
    "string_view": "LONGTEXT",
    "binary": "LONGBLOB",
    "large_binary": "LONGBLOB",
    "binary_view": "LONGBLOB",
    "null": "LONGTEXT",
}
# A key column must have a bounded length: TEXT and BLOB cannot be part of a PRIMARY KEY.
KEY_TYPES = {"LONGTEXT": "VARCHAR(255)", "LONGBLOB": "VARBINARY(255)", "JSON": "VARCHAR(255)"}
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"


def _target(step: dict, inputs: dict, ctx: StepContext) -> tuple:
    """What run and plan both start from: the data, the connection, and where and how it is written."""
    config = step["config"]
    data = _input_table(inputs, step["id"])
    params = connection_params(config, ctx.connection)
    schema = config.get("schema") or (ctx.connection or {}).get("schema") or params["database"]
    name, mode = config["table"], config.get("mode") or "append"
    keys = list(config.get("upsert_keys") or [])
    if mode == "upsert" and not keys:
        raise StepError(
            f"mysql.writer step '{step['id']}' is in upsert mode but names no upsert_keys.",
            "List the key columns under upsert_keys (they need a PRIMARY KEY or UNIQUE index).",
        )
    return config, data, params, schema, name, mode, keys


def run(step: dict, inputs: dict, ctx: StepContext) -> None:
    """Write the input table in one transaction: a failure anywhere leaves the table as it was.

    replace deletes and inserts inside the same transaction (so does truncate_before: TRUNCATE would
    commit on its own); upsert loads a temporary copy and applies INSERT ... ON DUPLICATE KEY UPDATE from
    it. LOAD DATA LOCAL turns duplicate keys and bad values into warnings instead of errors, so any
    warning rolls the load back and fails the step. A table this step created is dropped again on failure.

    Rows stream in batch by batch (see _mysql_send.py): LOAD DATA LOCAL INFILE when the server allows it,
    else multi-row INSERTs; write.complete says which as `method` (load_data | insert). A connection with
    `local_infile: false` never offers LOCAL INFILE to the server and always uses INSERTs.
    """
    import pyarrow as pa
    import pymysql

    config, data, params, schema, name, mode, keys = _target(step, inputs, ctx)
    target, where = qualified(schema, name), {"table": name, "schema": schema, "mode": mode}
    allowed = _local_infile_allowed(params)
    conn = connect(params, local_infile=allowed, autocommit=False)
    infile_off(conn)  # LOCAL INFILE is answered only while our own LOAD DATA statement runs
    created = False
    try:
        with conn.cursor() as cursor:
            if ctx.create_schema and not ctx.plan_only:  # the run's own database; commits by itself
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)}")
            created = _prepare_table(cursor, ctx, config, data, schema, params)
            if ctx.plan_only:
                ctx.report("write.complete", **where, rows_written=0, channel_used="none", plan_only=True)
                return None
            cursor.execute("SELECT @@local_infile, @@sql_mode")
            server_infile, sql_mode = cursor.fetchone()
            method = "load_data" if allowed and server_infile else "insert"
            sender = Sender(cursor, method, "NO_BACKSLASH_ESCAPES" in str(sql_mode).upper())
            stats: dict = {}
            conn.begin()
            data, seen = counted(data)
            staged = compared = None
            if ctx.diff and not ctx.create_schema:  # stage, compare with the table, then apply from the stage
                staged = _stage(cursor, target, data, sender)
                compared = _diff.against_incoming(
                    cursor,
                    "mysql",
                    (target, f"{schema}.{name}"),
                    f"SELECT * FROM {staged}",
                    data.schema.names,
                    keys,
                    "replace" if config.get("truncate_before") else mode,
                )
            if mode == "replace" or config.get("truncate_before"):
                stats["rows_deleted"] = cursor.execute(f"DELETE FROM {target}")
            if mode == "upsert":
                counts = _upsert(cursor, target, data, keys, sender, staged)
                written = counts["inserted"] + counts["updated"]
                stats.update(counts)
            else:
                written = _from_stage(cursor, target, data, staged) if staged else sender.send(target, data)
                stats.update(inserted=written, updated=0, unchanged=0)
            conn.commit()
    except BaseException as exc:
        _undo(conn, created, target)
        if isinstance(exc, pymysql.MySQLError) and exc.args and exc.args[0] in UNKNOWN_DATABASE:
            # the unknown database is the target's schema, which need not be the connection's database
            raise StepError(
                f"Database '{schema}' (the schema of {target}) does not exist on MySQL at "
                f"{params.get('host')}:{params.get('port')}.",
                "Create that database, or set `schema` on the step to a database that exists.",
                "SQLError",
            ) from None
        if isinstance(exc, pymysql.MySQLError):
            raise error_from(exc, params, f"writing to {target}", hint=_hint(exc)) from None
        if isinstance(exc, pa.ArrowException):
            raise StepError(
                f"The input of step '{step['id']}' cannot be written as CSV for MySQL: {exc}.",
                "Cast the column to a plain type (text, number, date) in an upstream duckdb step.",
            ) from None
        raise
    finally:
        conn.close()
    channel = "pymysql_load_data" if method == "load_data" else "pymysql_insert"
    ctx.report(
        "write.complete",
        **where,
        rows_in=seen[0],
        rows_written=written,
        channel_used=channel,
        method=method,
        **stats,
    )
    if compared is not None and "unavailable" in compared:
        ctx.report("diff.unavailable", table=name, reason=compared["unavailable"])
    elif compared is not None:
        ctx.report("diff.complete", **compared)
    elif ctx.create_schema:
        _isolation_diff(params, ctx, config, schema, name, keys)
    return None


def _isolation_diff(params: dict, ctx: StepContext, config: dict, schema: str, name: str, keys) -> None:
    """Per-PR isolation: the table this run wrote against the same table in the database the pipeline
    names, on the same server, read after the write committed."""
    import pymysql

    base = ctx.base_schema or (ctx.connection or {}).get("schema") or params["database"]
    conn = connect(params)
    try:
        with conn.cursor() as cursor:
            sides = [(qualified(s, name), f"{s}.{name}") for s in (schema, base)]
            ctx.report("diff.complete", **_diff.against_base(cursor, "mysql", *sides, keys))
    except pymysql.MySQLError as exc:
        ctx.report("diff.unavailable", table=name, reason=error_from(exc, params, "comparing").message)
    finally:
        conn.close()


def plan(step: dict, inputs: dict, ctx: StepContext) -> None:
    """Plan mode: inspect the target with reads only and report what the write would do, as `plan.target`
    {table, schema, state: missing | compatible | incompatible, ddl, differences, mode, effect, channel},
    the same fields as the Postgres writer's, so one report and one summary table serve both.

    Only information_schema and a COUNT(*) are read, so a user with SELECT alone can plan; the database
    of a per-PR schema is not created (it shows in the DDL instead).
    """
    import pymysql

    config, data, params, schema, name, mode, keys = _target(step, inputs, ctx)
    target = qualified(schema, name)
    conn = connect(params)
    try:
        with conn.cursor() as cursor:
            state, ddl, differences, rows = _inspect(cursor, ctx, config, data, schema, keys)
    except pymysql.MySQLError as exc:
        raise error_from(exc, params, f"inspecting {target}") from None
    finally:
        conn.close()
    if ddl:
        (ctx.artifacts_dir / "ddl.sql").write_text(ddl + ";\n", encoding="utf-8")
    ctx.report(
        "plan.target",
        table=name,
        schema=schema,
        state=state,
        ddl=ddl,
        differences=differences,
        mode=mode,
        effect=_effect(state, mode, keys, rows, bool(config.get("truncate_before")), ddl),
        channel="pymysql",
    )
    if ctx.diff or ctx.create_schema:
        base = ctx.base_schema or (ctx.connection or {}).get("schema") or params["database"]
        where = f"{base}.{name}" if ctx.create_schema else f"{schema}.{name}"
        what = "the written table" if ctx.create_schema else "the incoming rows"
        ctx.report("diff.planned", table=name, reason=_diff.planned(where, keys, what))
    return None


def _inspect(cursor, ctx: StepContext, config: dict, data, schema: str, keys: list[str]):
    """(state, ddl, differences, rows now in the table) of the target, from reads only."""
    import pymysql

    name = config["table"]
    target = qualified(schema, name)
    columns = _target_columns(cursor, schema, name)
    if columns is None:
        cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (schema,))
        database_exists = cursor.fetchone() is not None
        if not database_exists and not ctx.create_schema:
            return "incompatible", None, [f"database {schema} does not exist"], None
        if not config.get("create_table"):
            return "incompatible", None, ["the table does not exist and create_table is false"], None
        try:
            ddl = create_table_sql(target, data.schema, keys)
        except StepError as exc:
            return "incompatible", None, [exc.message], None
        if not database_exists:
            ddl = f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)};\n{ddl}"
        absent = [key for key in keys if key.lower() not in {n.lower() for n in data.schema.names}]
        differences = [f"upsert key not in the data: {', '.join(absent)}"] if absent else []
        return ("incompatible" if differences else "missing"), ddl, differences, 0
    differences = _differences(data.schema, columns, keys)
    if config.get("mode") == "upsert" and not differences:
        try:
            _check_unique_key(cursor, schema, name, keys, target)
        except StepError as exc:
            differences.append(exc.message)
    rows = None
    try:
        cursor.execute(f"SELECT COUNT(*) FROM {target}")
        rows = int(cursor.fetchone()[0])
    except pymysql.MySQLError:  # a writer may lack SELECT; the count is then unknown, not an error
        pass
    return ("incompatible" if differences else "compatible"), None, differences, rows


def _target_columns(cursor, schema: str, name: str) -> list[tuple] | None:
    """(name, data type, column type, nullable, has default) per column, or None for a missing table."""
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE = 'YES', "
        "COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%%auto_increment%%' OR GENERATION_EXPRESSION <> '' "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema, name),
    )
    return [tuple(row) for row in cursor.fetchall()] or None


# Which MySQL data types can hold the values of each kind of Arrow column. The server parses text into any
# type (a value it cannot parse fails the run, which a plan cannot foresee), and a type not listed anywhere
# (spatial types, say) is taken as fitting: the plan reports only what is bound to fail.
NUMERIC = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double", "bit", "year"}
TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
TEMPORAL = {"date", "datetime", "timestamp"}
ACCEPTS = {
    "number": NUMERIC | TEXT,
    "bool": NUMERIC | TEXT,
    "text": NUMERIC | TEXT | BINARY | TEMPORAL | {"time", "json"},
    "binary": BINARY,
    "date": TEMPORAL | TEXT,
    "timestamp": TEMPORAL | TEXT,
    "time": {"time"} | TEXT,
}
KNOWN = NUMERIC | TEXT | BINARY | TEMPORAL | {"time", "json"}


def _differences(arrow_schema, columns: list[tuple], keys: list[str]) -> list[str]:
    """How the data and an existing table disagree: missing columns, types that cannot hold the values,
    NOT NULL columns the data leaves empty, upsert keys the data lacks."""
    by_name = {column[0].lower(): column for column in columns}
    names = {field.name.lower() for field in arrow_schema}
    missing = [field.name for field in arrow_schema if field.name.lower() not in by_name]
    wrong = []
    for field in arrow_schema:
        column = by_name.get(field.name.lower())
        kind = _kind(field)
        if column is None or kind is None or column[1] not in KNOWN:
            continue
        if column[1] not in ACCEPTS.get(kind, set()):
            wrong.append(f"{field.name} ({field.type} into {column[2]})")
    required = [c[0] for c in columns if not c[3] and not c[4] and c[0].lower() not in names]
    absent = [key for key in keys if key.lower() not in names]
    problems = []
    if missing:
        problems.append(f"not in the table: {', '.join(missing)}")
    if wrong:
        problems.append(f"incompatible types: {', '.join(wrong)}")
    if required:
        problems.append(f"NOT NULL columns without a default missing from the data: {', '.join(required)}")
    if absent:
        problems.append(f"upsert key not in the data: {', '.join(absent)}")
    return problems


def _kind(field) -> str | None:
    """The family of an Arrow column (None: a null column, which fits anywhere, or one we cannot judge)."""
    import pyarrow as pa

    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    if isinstance(kind, pa.BaseExtensionType):
        kind = kind.storage_type
    checks = [
        (pa.types.is_boolean, "bool"),
        (lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t), "number"),
        (
            lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t),
            "text",
        ),
        (
            lambda t: (
                pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            ),
            "binary",
        ),
        (pa.types.is_date, "date"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_time, "time"),
    ]
    return next((name for check, name in checks if check(kind)), None)


def _effect(state: str, mode: str, keys: list[str], rows: int | None, truncate: bool, ddl: str | None) -> str:
    """What the write would do, in words: the row count a replace would delete, the key an upsert uses."""
    steps = []
    if ddl and ddl.startswith("CREATE DATABASE"):
        steps.append("create the database")
    if state == "missing":
        steps.append("create the table")
    elif mode == "replace" or truncate:
        steps.append("delete every row")
    if mode == "upsert":
        steps.append(f"insert new rows and update existing ones on ({', '.join(keys)})")
    else:
        steps.append("insert the incoming rows")
    effect = ", then ".join(steps) + " in one transaction"
    if state != "missing" and (mode == "replace" or truncate) and rows is not None:
        effect += f" (replacing the {rows:,} row{'' if rows == 1 else 's'} now in the table)"
    return effect


def _prepare_table(cursor, ctx: StepContext, config: dict, data, schema: str, params: dict) -> bool:
    """Check (or create, with create_table) the target table; True when this step created it."""
    name, keys = config["table"], list(config.get("upsert_keys") or [])
    target = qualified(schema, name)
    existing = _table_columns(cursor, schema, name)
    if existing is None:
        if not config.get("create_table"):
            raise StepError(
                f"Table {target} does not exist on MySQL at {params['host']}:{params['port']}.",
                "Create it first, or set create_table: true to create it from the input's columns.",
            )
        ddl = create_table_sql(target, data.schema, keys)
        path = ctx.artifacts_dir / "ddl.sql"
        path.write_text(ddl + ";\n", encoding="utf-8")
        event = {"table": name, "schema": schema, "sql": ddl, "ddl_path": str(path)}
        ctx.report("table.ddl_planned", **event, executed=False)
        _check_columns(data.schema.names, data.schema.names, target, keys)
        if ctx.plan_only:
            return False
        cursor.execute(ddl)  # DDL commits by itself in MySQL: on a later failure the table is dropped
        ctx.report("table.ddl_executed", **event, executed=True, channel="pymysql")
        return True
    _check_columns(data.schema.names, existing, target, keys)
    if config.get("mode") == "upsert":
        _check_unique_key(cursor, schema, name, keys, target)
    return False


def create_table_sql(target: str, schema, keys: list[str]) -> str:
    """CREATE TABLE from the Arrow schema; the upsert keys become the PRIMARY KEY."""
    lowered = {key.lower() for key in keys}
    lines = []
    for field in schema:
        is_key = field.name.lower() in lowered
        null = " NOT NULL" if is_key or not field.nullable else ""
        lines.append(f"  {quote_ident(field.name)} {_column_type(field, is_key)}{null}")
    if keys:
        lines.append(f"  PRIMARY KEY ({', '.join(quote_ident(key) for key in keys)})")
    return f"CREATE TABLE {target} (\n" + ",\n".join(lines) + f"\n) {TABLE_OPTIONS}"


def _from_stage(cursor, target: str, data, staged: str) -> int:
    """Apply the staged rows to the target; the rows the server reports as inserted."""
    columns = ", ".join(quote_ident(n) for n in data.schema.names)
    try:
        return cursor.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}")
    finally:
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {staged}")


def _input_table(inputs: dict, step_id: str):
    """The stream to write (a table is accepted too); it is read once, batch by batch."""
    from osiris_drivers._common import reader

    if not inputs:
        raise StepError(
            f"mysql.writer step '{step_id}' has no input to write.",
            "List the step that produces the rows under `needs`.",
        )
    return reader(next(iter(inputs.values())))


def _table_columns(cursor, schema: str, name: str) -> list[str] | None:
    cursor.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema, name),
    )
    return [row[0] for row in cursor.fetchall()] or None


def _column_type(field, is_key: bool) -> str:
    import pyarrow as pa

    kind = field.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if (field.metadata or {}).get(b"osiris.type") == b"json" or getattr(
        kind, "extension_name", ""
    ) == "arrow.json":
        sql = "JSON"
    elif pa.types.is_decimal(kind):
        if kind.precision > 65 or kind.scale > 30:
            raise StepError(
                f"Column '{field.name}' is {kind}: MySQL's DECIMAL holds at most 65 digits, 30 of them "
                "after the point.",
                "Round or cast the column in an upstream step, or create the table yourself.",
            )
        sql = f"DECIMAL({kind.precision},{kind.scale})"
    elif pa.types.is_timestamp(kind):
        sql = "DATETIME" if kind.unit == "s" else "DATETIME(6)"
    elif pa.types.is_time(kind):
        sql = "TIME" if kind.unit == "s" else "TIME(6)"
    elif pa.types.is_fixed_size_binary(kind) and kind.byte_width <= 255:
        sql = f"BINARY({kind.byte_width})"
    elif str(kind) in DDL_TYPES:
        sql = DDL_TYPES[str(kind)]
    else:
        raise StepError(
            f"Column '{field.name}' has the Arrow type {kind}, which has no MySQL column type here.",
            "Convert it in an upstream duckdb step (e.g. to_json(col) for lists and structs).",
        )
    return KEY_TYPES.get(sql, sql) if is_key else sql


def _check_columns(names: list[str], existing: list[str], target: str, keys: list[str]) -> None:
    known = {column.lower() for column in existing}
    unknown = [name for name in names if name.lower() not in known]
    if unknown:
        raise StepError(
            f"Table {target} has no column {', '.join(map(repr, unknown))}; its columns are "
            f"{', '.join(existing)}.",
            "Rename or drop those columns in an upstream step, or add them to the table.",
        )
    sent = {name.lower() for name in names}
    missing_keys = [key for key in keys if key.lower() not in sent]
    if missing_keys:
        raise StepError(
            f"The upsert key {', '.join(map(repr, missing_keys))} is not a column of the input.",
            "upsert_keys must name columns that the input table has.",
        )


def _check_unique_key(cursor, schema: str, name: str, keys: list[str], target: str) -> None:
    """ON DUPLICATE KEY UPDATE matches on the table's unique indexes, so one must be exactly the keys."""
    cursor.execute(
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s AND NON_UNIQUE = 0",
        (schema, name),
    )
    indexes: dict[str, set[str]] = {}
    for index, column in cursor.fetchall():
        indexes.setdefault(index, set()).add(column.lower())
    if {key.lower() for key in keys} not in indexes.values():
        raise StepError(
            f"Table {target} has no PRIMARY KEY or UNIQUE index on exactly ({', '.join(keys)}), which "
            "upsert needs to find existing rows.",
            f"Add one (ALTER TABLE {target} ADD UNIQUE ({', '.join(quote_ident(k) for k in keys)})), or "
            "change upsert_keys to the columns of an existing unique key.",
        )


def _stage(cursor, target: str, data, sender: Sender) -> str:
    """A temporary copy of the table's shape holding the incoming rows (temporary: no implicit commit)."""
    stage = quote_ident(f"osiris_stage_{uuid.uuid4().hex[:12]}")
    cursor.execute(f"CREATE TEMPORARY TABLE {stage} LIKE {target}")
    sender.send(stage, data)
    return stage


def _upsert(cursor, target: str, data, keys: list[str], sender: Sender, staged=None) -> dict:
    """Merge from a temporary copy of the table; returns the rows inserted, updated and left unchanged.

    The server measures them: the rows whose key the table already holds are counted before the merge,
    and INSERT ... ON DUPLICATE KEY UPDATE reports 1 affected row per insert, 2 per update and 0 per row
    it left as it was (PyMySQL does not set CLIENT_FOUND_ROWS, which would count those as 1)."""
    stage = staged or _stage(cursor, target, data, sender)
    try:
        cursor.execute(f"SELECT COUNT(*) FROM {stage}")
        staged_rows = int(cursor.fetchone()[0])
        on = " AND ".join(f"s.{quote_ident(k)} = t.{quote_ident(k)}" for k in keys)
        cursor.execute(f"SELECT COUNT(*) FROM {stage} AS s JOIN {target} AS t ON {on}")
        matched = int(cursor.fetchone()[0])
        columns = ", ".join(quote_ident(name) for name in data.schema.names)
        lowered = {key.lower() for key in keys}
        updates = [quote_ident(n) for n in data.schema.names if n.lower() not in lowered] or [
            quote_ident(keys[0])
        ]
        affected = cursor.execute(
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} "
            f"ON DUPLICATE KEY UPDATE {', '.join(f'{c} = VALUES({c})' for c in updates)}"
        )
    finally:
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {stage}")
    inserted = staged_rows - matched
    updated = (affected - inserted) // 2
    return {"inserted": inserted, "updated": updated, "unchanged": matched - updated}


def _local_infile_allowed(params: dict) -> bool:
    """The connection may say `local_infile: false`: never offer LOAD DATA LOCAL to this server."""
    value = params.get("local_infile", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def _hint(exc) -> str | None:
    code = exc.args[0] if exc.args else None
    if code == DUPLICATE_KEY:
        return (
            "A row with the same key already exists (or the input repeats a key): use mode upsert with "
            "upsert_keys, or replace, or remove the duplicates upstream. Nothing was written."
        )
    if code in BAD_VALUE:
        return "A value does not fit its column: cast it upstream or widen the column. Nothing was written."
    return None


def _undo(conn, created: bool, target: str) -> None:
    """Roll back; and drop a table this step created, so a failed run leaves the database as it found it."""
    try:
        conn.rollback()
        if created:
            with conn.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {target}")
    except Exception:  # the connection may be gone; the original error is the one to report
        pass
