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

NAMING_HINT = (
    "Upstream steps are visible as df_<step id> (characters other than letters, digits and _ become _), "
    'under their own id (quote ids with hyphens: "extract-users"), and as input_df when the step has '
    "exactly one input."
)


def run(step: dict, inputs: dict, ctx: StepContext):
    """Register every input table under each name the worker gave it, run the query, return its rows.

    Arrow goes in and out without a copy and without pandas, so DECIMAL stays decimal and timestamps
    keep their unit and zone. The session time zone is UTC so that TIMESTAMPTZ results do not depend on
    the machine that runs the pipeline.
    """
    import duckdb

    query = step["config"]["query"]
    con = duckdb.connect(":memory:", config={"threads": 2})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, table in inputs.items():
            con.register(name, table)
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
            return con.sql(last).to_arrow_table()
        except duckdb.Error as exc:
            raise _query_error(step["id"], exc, sorted(inputs)) from None
    finally:
        con.close()


def _query_error(step_id: str, exc: Exception, available: list[str]) -> StepError:
    message = f"DuckDB query of step '{step_id}' failed: {str(exc).strip()}"
    if "Table with name" not in str(exc):
        return StepError(message, hint="Fix the SQL; the message above is DuckDB's own.")
    if available:
        return StepError(f"{message}\nTables available to this query: {', '.join(available)}.", NAMING_HINT)
    return StepError(
        f"{message}\nNo tables are available to this query: the step has no inputs.",
        hint="List the upstream step under `needs` so that its table becomes visible. " + NAMING_HINT,
    )
