"""duckdb.processor: run one DuckDB SQL query over the upstream Arrow tables, zero-copy in and out."""

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


def run(step: dict, inputs: dict, ctx: StepContext):
    """Register every input table under each name the worker gave it, run the query, return its rows.

    Arrow goes in and out without a copy and without pandas, so DECIMAL stays decimal and timestamps
    keep their unit and zone; JSON columns keep their JSON mark (see MARK). The connection is locked
    (see _duckdb.py): the query sees its inputs and nothing else on the machine.
    """
    import duckdb
    from osiris_drivers._duckdb import connect

    query = step["config"]["query"]
    con = connect()
    try:
        for name, table in inputs.items():
            con.register(name, _json_typed(table))
        try:
            statements = duckdb.extract_statements(query)
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
                    hint="End the query with a SELECT: a transform's output is the result of its last "
                    "statement.",
                )
            for statement in setup:
                con.execute(statement)
            result = con.sql(last)
            return _marked(result.to_arrow_table(), [str(t) for t in result.types])
        except duckdb.Error as exc:
            raise _query_error(step["id"], exc, sorted(inputs)) from None
    finally:
        con.close()


def _json_typed(table):
    """The table with its JSON-marked text columns as Arrow JSON, over the same buffers."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        is_text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if (field.metadata or {}).get(MARK) != b"json" or not is_text:
            continue
        json_type = pa.json_(field.type)
        chunks = [pa.ExtensionArray.from_storage(json_type, chunk) for chunk in table.column(index).chunks]
        table = table.set_column(index, field.name, pa.chunked_array(chunks, json_type))
    return table


def _marked(table, duckdb_types: list[str]):
    """The result with JSON and UUID columns marked, so a writer downstream knows what the text holds."""
    import pyarrow as pa

    marks = {i: MARKS_BY_RESULT_TYPE[t] for i, t in enumerate(duckdb_types) if t in MARKS_BY_RESULT_TYPE}
    if not marks:
        return table
    schema = table.schema
    for index, mark in marks.items():
        schema = schema.set(index, schema.field(index).with_metadata({MARK: mark}))
    return pa.Table.from_arrays(table.columns, schema=schema)


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
