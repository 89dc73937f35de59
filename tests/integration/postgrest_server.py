"""A small PostgREST stand-in for tests, backed by a real Postgres database.

PostgREST itself is a Haskell binary that is not installed here, so this serves the few calls the
supabase drivers make, with PostgREST's URLs, headers and error bodies, and runs them as real SQL:

- GET/HEAD /rest/v1/<table>?select=a,b&col=op.value&order=a.desc&limit=n&offset=m (or a Range header);
  Content-Range `first-last/*`, and `*/N` with `Prefer: count=exact`
- POST /rest/v1/<table>: a JSON array inserted through json_populate_recordset, like PostgREST;
  `Prefer: resolution=merge-duplicates|ignore-duplicates` with `on_conflict=a,b` makes it an upsert
- DELETE /rest/v1/<table>?col=op.value; a DELETE without a filter is refused, as Supabase's
  pg-safeupdate does
- Accept-Profile / Content-Profile pick the schema; the apikey header must match the key

Each request is one transaction on its own connection. `fail_next(n, status, retry_after)` answers the
next n requests with that status (and does nothing else), to test retries. Listens on 127.0.0.1, port 0.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql

OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# SQLSTATE class or code → HTTP status, as PostgREST maps them.
STATUS = {"23505": 409, "23503": 409, "42501": 403, "42P01": 404, "21000": 400, "P0001": 400}
STATUS_CLASS = {"22": 400, "23": 400, "42": 400, "08": 503, "53": 503, "57": 503}


class PostgrestServer:
    def __init__(
        self, dsn: str, key: str, schemas: tuple[str, ...] = ("public",), max_rows: int | None = None
    ):
        self.dsn = dsn
        self.key = key
        self.exact_counts = True
        self.schemas = schemas
        self.max_rows = max_rows
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path?query, headers)
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PostgrestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail_next(self, count: int = 1, status: int = 503, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def _take_failure(self) -> tuple[int, str | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def _handler(server: PostgrestServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append((method, self.path, dict(self.headers)))
            failure = server._take_failure()
            if failure is not None:
                status, retry_after = failure
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return self._reply(status, {"message": "Service Unavailable (injected)"}, method, headers)
            if (
                self.headers.get("apikey") != server.key
                or self.headers.get("Authorization") != f"Bearer {server.key}"
            ):
                return self._reply(401, {"code": None, "message": "Invalid API key", "details": None}, method)
            parts = urlsplit(self.path)
            match = re.fullmatch(r"/rest/v1/([^/]+)", parts.path)
            if not match:
                return self._reply(404, {"code": "PGRST125", "message": "Invalid path"}, method)
            profile = self.headers.get("Accept-Profile" if method in ("GET", "HEAD") else "Content-Profile")
            schema = profile or server.schemas[0]
            if schema not in server.schemas:
                return self._reply(
                    406,
                    {
                        "code": "PGRST106",
                        "message": f"The schema must be one of the following: {', '.join(server.schemas)}",
                    },
                    method,
                )
            try:
                status, payload, headers = _execute(
                    server, method, schema, match.group(1), parts.query, self.headers, body
                )
            except psycopg.Error as exc:
                state = exc.sqlstate or ""
                code = STATUS.get(state) or STATUS_CLASS.get(state[:2], 500)
                diag = exc.diag
                return self._reply(
                    code,
                    {
                        "code": state,
                        "message": diag.message_primary or str(exc),
                        "details": diag.message_detail,
                        "hint": diag.message_hint,
                    },
                    method,
                )
            self._reply(status, payload, method, headers)

        def _reply(self, status: int, payload, method: str, headers: dict | None = None) -> None:
            data = (
                b""
                if payload is None
                else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
            )
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

    return Handler


def _execute(server: PostgrestServer, method: str, schema: str, table: str, query: str, headers, body: bytes):
    params = parse_qsl(query, keep_blank_values=True)
    prefer = {p.strip() for p in (headers.get("Prefer") or "").split(",") if p.strip()}
    if not server.exact_counts:  # as a proxy that drops the count preference: no total comes back
        prefer.discard("count=exact")
    target = sql.Identifier(schema, table)
    with psycopg.connect(server.dsn) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", [f'"{schema}"."{table}"']).fetchone()[0]
        if exists is None:
            return (
                404,
                {
                    "code": "PGRST205",
                    "message": f"Could not find the table '{schema}.{table}' in the schema cache",
                },
                {},
            )
        where, args = _filters(
            [
                (k, v)
                for k, v in params
                if k not in ("select", "order", "limit", "offset", "on_conflict", "columns")
            ]
        )
        if method in ("GET", "HEAD"):
            return _select(server, conn, target, params, where, args, headers, prefer)
        if method == "DELETE":
            if not args and where == sql.SQL("TRUE"):
                return 400, {"code": "21000", "message": "DELETE requires a WHERE clause"}, {}
            cur = conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(target, where), args)
            return 204, None, _count_header(prefer, cur.rowcount)
        rows = json.loads(body or b"[]")
        rows = rows if isinstance(rows, list) else [rows]
        if not rows:
            return 201, None, _count_header(prefer, 0)
        cols = list(dict.fromkeys(k for row in rows for k in row))
        names = sql.SQL(", ").join(map(sql.Identifier, cols))
        stmt = sql.SQL(
            "INSERT INTO {t} ({c}) SELECT {c} FROM json_populate_recordset(NULL::{t}, %s::json)"
        ).format(t=target, c=names)
        conflict = dict(params).get("on_conflict")
        if "resolution=merge-duplicates" in prefer or "resolution=ignore-duplicates" in prefer:
            keys = [k.strip() for k in (conflict or "").split(",") if k.strip()]
            keys_sql = sql.SQL(", ").join(map(sql.Identifier, keys))
            rest = [c for c in cols if c not in keys]
            if "resolution=ignore-duplicates" in prefer or not rest:
                stmt += sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(keys_sql)
            else:
                sets = sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in rest
                )
                stmt += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(keys_sql, sets)
        cur = conn.execute(stmt, [json.dumps(rows)])
        return 201, None, _count_header(prefer, cur.rowcount)


def _select(server, conn, target, params, where, args, headers, prefer):
    p = dict(params)
    columns = _names(p.get("select", "*"))
    select = sql.SQL("*") if columns == ["*"] else sql.SQL(", ").join(map(sql.Identifier, columns))
    offset, limit = int(p.get("offset") or 0), int(p["limit"]) if p.get("limit") else None
    rng = re.fullmatch(r"(\d+)-(\d*)", headers.get("Range") or "")
    if rng:
        offset = int(rng.group(1))
        limit = int(rng.group(2)) - offset + 1 if rng.group(2) else None
    if server.max_rows is not None:
        limit = server.max_rows if limit is None else min(limit, server.max_rows)
    order = sql.SQL("")
    if p.get("order"):
        terms = []
        for item in p["order"].split(","):
            name, *mods = item.split(".")
            term = sql.Identifier(name) + sql.SQL(" DESC" if "desc" in mods else " ASC")
            if "nullsfirst" in mods or "nullslast" in mods:
                term += sql.SQL(" NULLS FIRST" if "nullsfirst" in mods else " NULLS LAST")
            terms.append(term)
        order = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)
    inner = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(select, target, where, order)
    if limit is not None:
        inner += sql.SQL(" LIMIT {}").format(sql.Literal(limit))
    inner += sql.SQL(" OFFSET {}").format(sql.Literal(offset))
    data, n = conn.execute(
        sql.SQL("SELECT coalesce(json_agg(x), '[]')::text, count(*) FROM ({}) x").format(inner), args
    ).fetchone()
    total = "*"
    if "count=exact" in prefer:
        total = str(
            conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(target, where), args).fetchone()[
                0
            ]
        )
    span = f"{offset}-{offset + n - 1}" if n else "*"
    return 200, data.encode(), {"Content-Range": f"{span}/{total}"}


def _names(select: str) -> list[str]:
    """Split a select list on commas outside double quotes; a quoted name may escape \\" inside."""
    names = re.findall(r'"((?:[^"\\]|\\.)*)"|([^,]+)', select)
    return [quoted.replace('\\"', '"') if quoted else plain.strip() for quoted, plain in names]


def _filters(pairs):
    clauses, args = [], []
    for column, expr in pairs:
        negate = expr.startswith("not.")
        if negate:
            expr = expr[4:]
        op, _, value = expr.partition(".")
        ident = sql.Identifier(column)
        if op == "is":
            clause = sql.SQL("{} IS {}").format(
                ident, sql.SQL({"null": "NULL", "true": "TRUE", "false": "FALSE"}[value])
            )
        elif op == "in":
            items = [v.strip().strip('"') for v in value.strip("()").split(",")]
            clause = sql.SQL("{}::text = ANY(%s)").format(ident)
            args.append(items)
        else:
            clause = sql.SQL("{} " + OPS[op] + " %s").format(ident)
            args.append(value)
        clauses.append(sql.SQL("NOT ({})").format(clause) if negate else clause)
    return (sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("TRUE")), args


def _count_header(prefer: set[str], count: int) -> dict[str, str]:
    return {"Content-Range": f"*/{count}" if "count=exact" in prefer else "*/*"}
