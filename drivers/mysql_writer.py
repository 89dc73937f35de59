"""mysql.writer: write an Arrow table into MySQL/MariaDB (append, replace, upsert), in one transaction."""

from __future__ import annotations

import tempfile
import uuid

from osiris_drivers import _diff
from osiris_drivers._common import StepContext, StepError
from osiris_drivers._mysql import (
    CONNECTION_FIELDS,
    CONNECTION_POLICY,
    connect,
    connection_params,
    error_from,
    qualified,
    quote_ident,
)

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
            "pool_size": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "pool_recycle": {"type": "integer", "minimum": 60, "default": 3600},
            "echo": {"type": "boolean", "default": False},
        },
    },
    "constraints": [{"when": {"mode": ["upsert"]}, "require": "upsert_keys"}],
    "requires": ["pyarrow", "pymysql"],
    "helpers": ["_mysql.py", "_diff.py"],
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

# How rows reach the server: LOAD DATA LOCAL INFILE of an Arrow-written CSV is the bulk path; multi-row
# INSERTs are the fallback for servers with local_infile off.
LOAD_DATA = (
    "LOAD DATA LOCAL INFILE {path} INTO TABLE {table} CHARACTER SET utf8mb4 "
    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
    "({targets}){assignments}"
)
CSV_NULL = "NULL"  # written unquoted; every string is quoted, so the text 'NULL' stays text


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
    """
    import pyarrow as pa
    import pymysql

    config, data, params, schema, name, mode, keys = _target(step, inputs, ctx)
    target, where = qualified(schema, name), {"table": name, "schema": schema, "mode": mode}
    conn = connect(params, local_infile=True, autocommit=False)
    created = False
    try:
        with conn.cursor() as cursor:
            if ctx.create_schema and not ctx.plan_only:  # the run's own database; commits by itself
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(schema)}")
            created = _prepare_table(cursor, ctx, config, data, schema, params)
            if ctx.plan_only:
                ctx.report("write.complete", **where, rows_written=0, channel_used="none", plan_only=True)
                return None
            cursor.execute("SELECT @@local_infile")
            method = "load_data" if cursor.fetchone()[0] else "insert"
            stats: dict = {}
            conn.begin()
            staged = compared = None
            if ctx.diff and not ctx.create_schema:  # stage, compare with the table, then apply from the stage
                staged = _stage(cursor, target, data, method, config["batch_size"])
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
                counts = _upsert(cursor, target, data, keys, method, config["batch_size"], staged)
                written = counts["inserted"] + counts["updated"]
                stats.update(counts)
            else:
                written = copy_rows(cursor, target, data, method, config["batch_size"], staged)
                stats.update(inserted=written, updated=0, unchanged=0)
                if staged:
                    cursor.execute(f"DROP TEMPORARY TABLE {staged}")
            conn.commit()
    except BaseException as exc:
        _undo(conn, created, target)
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
        "write.complete", **where, rows_in=data.num_rows, rows_written=written, channel_used=channel, **stats
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


def copy_rows(cursor, target: str, data, method: str, batch_size: int, staged: str | None = None) -> int:
    """Send every row into `target` (from `staged`, a temporary copy already loaded, when given); returns
    the rows the server reports as inserted."""
    if staged is not None:
        columns = ", ".join(quote_ident(n) for n in data.schema.names)
        return cursor.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}")
    if data.num_rows == 0:
        return 0
    data = _plain(data)
    if method == "insert":
        return _insert_rows(cursor, target, data, batch_size)
    return _load_rows(cursor, target, data)


def _input_table(inputs: dict, step_id: str):
    if not inputs:
        raise StepError(
            f"mysql.writer step '{step_id}' has no input to write.",
            "List the step that produces the rows under `needs`.",
        )
    return next(iter(inputs.values()))


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


def _stage(cursor, target: str, data, method: str, batch_size: int) -> str:
    """A temporary copy of the table's shape holding the incoming rows (temporary: no implicit commit)."""
    stage = quote_ident(f"osiris_stage_{uuid.uuid4().hex[:12]}")
    cursor.execute(f"CREATE TEMPORARY TABLE {stage} LIKE {target}")
    copy_rows(cursor, stage, data, method, batch_size)
    return stage


def _upsert(cursor, target: str, data, keys: list[str], method: str, batch_size: int, staged=None) -> dict:
    """Merge from a temporary copy of the table; returns the rows inserted, updated and left unchanged.

    The server measures them: the rows whose key the table already holds are counted before the merge,
    and INSERT ... ON DUPLICATE KEY UPDATE reports 1 affected row per insert, 2 per update and 0 per row
    it left as it was (PyMySQL does not set CLIENT_FOUND_ROWS, which would count those as 1)."""
    stage = staged or _stage(cursor, target, data, method, batch_size)
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


def _plain(data):
    """Types both paths can send: UTC wall time for zoned timestamps, microseconds, 0/1 for booleans."""
    import pyarrow as pa

    columns = []
    for column in data.columns:
        kind = column.type
        if isinstance(kind, pa.BaseExtensionType):  # e.g. arrow.json: its storage is what travels
            column, kind = (
                pa.chunked_array([c.storage for c in column.chunks], kind.storage_type),
                kind.storage_type,
            )
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_timestamp(kind) and (kind.tz or kind.unit == "ns"):
            column = column.cast(pa.timestamp("us" if kind.unit == "ns" else kind.unit), safe=False)
        elif pa.types.is_time(kind) and kind.unit == "ns":
            column = column.cast(pa.time64("us"), safe=False)
        elif pa.types.is_date64(kind):
            column = column.cast(pa.date32())
        elif pa.types.is_boolean(kind):
            column = column.cast(pa.int8())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=data.schema.names)


def _load_rows(cursor, target: str, data) -> int:
    """LOAD DATA LOCAL INFILE of a CSV that pyarrow writes; binary columns travel as hex."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    binary_kinds = (
        pa.types.is_binary,
        pa.types.is_large_binary,
        pa.types.is_fixed_size_binary,
        pa.types.is_binary_view,
    )
    targets, assignments, columns = [], [], []
    for index, (name, column) in enumerate(zip(data.schema.names, data.columns, strict=True)):
        if any(is_kind(column.type) for is_kind in binary_kinds):
            targets.append(f"@v{index}")
            assignments.append(f"{quote_ident(name)} = UNHEX(@v{index})")
            column = pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())
        else:
            targets.append(quote_ident(name))
        columns.append(column)
    options = pacsv.WriteOptions(include_header=False, null_string=CSV_NULL, quoting_style="needed")
    with tempfile.TemporaryDirectory(prefix="osiris_mysql_") as folder:
        path = f"{folder}/rows.csv"
        pacsv.write_csv(pa.Table.from_arrays(columns, names=data.schema.names), path, options)
        sql = LOAD_DATA.format(
            path=cursor.connection.escape(path),
            table=target,
            targets=", ".join(targets),
            assignments=f" SET {', '.join(assignments)}" if assignments else "",
        )
        rows = cursor.execute(sql)
    cursor.execute("SHOW WARNINGS")
    warnings = [(code, message) for level, code, message in cursor.fetchall() if level != "Note"]
    if warnings:
        import pymysql

        code, message = warnings[0]
        more = f" (and {len(warnings) - 1} more warnings)" if len(warnings) > 1 else ""
        raise pymysql.err.DataError(code, message + more)
    return rows


def _insert_rows(cursor, target: str, data, batch_size: int) -> int:
    """Multi-row INSERTs, `batch_size` rows per call (PyMySQL folds executemany into one statement)."""
    names = ", ".join(quote_ident(name).replace("%", "%%") for name in data.schema.names)
    sql = f"INSERT INTO {target.replace('%', '%%')} ({names}) VALUES ({', '.join(['%s'] * data.num_columns)})"
    rows = 0
    for offset in range(0, data.num_rows, batch_size):
        chunk = data.slice(offset, batch_size)
        rows += cursor.executemany(sql, list(zip(*(c.to_pylist() for c in chunk.columns), strict=True)))
    return rows


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
