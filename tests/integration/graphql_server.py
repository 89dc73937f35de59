"""A GraphQL server for tests that answers like a Relay-style API (GitHub, Shopify, Hasura):

- POST /graphql with `{"query", "variables"}`; the query must name the connection field it reads
  (`orders(...)`, or the last name of `path`), and its `first` / `after` variables page through the nodes;
- the answer is `{"data": {"orders": {"edges": [{"cursor", "node"}], "nodes": [...],
  "pageInfo": {"endCursor", "hasNextPage"}}}}` (the connection nested under `path`, e.g.
  `repository.issues`), cursors opaque (base64 of `cursor:<offset>`);
- a GraphQL error comes back as HTTP 200 with an `errors` array and `data: null`, as the spec says;
- without the expected `Authorization` header: HTTP 401 with an `errors` body (as GitHub's API does);
- `throttle(n, retry_after)` answers the next n requests with 429 and `Retry-After`;
- misbehaviours on demand: `echo` (a 400 whose message repeats the request's headers, as some proxies
  do), `stuck` (every page names the first page's cursor as the next one), and POST /moved answering a
  302 to /graphql.

`pages` counts how many times each page (by offset) was served, to prove every page is fetched once.
Listens on 127.0.0.1, port 0.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:{offset}".encode()).decode()


class GraphqlServer:
    def __init__(
        self,
        nodes: list[dict],
        token: str | None = None,
        default_page: int = 10,
        path: str = "orders",
        misbehave: str | None = None,
        expect: tuple[str, str] | None = None,
    ):
        self.nodes = nodes
        # the credential header it wants: (name, value); `token` means ("authorization", "Bearer <token>")
        self.expect = expect or (("authorization", f"Bearer {token}") if token is not None else None)
        self.misbehave = misbehave
        self.path = path.split(".")
        self.token = token
        self.default_page = default_page
        self.pages: Counter[int] = Counter()
        self.requests: list[dict] = []  # the decoded bodies, in order
        self.headers: list[dict[str, str]] = []
        self._throttled: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/graphql"

    def throttle(self, count: int, retry_after: str = "1") -> None:
        with self._lock:
            self._throttled += [retry_after] * count

    def __enter__(self) -> GraphqlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, body: dict, headers: dict[str, str]) -> tuple[int, dict, dict[str, str]]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self._throttled:
                wait = self._throttled.pop(0)
                return 429, {"message": "API rate limit exceeded"}, {"Retry-After": wait}
        if self.expect is not None and headers.get(self.expect[0]) != self.expect[1]:
            return 401, {"message": "Bad credentials", "errors": [{"message": "Bad credentials"}]}, {}
        if self.misbehave == "echo":
            return 400, {"message": f"bad request with headers {json.dumps(headers)}"}, {}
        query = body.get("query")
        variables = body.get("variables") or {}
        if not isinstance(query, str) or self.path[-1] not in query:
            return 200, {"data": None, "errors": [{"message": "Cannot query field on type Query"}]}, {}
        if "undefinedField" in query:
            message = "Field 'undefinedField' doesn't exist on type 'Order'"
            return 200, {"data": None, "errors": [{"message": message, "locations": [{"line": 1}]}]}, {}
        first = int(variables.get("first") or self.default_page)
        after = variables.get("after")
        offset = 0
        if after is not None:
            try:
                offset = int(base64.b64decode(after).decode().split(":")[1]) + 1
            except (ValueError, IndexError):
                return 200, {"data": None, "errors": [{"message": f"invalid cursor {after!r}"}]}, {}
        chunk = self.nodes[offset : offset + first]
        with self._lock:
            self.pages[offset] += 1
        end = offset + len(chunk) - 1
        data = {
            self.path[-1]: {
                "totalCount": len(self.nodes),
                "edges": [{"cursor": cursor(offset + i), "node": n} for i, n in enumerate(chunk)],
                "nodes": chunk,
                "pageInfo": {
                    "endCursor": cursor(0 if self.misbehave == "stuck" else end) if chunk else None,
                    "hasNextPage": offset + len(chunk) < len(self.nodes),
                },
            }
        }
        for name in reversed(self.path[:-1]):
            data = {name: data}
        return 200, {"data": data}, {}


def _handler(server: GraphqlServer):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"errors": [{"message": "Problems parsing JSON"}]}, {})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path == "/moved":
                self._send(302, {}, {"Location": server.url})
                return
            self._send(*server.answer(body, headers))

        def _send(self, status: int, payload: dict, extra: dict[str, str]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler
