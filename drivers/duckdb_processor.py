"""duckdb.processor: run one DuckDB SQL query over the upstream Arrow streams, zero-copy in and out."""

from __future__ import annotations

from osiris_drivers._common import StepContext, StepError

SPEC = {
    "name": "duckdb.processor",
    "families": ["duckdb"],
    "modes": ["transform"],
    "connection": {},
    "secrets": [],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["query"],
        "properties": {"query": {"type": "string", "minLength": 1}},
    },
    "constraints": [],
    "requires": ["duckdb", "pyarrow"],
    "helpers": [],
}


# A transform must hand a table on: the query's last statement has to produce rows. DDL, SET, INSERT and
# the like may come before it (e.g. a CREATE TEMP TABLE the final SELECT reads).
RESULT_STATEMENTS = ("SELECT", "PRAGMA", "EXPLAIN", "CALL")

# Upstream drivers mark text columns that hold JSON, UUIDs or arbitrary-precision numbers with this field
# metadata, and writers create jsonb/uuid/numeric columns from it. DuckDB drops field metadata, so the
# mark is carried through DuckDB's own types: marked JSON goes in as DuckDB JSON, and every JSON or UUID
# column of the result comes out marked (a passthrough, to_json(...), uuid()). DuckDB has no type for
# unbounded numerics or for a UUID held as text, so those marks do not survive a query.
MARK = b"osiris.type"
MARKS_BY_RESULT_TYPE = {"JSON": b"json", "UUID": b"uuid"}

NAMING_HINT = (
    "Upstream steps are visible as df_<step id> (characters other than letters, digits and _ become _), "
    'under their own id (quote ids with hyphens: "extract-users"), and as input_df when the step has '
    "exactly one input."
)


# Rows per batch handed downstream: large enough that per-batch costs vanish, small enough to stay flat.
BATCH_ROWS = 100_000


def run(step: dict, inputs: dict, ctx: StepContext):
    """Register every input stream under each name the worker gave it, run the query, return its rows
    as a stream.

    Arrow goes in and out without a copy and without pandas, so DECIMAL stays decimal and timestamps
    keep their unit and zone; JSON columns keep their JSON mark (see MARK). Rows flow through: DuckDB
    reads its inputs as the result is pulled, so the query's memory is what it must hold (a sort, the
    build side of a join), not its inputs. An input the query reads more than once (a self-join, a
    subquery over the same table) is spilled once to an Arrow IPC file and scanned from there. The
    connection is locked (see _duckdb.py): the query sees its inputs and nothing else on the machine.
    """
    import duckdb
    from osiris_drivers._common import reader
    from osiris_drivers._duckdb import connect

    query = step["config"]["query"]
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise _query_error(step["id"], exc, sorted(inputs)) from None
    if not statements:
        raise StepError(
            f"The DuckDB query of step '{step['id']}' holds no SQL statement.",
            hint="Write a SELECT whose rows become the step's output.",
        )
    *setup, last = statements
    if last.type.name not in RESULT_STATEMENTS:
        raise StepError(
            f"The DuckDB query of step '{step['id']}' ends with a {last.type.name} statement, "
            "which returns no rows.",
            hint="End the query with a SELECT: a transform's output is the result of its last statement.",
        )
    streams = {id(value): reader(value) for value in inputs.values()}
    names_of: dict[int, list[str]] = {}
    for name, value in inputs.items():
        names_of.setdefault(id(value), []).append(name)
    con = connect()
    spilled: list = []
    try:
        scans = _scans(con, query, len(statements), names_of)
        for key, stream in streams.items():
            source = _spilled(stream, ctx, spilled) if scans.get(key, 2) > 1 else _json_typed(stream)
            for name in names_of[key]:
                con.register(name, source)
        try:
            for statement in setup:
                con.execute(statement)
            result = con.sql(last)
            types = [str(t) for t in result.types]
            out = result.to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise _query_error(step["id"], exc, sorted(inputs)) from None
    except BaseException:
        _close(con, spilled)
        raise
    return _marked(out, types, con, spilled, step["id"], sorted(inputs))


def _scans(con, query: str, statements: int, names_of: dict[int, list[str]]) -> dict[int, int]:
    """How often the query reads each input (by the id of its reader): the table references in DuckDB's
    own parse tree. An input is taken as read more than once (so it is spilled) whenever that cannot be
    known for sure: several statements, a table function (query_table('input_df')), a common table
    expression that is referenced twice, or SQL that DuckDB cannot serialise."""
    import json

    if statements != 1:
        return {}
    tree = json.loads(con.execute("SELECT json_serialize_sql($1)", [query]).fetchall()[0][0])
    if tree.get("error"):
        return {}
    tables: dict[str, int] = {}
    ctes: set[str] = set()
    unsure = False

    def walk(node) -> None:
        nonlocal unsure
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "TABLE_FUNCTION":
                unsure = True
            elif kind == "BASE_TABLE" and _unqualified(node):
                name = str(node.get("table_name", "")).lower()
                tables[name] = tables.get(name, 0) + 1
            for entry in (node.get("cte_map") or {}).get("map", []):
                ctes.add(str(entry.get("key", "")).lower())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree["statements"])
    if unsure or any(tables.get(name, 0) > 1 for name in ctes):
        return {}
    return {key: sum(tables.get(n.lower(), 0) for n in names) for key, names in names_of.items()}


def _unqualified(node: dict) -> bool:
    """A table reference that can name a registered input: no schema or catalog other than the default."""
    return node.get("schema_name", "") in ("", "main", "temp") and node.get("catalog_name", "") in (
        "",
        "memory",
        "temp",
    )


def _spilled(stream, ctx: StepContext, spilled: list):
    """An input the query reads more than once: written once to an IPC file and scanned from there."""
    import tempfile
    from pathlib import Path

    from osiris_drivers._common import scannable, spill

    folder = Path(ctx.spill_dir) if ctx.spill_dir else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix="duckdb-input-", suffix=".arrow")
    import os

    os.close(handle)
    path = Path(name)
    spilled.append(path)
    spill(_json_typed(stream), path)
    return scannable(path)


def _close(con, spilled: list) -> None:
    con.close()
    for path in spilled:
        path.unlink(missing_ok=True)


def _json_typed(stream):
    """The stream with its JSON-marked text columns as Arrow JSON, over the same buffers."""
    import pyarrow as pa
    from osiris_drivers._common import mapped

    marked = []
    for index, field in enumerate(stream.schema):
        is_text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if (field.metadata or {}).get(MARK) == b"json" and is_text:
            marked.append(index)
    if not marked:
        return stream
    schema = stream.schema
    for index in marked:
        field = schema.field(index)
        schema = schema.set(index, field.with_type(pa.json_(field.type)))

    def convert(batch):
        columns = list(batch.columns)
        for index in marked:
            columns[index] = pa.ExtensionArray.from_storage(schema.field(index).type, columns[index])
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    return mapped(stream, schema, convert)


def _marked(out, duckdb_types: list[str], con, spilled: list, step_id: str, available: list[str]):
    """The result stream with JSON and UUID columns marked, so a writer downstream knows what the text
    holds; the connection closes (and spilled inputs go) when the last batch has been read."""
    import duckdb
    import pyarrow as pa

    marks = {i: MARKS_BY_RESULT_TYPE[t] for i, t in enumerate(duckdb_types) if t in MARKS_BY_RESULT_TYPE}
    schema = out.schema
    for index, mark in marks.items():
        schema = schema.set(index, schema.field(index).with_metadata({MARK: mark}))

    def batches():
        try:
            for batch in out:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema) if marks else batch
        except duckdb.Error as exc:
            raise _query_error(step_id, exc, available) from None
        finally:
            out.close()
            _close(con, spilled)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _query_error(step_id: str, exc: Exception, available: list[str]) -> StepError:
    message = f"DuckDB query of step '{step_id}' failed: {str(exc).strip()}"
    # a file, an extension, another database or a setting: locked away (drivers/_duckdb.py)
    if type(exc).__name__ == "PermissionException" or "configuration has been locked" in str(exc):
        return StepError(
            f"step '{step_id}': the query reaches outside its inputs, which is not allowed "
            f"({str(exc).strip().splitlines()[0]})",
            hint="A query reads only the tables of its upstream steps: files, extensions, other databases "
            "and settings are off. Read files with a filesystem.csv_extractor step.",
        )
    if "Table with name" not in str(exc):
        return StepError(message, hint="Fix the SQL; the message above is DuckDB's own.")
    if available:
        return StepError(f"{message}\nTables available to this query: {', '.join(available)}.", NAMING_HINT)
    return StepError(
        f"{message}\nNo tables are available to this query: the step has no inputs.",
        hint="List the upstream step under `needs` so that its table becomes visible. " + NAMING_HINT,
    )
