"""DuckDB SQL checks: DuckDB's own parser finds syntax errors and the tables a query reads.

A syntax error's offset inside the query is mapped back to the line and column of the YAML file, also
inside a `|` block scalar, so the annotation lands on the exact character.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass

from osiris_action.diagnostics import Span
from osiris_action.oml.load import Document


@dataclass(frozen=True)
class SqlFinding:
    offset: int
    length: int
    severity: str
    code: str
    message: str
    hint: str


@functools.cache
def _database():
    from osiris_drivers._duckdb import connect

    # Only parsing happens here: no query ever runs; the connection is the worker's locked one all the same.
    return connect(threads=1)


_per_thread = threading.local()


def _connection():
    """A cursor of its own for each thread: a DuckDB connection refuses a second caller while busy, and
    the action compiles several pipelines at once."""
    if not hasattr(_per_thread, "cursor"):
        _per_thread.cursor = _database().cursor()
    return _per_thread.cursor


# One call for all the queries of a file (for a short query the call costs as much as the parse), and
# without nulls, empty lists and defaults, which halves the JSON to build and read.
_SERIALIZE = (
    "SELECT json_serialize_sql(unnest(?::VARCHAR[]), "
    "skip_null := true, skip_empty := true, skip_default := true)"
)


def check_queries(queries: list[tuple[str, set[str] | None]]) -> list[list[SqlFinding]]:
    """For each (query, tables its step can read): syntax errors (OML060), non-SELECT queries (OML062) and
    tables no upstream step provides (OML061).

    The tables are None when the step's inputs are unknown (its `needs` are broken, already an error):
    then every table would look missing, so tables are not checked.
    """
    if not queries:
        return []
    rows = _connection().execute(_SERIALIZE, [[query for query, _ in queries]]).fetchall()
    results = [json.loads(raw) for (raw,) in rows]
    return [_check(query, tables, result) for (query, tables), result in zip(queries, results, strict=True)]


def _check(query: str, provided: set[str] | None, result: dict) -> list[SqlFinding]:
    if result.get("error"):
        if result.get("error_type") == "parser":
            offset = _char_offset(query, int(result.get("position") or 0))
            near = re.search(r'at or near "(.+)"', result.get("error_message", ""))
            return [
                SqlFinding(
                    offset,
                    len(near.group(1)) if near and query.startswith(near.group(1), offset) else 1,
                    "error",
                    "OML060",
                    f"DuckDB syntax error: {result['error_message']}",
                    "Fix the SQL at this position; DuckDB parsed the query exactly as the run will.",
                )
            ]
        return _statement_check(query)
    if provided is None:
        return []
    known = {name.lower() for name in provided}
    ctes: set[str] = set()
    tables: list[tuple[str, int]] = []
    _walk(result.get("statements", []), ctes, tables)
    findings = []
    for name, offset in tables:
        if name.lower() in known or name.lower() in ctes:
            continue
        offset = _char_offset(query, offset)
        available = ", ".join(sorted(provided)) or "none (this step has no inputs)"
        findings.append(
            SqlFinding(
                offset,
                len(name),
                "warning",
                "OML061",
                f"the query reads table '{name}', which no upstream step provides",
                f"Upstream tables visible here: {available}. Add the producing step to `needs`.",
            )
        )
    return findings


def _char_offset(query: str, byte_offset: int) -> int:
    """DuckDB reports positions in UTF-8 bytes; the YAML text is indexed by characters."""
    return len(query.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def _statement_check(query: str) -> list[SqlFinding]:
    import duckdb

    try:
        _connection().extract_statements(query)  # this thread's cursor, not the shared default one
    except duckdb.Error as exc:
        return [
            SqlFinding(
                _offset_from_message(query, str(exc)),
                1,
                "error",
                "OML060",
                f"DuckDB syntax error: {str(exc).splitlines()[0]}",
                "Fix the SQL at this position.",
            )
        ]
    return [
        SqlFinding(
            0,
            1,
            "warning",
            "OML062",
            "the query is not a SELECT, so the step produces no table",
            "A duckdb.processor step must return rows: write a SELECT (or WITH ... SELECT).",
        )
    ]


def _offset_from_message(query: str, message: str) -> int:
    """DuckDB prints `LINE n: <text>` and a caret line under it; turn that into an offset."""
    lines = message.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"LINE (\d+): ", line)
        if match and i + 1 < len(lines) and "^" in lines[i + 1]:
            col = lines[i + 1].index("^") - len(match.group(0))
            starts = [0] + [m.end() for m in re.finditer("\n", query)]
            row = min(int(match.group(1)) - 1, len(starts) - 1)
            return starts[row] + max(col, 0)
    return 0


def _walk(node, ctes: set[str], tables: list[tuple[str, int]]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("table_name"):
            tables.append((node["table_name"], int(node.get("query_location") or 0)))  # UTF-8 bytes
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(entry.get("key", "")).lower() for entry in cte_map.get("map", []))
        for value in node.values():
            _walk(value, ctes, tables)
    elif isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables)


def locate(doc: Document, path: tuple, query: str, offset: int, length: int = 1) -> Span:
    """The file position of character `offset` of the scalar at `path`, in any YAML scalar style.

    YAML changes only white space (folding, indentation), quotes and escapes between the source and the
    value, so walking both in step and skipping those characters in the source lands on the character
    that produced value[offset]. Where the two cannot be aligned (an escape like `\\n`), the start of the
    value is the honest answer.
    """
    start = doc.span(path)
    lines = doc.lines
    if not 0 < start.line <= len(lines):
        return start
    style = lines[start.line - 1][start.col - 1 : start.col]
    skip = " \t\r\n"
    if style in ("|", ">"):
        row, col = start.line + 1, 1
    elif style in ("'", '"'):
        row, col = start.line, start.col + 1
        skip += "'" if style == "'" else "\\"
    else:
        row, col = start.line, start.col
    last = min(start.end_line or len(lines), len(lines))

    def char() -> str:
        line = lines[row - 1]
        return line[col - 1] if col <= len(line) else "\n"

    def advance() -> None:
        nonlocal row, col
        row, col = (row, col + 1) if col <= len(lines[row - 1]) else (row + 1, 1)

    for index, wanted in enumerate(query[: offset + 1]):
        while row <= last and char() != wanted:
            if char() not in skip:
                return start
            advance()
        if row > last:
            return start
        if index == offset:
            break
        advance()
    if row > last:
        return start
    return Span(row, col, row, col + max(length, 1))
