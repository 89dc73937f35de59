"""A PostHog query API for tests, answering as PostHog's `/api/projects/<id>/query/` does:

- POST with `Authorization: Bearer <personal key>` and `{"query": {"kind": "HogQLQuery", "query",
  "values"}}`; a wrong key is 401, another project 404, each with PostHog's error body
  (`{"type", "code", "detail", "attr"}`);
- the HogQL it understands is the shape the extractor sends: `SELECT <cols> FROM <table> [WHERE ...]
  ORDER BY <k1> ASC, <k2> ASC LIMIT n`, with every `{placeholder}` bound from `values` (a missing one
  is a 400, as in PostHog); `toDateTime({x})` parses ISO strings to the microsecond (offsets applied), as
  HogQL's parseDateTime64BestEffortOrNull does; OFFSET is refused (400) as for personal API keys;
- the answer is `{"columns", "results" (rows as lists), "types" ([name, ClickHouse type]), "hasMore",
  "limit", "offset"}`; datetimes rendered as orjson renders them (`...T12:00:00.123456Z`, fraction
  only when non-zero), `properties` as a JSON string;
- `throttle(n, retry_after)` answers the next n requests with 429 and Retry-After;
- answers are gzip-encoded for clients that accept it, as PostHog's are.

`pages` counts how often each page (by its keyset start) was served. Listens on 127.0.0.1, port 0.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TABLES = {
    "events": {
        "columns": [
            ("uuid", "UUID"),
            ("event", "String"),
            ("timestamp", "DateTime64(6, 'UTC')"),
            ("distinct_id", "String"),
            ("person_id", "Nullable(UUID)"),
            ("properties", "String"),
        ],
        "time": "timestamp",
        "keys": ("timestamp", "uuid"),
    },
    "persons": {
        "columns": [
            ("id", "UUID"),
            ("created_at", "DateTime64(3, 'UTC')"),
            ("properties", "String"),
            ("is_identified", "Bool"),
        ],
        "time": "created_at",
        "keys": ("created_at", "id"),
    },
    "sessions": {
        "columns": [
            ("session_id", "String"),
            ("distinct_id", "String"),
            ("$start_timestamp", "DateTime64(6, 'UTC')"),
            ("$end_timestamp", "DateTime64(6, 'UTC')"),
            ("$session_duration", "Int64"),
            ("$pageview_count", "Nullable(Int64)"),
            ("$urls", "Array(String)"),
        ],
        "time": "$start_timestamp",
        "keys": ("$start_timestamp", "session_id"),
    },
    "person_distinct_ids": {
        "columns": [("distinct_id", "String"), ("person_id", "UUID")],
        "time": None,
        "keys": ("person_id", "distinct_id"),
    },
}


def parse_time(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def render_time(when: datetime) -> str:
    """orjson's rendering of a UTC datetime: `Z`, and the fraction only when it is not zero."""
    text = when.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


class PosthogServer:
    def __init__(self, data: dict[str, list[dict]], api_key: str, project_id: str = "4242"):
        self.data = data  # table → rows as dicts (datetimes as datetime, properties as dicts)
        self.api_key = api_key
        self.project_id = project_id
        self.pages: Counter[tuple] = Counter()
        self.ignore_keyset = False  # misbehave: answer every page as if it were the first
        self.queries: list[dict] = []
        self._throttled: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def throttle(self, count: int, retry_after: str = "1") -> None:
        with self._lock:
            self._throttled += [retry_after] * count

    def __enter__(self) -> PosthogServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict, dict[str, str]]:
        with self._lock:
            if self._throttled:
                wait = self._throttled.pop(0)
                detail = f"Request was throttled. Expected available in {wait} seconds."
                return 429, _error("throttled", "throttled", detail), {"Retry-After": wait}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            detail = "Incorrect authentication credentials."
            return 401, _error("authentication_error", "authentication_failed", detail), {}
        match = re.fullmatch(r"/api/projects/([^/]+)/query/", path)
        if not match or match.group(1) != self.project_id:
            return 404, _error("invalid_request", "not_found", "Not found."), {}
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, dict) or query.get("kind") != "HogQLQuery":
            return 400, _error("validation_error", "invalid_input", "Unknown query kind", "query"), {}
        with self._lock:
            self.queries.append(query)
        try:
            return 200, self._run(query["query"], query.get("values") or {}), {}
        except QueryError as exc:
            return 400, _error("validation_error", "query_error", str(exc)), {}

    def _run(self, hogql: str, values: dict) -> dict:
        if re.search(r"\bOFFSET\b", hogql, re.I):
            raise QueryError(
                "OFFSET is not supported on queries made with a personal API key. Use keyset pagination."
            )
        for name in re.findall(r"\{(\w+)\}", hogql):
            if name not in values:
                raise QueryError(f"Placeholder {{{name}}} is not available in this context.")
        match = re.fullmatch(
            r"SELECT (?P<select>.+?) FROM (?P<table>\w+)(?: WHERE (?P<where>.+?))? "
            r"ORDER BY (?P<order>.+?) LIMIT (?P<limit>\d+)",
            hogql.strip(),
            re.S,
        )
        if not match or match.group("table") not in TABLES:
            raise QueryError(f"Unsupported query: {hogql[:80]}")
        spec = TABLES[match["table"]]
        names = [c for c, _ in spec["columns"]]
        select = names if match["select"].strip() == "*" else [c.strip() for c in match["select"].split(",")]
        if any(c not in names for c in select):
            raise QueryError(f"Unable to resolve field: {select}")
        limit = int(match["limit"])
        rows = sorted(self.data.get(match["table"], []), key=lambda r: tuple(r[k] for k in spec["keys"]))
        where = match["where"] or ""
        time = spec["time"]
        if "{since}" in where:
            since, until = parse_time(values["since"]), parse_time(values["until"])
            rows = [r for r in rows if since <= r[time] < until]
        if "{event_types}" in where:
            rows = [r for r in rows if r["event"] in values["event_types"]]
        start = None
        if "{after_1}" in where and not self.ignore_keyset:
            first, second = spec["keys"]
            timed = "toDateTime({after_1})" in where
            after = parse_time(values["after_1"]) if timed else values["after_1"]
            start = (values["after_1"], values["after_2"])
            rows = [
                r
                for r in rows
                if r[first] > after or (r[first] == after and str(r[second]) > str(values["after_2"]))
            ]
        with self._lock:
            self.pages[(match["table"], start)] += 1
        page = rows[:limit]
        types = dict(spec["columns"])
        return {
            "columns": select,
            "results": [[_render(r.get(c), types[c]) for c in select] for r in page],
            "types": [[c, types[c]] for c in select],
            "hasMore": len(rows) > limit,
            "limit": limit,
            "offset": 0,
            "is_cached": False,
        }


class QueryError(Exception):
    pass


def _render(value, clickhouse: str):
    if isinstance(value, datetime):
        return render_time(value)
    if clickhouse == "String" and isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)  # properties arrive as a JSON string
    return value


def _error(kind: str, code: str, detail: str, attr: str | None = None) -> dict:
    return {"type": kind, "code": code, "detail": detail, "attr": attr}


def _handler(server: PosthogServer):
    class Handler(BaseHTTPRequestHandler):
        gzip = False

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, _error("validation_error", "parse_error", "JSON parse error"), {})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.gzip = "gzip" in headers.get("accept-encoding", "")
            self._send(*server.answer(self.path, body, headers))

        def _send(self, status: int, payload: dict, extra: dict[str, str]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            if self.gzip:  # as PostHog's CDN does for clients that accept it
                data = gzip.compress(data)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler
