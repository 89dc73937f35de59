"""A local HTTP server speaking the few GitHub REST endpoints the action calls.

    GET   /repos/{owner}/{repo}/pulls/{number}/files       (paginated: per_page, page, Link header)
    GET   /repos/{owner}/{repo}/issues/{number}/comments   (paginated)
    POST  /repos/{owner}/{repo}/issues/{number}/comments
    PATCH /repos/{owner}/{repo}/issues/comments/{id}
    GET   /repos/{owner}/{repo}/pulls/{number}             (what `pulls` holds, else 404)
    GET   /user                                            (403 for a job's token, as on GitHub)

Shaped like api.github.com: JSON bodies, `Link: <...>; rel="next"` pagination, 201 on create,
404 `{"message": "Not Found"}` for unknown paths, and `forbidden = True` answers every request with
the 403 a read-only token gets (`Resource not accessible by integration`). Every request is
recorded with its headers so tests can check the token and the API version header.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_FILES = re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)/files\Z")
_COMMENTS = re.compile(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments\Z")
_COMMENT = re.compile(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)\Z")
_PULL = re.compile(r"/repos/([^/]+/[^/]+)/pulls/(\d+)\Z")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class State:
    """What the fake repository holds; tests set `pr_files` and read `comments` and `requests`."""

    bot_login: str = "github-actions[bot]"
    forbidden: bool = False
    pr_files: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    user_login: str | None = None  # a personal token's login; None: the job's token, which GET /user refuses
    requests: list[Request] = field(default_factory=list)
    next_id: int = 1000

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PATCH")]


class FakeGitHub:
    """`with FakeGitHub() as gh:` serves on 127.0.0.1 at `gh.url` until the block ends."""

    def __init__(self) -> None:
        self.state = State()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self.lock:
            self.state = State()

    # -- helpers for tests --------------------------------------------------------------------
    def set_pr_files(self, repo: str, number: int, filenames: list[str]) -> None:
        with self.lock:
            self.state.pr_files[(repo, number)] = [
                {"sha": "0" * 40, "filename": name, "status": "modified", "additions": 1, "deletions": 1}
                for name in filenames
            ]

    def add_comment(self, repo: str, number: int, body: str, login: str | None = None) -> dict[str, Any]:
        with self.lock:
            return self._create(repo, number, body, login or self.state.bot_login)

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.state.comments.get((repo, number), [])]

    # -- the server -----------------------------------------------------------------------------
    def _create(self, repo: str, number: int, body: str, login: str) -> dict[str, Any]:
        self.state.next_id += 1
        comment_id = self.state.next_id
        comment = {
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"{self.url}/repos/{repo}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{repo}/pull/{number}#issuecomment-{comment_id}",
            "body": body,
            "user": {"login": login, "type": "Bot"},
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }
        self.state.comments.setdefault((repo, number), []).append(comment)
        return comment

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        query = parse_qs(split.query)
        request = Request(method, split.path, query, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self.lock:
            self.state.requests.append(request)
            status, payload, headers = self._route(request)
        data = json.dumps(payload).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        if state.forbidden:
            return (
                403,
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "403",
                },
                {"X-RateLimit-Remaining": "4999"},
            )
        if request.method == "GET" and (m := _PULL.match(request.path)) and (m[1], int(m[2])) in state.pulls:
            return 200, state.pulls[(m[1], int(m[2]))], {}
        if request.method == "GET" and request.path == "/user":
            if state.user_login is None:
                return 403, {"message": "Resource not accessible by integration", "status": "403"}, {}
            return 200, {"login": state.user_login, "type": "User"}, {}
        if request.method == "GET" and (m := _FILES.match(request.path)):
            return self._page(request, state.pr_files.get((m[1], int(m[2])), []))
        if request.method == "GET" and (m := _COMMENTS.match(request.path)):
            return self._page(request, state.comments.get((m[1], int(m[2])), []))
        if request.method == "POST" and (m := _COMMENTS.match(request.path)):
            if not isinstance(request.body, dict) or not isinstance(request.body.get("body"), str):
                return 422, {"message": "Invalid request.", "status": "422"}, {}
            login = state.user_login or state.bot_login  # the token's own identity
            return 201, self._create(m[1], int(m[2]), request.body["body"], login), {}
        if request.method == "PATCH" and (m := _COMMENT.match(request.path)):
            for comments in state.comments.values():
                for comment in comments:
                    if comment["id"] == int(m[2]):
                        if not isinstance(request.body, dict) or "body" not in request.body:
                            return 422, {"message": "Invalid request.", "status": "422"}, {}
                        comment["body"] = request.body["body"]
                        comment["updated_at"] = "2024-01-01T00:01:00Z"
                        return 200, comment, {}
        return 404, {"message": "Not Found", "status": "404"}, {}

    def _page(self, request: Request, items: list[dict[str, Any]]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int((request.query.get("per_page") or ["30"])[0]), 100)
        page = int((request.query.get("page") or ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            headers["Link"] = f'<{self.url}{request.path}?per_page={per_page}&page={page + 1}>; rel="next"'
        return 200, chunk, headers
