"""DuckDB SQL checks: DuckDB's own parser finds syntax errors and the tables a query reads.

A syntax error's offset inside the query is mapped back to the line and column of the YAML file, also
inside a `|` block scalar, so the annotation lands on the exact character.

The parsing runs in a child process of its own (`python -m osiris_action.oml.sql`, one JSON line per
file in and out), for three reasons: a stranger's SQL never reaches DuckDB in the process that holds the
runner's secrets (the child gets a scrubbed environment); a parser that crashes or hangs on hostile
input costs a finding, not the command; and the host of a run never loads DuckDB, whose library pages
(about 50 MB) would otherwise stay resident beside the worker's for the whole run (`close()` ends the
child before the worker starts).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # the parsing child imports only what parsing needs
    from osiris_action.diagnostics import Span
    from osiris_action.oml.load import Document


class SqlFinding(NamedTuple):
    offset: int
    length: int
    severity: str
    code: str
    message: str
    hint: str


# A parse of even a huge query takes well under a second; past this the parser is taken to be stuck.
PARSE_TIMEOUT_S = 30.0
_CHILD_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH")


class _Parser:
    """The host's end of the parsing child: started on first use, one request at a time (the action
    validates several pipelines from threads), restarted after it failed."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def ask(self, queries: list[tuple[str, set[str] | None]]) -> list | str:
        """The child's answer for these queries, or why there is none."""
        request = json.dumps(
            [[query, None if tables is None else sorted(tables)] for query, tables in queries]
        )
        with self._lock:
            self._start()
            proc = self._proc
            try:
                proc.stdin.write(request + "\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], PARSE_TIMEOUT_S)
                line = proc.stdout.readline() if ready else None
            except OSError:  # the child is gone: a broken pipe
                line = ""
            if line:
                return json.loads(line)
            self._stop()
            if line is None:
                return f"DuckDB's parser did not finish within {PARSE_TIMEOUT_S:g} s"
            return f"DuckDB's parser stopped (exit status {proc.returncode})"

    def start(self) -> None:
        with self._lock:
            self._start()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> None:
        if self._proc is None:
            env = {k: os.environ[k] for k in _CHILD_ENV if k in os.environ}
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __spec__.name],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                text=True,
                encoding="utf-8",
            )

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()  # it holds nothing worth a clean exit, which would cost a run ~30 ms
        proc.wait()
        with contextlib.suppress(OSError):  # a dead child's pipe refuses what is still buffered
            proc.stdin.close()
        proc.stdout.close()


_parser = _Parser()


def start() -> None:
    """Start the parsing child now, so that its start-up overlaps the caller's (a command's imports)."""
    _parser.start()


def close() -> None:
    """End the parsing child now (it is started again when needed): before a run's worker starts."""
    _parser.close()


# What a query could use to reach beyond its inputs: files, other databases, extensions, settings. The
# worker's DuckDB refuses all of it at run time (drivers/_duckdb.py); validation says so on the line,
# before anything runs.
HOST_FUNCTIONS = frozenset(
    {
        "read_text", "read_blob", "read_csv", "read_csv_auto", "read_parquet", "parquet_scan",
        "read_json", "read_json_auto", "read_ndjson", "read_ndjson_auto", "read_json_objects",
        "read_json_objects_auto", "read_ndjson_objects", "glob", "sniff_csv", "parquet_metadata",
        "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata", "read_xlsx", "delta_scan",
        "iceberg_scan", "sqlite_scan", "postgres_scan", "mysql_scan", "duckdb_secrets",
        "duckdb_extensions",
    }
)  # fmt: skip
HOST_STATEMENTS = frozenset({"COPY", "ATTACH", "DETACH", "LOAD", "EXPORT", "COPY_DATABASE", "PRAGMA", "SET"})
_FILE_NAME = re.compile(r"/|\.(?:csv|tsv|txt|parquet|json|ndjson|jsonl|gz|zst|db|duckdb|xlsx)$", re.I)
_HOST_HINT = (
    "A query reads only the tables of its upstream steps: files, extensions, other databases and "
    "settings are off. Read a file with a filesystem.csv_extractor step and list it under `needs`."
)


_connection = None


def _database():
    """The child's DuckDB connection. Only parsing happens here: no query ever runs; the connection is the
    worker's locked one all the same."""
    global _connection
    if _connection is None:
        from osiris_drivers._duckdb import connect

        _connection = connect(threads=1)
    return _connection


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
    answer = _parser.ask(queries)
    if isinstance(answer, str):
        hint = "Simplify the query: the run's DuckDB would fail on it the same way."
        return [[SqlFinding(0, 1, "error", "OML060", f"{answer} on this query", hint)] for _ in queries]
    return [[SqlFinding(*finding) for finding in findings] for findings in answer]


def _check_all(queries: list[tuple[str, set[str] | None]]) -> list[list[SqlFinding]]:
    """In the child: check_queries itself."""
    rows = _database().execute(_SERIALIZE, [[query for query, _ in queries]]).fetchall()
    results = [json.loads(raw) for (raw,) in rows]
    return [_check(query, tables, result) for (query, tables), result in zip(queries, results, strict=True)]


def _serve() -> None:
    """The child's loop: a JSON list of [query, tables or null] per line in, the findings per line out."""
    _database()  # ready before the first request: the host starts this process early for that
    for line in sys.stdin:
        queries = [(query, None if tables is None else set(tables)) for query, tables in json.loads(line)]
        found = _check_all(queries)
        sys.stdout.write(json.dumps(found) + "\n")
        sys.stdout.flush()


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
    ctes: set[str] = set()
    tables: list[tuple[str, int]] = []
    functions: list[tuple[str, int]] = []
    _walk(result.get("statements", []), ctes, tables, functions)
    findings = [
        _host_finding(query, offset, len(name), f"the query calls {name}(), which reads outside its inputs")
        for name, offset in functions
        if name.lower() in HOST_FUNCTIONS
    ]
    for name, offset in tables:
        if name.lower() in ctes:
            continue
        if _FILE_NAME.search(name):  # `FROM '/etc/passwd'`: DuckDB would read the file as a table
            findings.append(
                _host_finding(query, offset, len(name), f"the query reads the file '{name}' as a table")
            )
        elif provided is not None and name.lower() not in {n.lower() for n in provided}:
            findings.append(_missing_table(query, offset, name, provided))
    return findings


def _missing_table(query: str, byte_offset: int, name: str, provided: set[str]) -> SqlFinding:
    available = ", ".join(sorted(provided)) or "none (this step has no inputs)"
    return SqlFinding(
        _char_offset(query, byte_offset),
        len(name),
        "warning",
        "OML061",
        f"the query reads table '{name}', which no upstream step provides",
        f"Upstream tables visible here: {available}. Add the producing step to `needs`.",
    )


def _host_finding(query: str, byte_offset: int, length: int, message: str) -> SqlFinding:
    return SqlFinding(_char_offset(query, byte_offset), length, "error", "OML063", message, _HOST_HINT)


def _char_offset(query: str, byte_offset: int) -> int:
    """DuckDB reports positions in UTF-8 bytes; the YAML text is indexed by characters."""
    return len(query.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


def _statement_check(query: str) -> list[SqlFinding]:
    import duckdb

    try:
        statements = _database().extract_statements(query)
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
    host = []
    for statement in statements:
        kind = statement.type.name
        text = statement.query.strip()
        if kind in HOST_STATEMENTS and not (kind == "SET" and re.match(r"(?i)set\s+variable\b", text)):
            offset = max(query.find(text), 0)
            word = text.split(None, 1)[0] if text else kind
            message = f"the query runs {word.upper()}, which reaches outside its inputs"
            host.append(SqlFinding(offset, len(word), "error", "OML063", message, _HOST_HINT))
    if host:
        return host
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


def _walk(node, ctes: set[str], tables: list[tuple[str, int]], functions: list[tuple[str, int]]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("table_name"):
            tables.append((node["table_name"], int(node.get("query_location") or 0)))  # UTF-8 bytes
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            name = str(node["function"].get("function_name") or "")
            functions.append((name, int(node.get("query_location") or 0)))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(entry.get("key", "")).lower() for entry in cte_map.get("map", []))
        for value in node.values():
            _walk(value, ctes, tables, functions)
    elif isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables, functions)


def locate(doc: Document, path: tuple, query: str, offset: int, length: int = 1) -> Span:
    """The file position of character `offset` of the scalar at `path`, in any YAML scalar style.

    YAML changes only white space (folding, indentation), quotes and escapes between the source and the
    value, so walking both in step and skipping those characters in the source lands on the character
    that produced value[offset]. Where the two cannot be aligned (an escape like `\\n`), the start of the
    value is the honest answer.
    """
    from osiris_action.diagnostics import Span

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


if __name__ == "__main__":
    _serve()
