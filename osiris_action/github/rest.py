"""The few GitHub REST calls a pull request run needs: changed files and one sticky comment.

A small client on httpx rather than PyGithub or githubkit: five endpoints do not justify their
weight, and the behaviour that matters is spelled out here. `GITHUB_API_URL` (GitHub Enterprise
Server) instead of a fixed host; explicit timeouts; `per_page=100` and the `Link` header for
pagination, following only links on the API's own origin so the token never goes elsewhere;
bounded retries on 5xx and rate limits, honouring `Retry-After`. A POST is not retried after a
5xx or a timeout, since GitHub may have created the comment anyway. A 403 that is not a rate
limit raises `Forbidden`: on fork pull requests the token is read-only, and the caller should
turn that into a warning, not a failure.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
# GitHub refuses comment bodies over 65536 characters; keep a margin for its own normalisation.
COMMENT_LIMIT = 65536
COMMENT_BUDGET = 65000
MAX_PAGES = 50
ACTIONS_BOT = "github-actions[bot]"

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})


class GitHubError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Forbidden(GitHubError):
    """403 without a rate limit: missing `pull-requests: write`, or a fork's read-only token."""


class RateLimited(GitHubError):
    """Still rate limited after the retries, or asked to wait longer than we are willing to."""


@dataclass(frozen=True)
class StickyResult:
    action: str  # "created", "updated" or "unchanged"
    comment: Mapping[str, Any]


def sticky_marker(key: str) -> str:
    """The hidden HTML comment that identifies our comment (e.g. per workflow, job and pipeline set)."""
    if key.startswith("<!--"):
        return key
    if "-->" in key or "\n" in key or "\r" in key or not key.strip():
        raise ValueError(f"invalid sticky comment key {key!r}")
    return f"<!-- {key} -->"


def fit_comment(body: str, footer: str = "", budget: int = COMMENT_BUDGET) -> str:
    """`body` + `footer` within `budget` characters; a cut body ends on a line and says so."""
    if len(body) + len(footer) <= budget:
        return body + footer
    note_room = len(
        f"\n\n*Comment truncated: {len(body)} characters omitted. The full report is in the job summary.*\n"
    )
    room = max(0, budget - len(footer) - note_room)
    kept = body[:room]
    if (newline := kept.rfind("\n")) >= max(0, room - 4096):
        kept = kept[:newline]
    note = (
        f"\n\n*Comment truncated: {len(body) - len(kept)} characters omitted. "
        "The full report is in the job summary.*\n"
    )
    return kept + note + footer


class GitHubClient:
    """Synchronous client; use as a context manager or call `close()`."""

    def __init__(
        self,
        token: str | None = None,
        api_url: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Callable[[float], object] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "osiris-run-pipeline",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep
        # httpx drops Authorization when a redirect leaves the origin.
        self._http = httpx.Client(
            base_url=self.api_url + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
        )

    @classmethod
    def from_env(cls, token: str | None, env: Mapping[str, str] = os.environ, **kwargs: Any) -> GitHubClient:
        return cls(token, env.get("GITHUB_API_URL") or DEFAULT_API_URL, **kwargs)

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def list_pr_files(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Files of a pull request (`filename`, `status`, `previous_filename`, ...); GitHub stops at 3000."""
        return self._paginate(f"repos/{_repo(repo)}/pulls/{int(number)}/files")

    def get_pull(self, repo: str, number: int) -> dict[str, Any]:
        """One pull request (`head.repo`, `base.repo`, `user`, ...)."""
        return self._request("GET", f"repos/{_repo(repo)}/pulls/{int(number)}").json()

    def login(self) -> str | None:
        """The token's own identity: `GET /user` for a user's token; a job's `GITHUB_TOKEN` (an app
        installation token) may not read it and acts as `github-actions[bot]`."""
        try:
            data = self._request("GET", "user").json()
        except GitHubError as exc:
            if exc.status in (401, 403, 404):
                return ACTIONS_BOT
            raise
        return data.get("login") if isinstance(data, dict) else None

    def list_issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self._paginate(f"repos/{_repo(repo)}/issues/{int(number)}/comments")

    def create_issue_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        path = f"repos/{_repo(repo)}/issues/{int(number)}/comments"
        return self._request("POST", path, json={"body": fit_comment(body)}).json()

    def update_issue_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        path = f"repos/{_repo(repo)}/issues/comments/{int(comment_id)}"
        return self._request("PATCH", path, json={"body": fit_comment(body)}).json()

    def upsert_sticky_comment(
        self, repo: str, number: int, marker: str, body: str, *, author: str | None = None
    ) -> StickyResult:
        """Update in place the first comment holding the marker (by `author`, if given), else create it.

        The marker goes last and survives truncation, so the next run finds the comment again. An
        unchanged body is not sent, to avoid a needless edit in the pull request's history.
        """
        hidden = sticky_marker(marker)
        full = fit_comment(body, footer=f"\n\n{hidden}\n")
        for comment in self.list_issue_comments(repo, number):
            if hidden not in (comment.get("body") or ""):
                continue
            if author and ((comment.get("user") or {}).get("login") or "").lower() != author.lower():
                continue  # someone else posted the marker: never edit (or fail on) their comment
            if (comment.get("body") or "").rstrip() == full.rstrip():
                return StickyResult("unchanged", comment)
            return StickyResult("updated", self.update_issue_comment(repo, comment["id"], full))
        return StickyResult("created", self.create_issue_comment(repo, number, full))

    def _paginate(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str = path
        params: dict[str, Any] | None = {"per_page": 100}
        for _ in range(MAX_PAGES):
            response = self._request("GET", url, params=params)
            page = response.json()
            if not isinstance(page, list):
                raise GitHubError(f"GET {path}: expected a JSON list, got {type(page).__name__}")
            items.extend(page)
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return items
            if _origin(next_url) != _origin(self.api_url):
                raise GitHubError(f"GET {path}: refusing a next page on another origin: {next_url}")
            url, params = next_url, None  # the link already carries per_page and page
        raise GitHubError(f"GET {path}: more than {MAX_PAGES} pages")

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                # A refused connection never reached GitHub; anything later might have.
                if last or not (method in _IDEMPOTENT or isinstance(exc, httpx.ConnectError)):
                    raise GitHubError(f"{method} {_path(url)}: {exc}") from exc
                self._sleep(self.backoff * 2**attempt)
                continue
            if response.status_code < 400:
                return response
            wait = self._retry_wait(method, response, attempt)
            if wait is None or last:
                raise _error(method, url, response)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _retry_wait(self, method: str, response: httpx.Response, attempt: int) -> float | None:
        status = response.status_code
        if status in (403, 429) and _rate_limited(response):
            wait = _retry_after(response)
            if wait is None:
                # GitHub: without Retry-After, wait until the reset time, or at least a minute.
                reset = response.headers.get("x-ratelimit-reset", "")
                wait = float(reset) - time.time() if reset.isdigit() else 60.0
            wait = max(wait, 0.0)
            return wait if wait <= self.max_wait else None
        if status >= 500 and method in _IDEMPOTENT:
            after = _retry_after(response)
            return min(after if after is not None else self.backoff * 2**attempt, self.max_wait)
        return None


def _rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429 or "retry-after" in response.headers:
        return True
    if response.headers.get("x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in _message(response).lower()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _error(method: str, url: str, response: httpx.Response) -> GitHubError:
    status = response.status_code
    message = f"{method} {_path(url)}: {status} {_message(response) or response.reason_phrase}"
    if status in (403, 429) and _rate_limited(response):
        return RateLimited(message, status)
    if status == 403:
        return Forbidden(message, status)
    return GitHubError(message, status)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", "")) if isinstance(data, dict) else ""


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _path(url: str) -> str:
    return httpx.URL(url).path if "://" in url else "/" + url.lstrip("/")


def _repo(repo: str) -> str:
    if not _REPO.match(repo):
        raise ValueError(f"repository must be 'owner/name', got {repo!r}")
    return repo
