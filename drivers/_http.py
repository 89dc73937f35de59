"""HTTP for the API extractors (graphql.extractor, posthog.extractor): one client, one retry policy.

What can succeed later is retried: connection errors and timeouts, 429 and 5xx, with capped exponential
backoff and jitter, honouring `Retry-After` (seconds or an HTTP date). What cannot is not: 400, 401, 403,
404 fail at once with one line naming the step, the service's host and the status. Only `https` is
spoken, except to a loopback address (a server on the same machine, as in tests).

Secrets never leave through here: errors and events carry the scheme, host and path of the URL (never
its query or user info), never a header; any text the server sends back (which may echo what it got)
has every secret value of the request cut out before it reaches a message.
"""

from __future__ import annotations

import ipaddress
import json
import random
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from osiris_drivers._common import StepContext, StepError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT_S = 120.0  # a server asking for a longer pause than this fails the step instead
MAX_BACKOFF_S = 30.0
DETAIL_CHARS = 300  # how much of a server's error text a message quotes
MAX_RESPONSE_BYTES = 256 << 20
MIN_SECRET_LEN = 4


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked_url(url: Any, step_id: str, key: str) -> str:
    """The URL if it is `https://host...` (or `http://` to a loopback address); a StepError otherwise."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname or parts.scheme not in ("http", "https"):
        raise StepError(
            f"step '{step_id}': `{key}` must be an https:// URL with a host, got {shown_url(url)!r}.",
            f"Set `{key}` to the service's address, such as https://api.example.com/graphql.",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise StepError(
            f"step '{step_id}': `{key}` uses plain http to {parts.hostname}, so credentials would travel "
            "unencrypted.",
            f"Use https:// in `{key}` (plain http is accepted only for 127.0.0.1, ::1 and localhost).",
        )
    return url


def shown_url(url: Any) -> str:
    """What an error or event may show of a URL: scheme, host, port and path; no user info, no query."""
    if not isinstance(url, str):
        return str(type(url).__name__)
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparsable URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class Http:
    """A POST-JSON client for one step: its timeouts, retries and secrets, and the words for its errors.

    `service` names the API in messages ("GraphQL endpoint", "PostHog"); `fix_auth` says which setting to
    change when the server refuses the credentials.
    """

    def __init__(
        self,
        ctx: StepContext,
        service: str,
        secrets: list[str],
        fix_auth: str,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        verify: bool = True,
        hints: dict[int, str] | None = None,
    ):
        import httpx

        self.ctx = ctx
        self.service = service
        # as the host's redactor: a value shorter than 4 characters cannot be cut without cutting words
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self.fix_auth = fix_auth
        self.hints = hints or {}  # status → what to change, for statuses the service gives a meaning
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.requests = 0
        self.retries = 0
        # follow_redirects=False: a redirect would carry the Authorization header to another host
        self.client = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def post_json(self, url: str, body: dict, headers: dict[str, str]) -> Any:
        """POST `body` as JSON; the decoded JSON answer of a 2xx response, after retries as needed."""
        import httpx

        where = shown_url(url)
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                response = self._send(url, body, headers, where)
            except (httpx.LocalProtocolError, UnicodeEncodeError):
                raise self.error(
                    f"a request header for the {self.service} at {where} is not valid HTTP.",
                    "Header names are single words (X-Api-Key) and values one line of ASCII text: check "
                    "the token and `headers` of the connection and of the step.",
                    "RequestError",
                ) from None
            except httpx.TransportError as exc:  # connect, read, write and pool errors, timeouts
                if attempt > self.max_retries:
                    raise self.error(
                        f"could not reach the {self.service} at {where} after {attempt} attempt(s): "
                        f"{self.scrub(type(exc).__name__ + ': ' + str(exc))}",
                        "Check the address and that the service is up; raise `timeout` or `max_retries` "
                        "for a slow service.",
                        "ConnectionError",
                    ) from None
                self._pause(attempt, None, where, type(exc).__name__)
                continue
            status = response.status_code
            if 200 <= status < 300:
                try:
                    return response.json()
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise self.error(
                        f"the {self.service} at {where} answered HTTP {status} with a body that is not "
                        f"JSON: {self.detail(response)}",
                        "Check that the URL is the API's address, not a web page.",
                        "ResponseError",
                    ) from None
            if status in (401, 403):
                raise self.error(
                    f"the {self.service} at {where} refused the credentials (HTTP {status}): "
                    f"{self.detail(response)}",
                    self.fix_auth,
                    "AuthenticationError",
                )
            if status in RETRY_STATUSES and attempt <= self.max_retries:
                self._pause(attempt, response.headers.get("retry-after"), where, f"HTTP {status}")
                continue
            if status in self.hints:
                hint = self.hints[status]
            elif status in RETRY_STATUSES:
                hint = "The service is overloaded or failing; run again later, or raise `max_retries`."
            elif 300 <= status < 400:
                hint = "The address redirects; set it to the final URL (redirects are not followed)."
            else:
                hint = "The request was refused as sent: check the step's settings against the API."
            raise self.error(
                f"the {self.service} at {where} answered HTTP {status} after {attempt} attempt(s): "
                f"{self.detail(response)}",
                hint,
                "HTTPError",
            )

    def _send(self, url: str, body: dict, headers: dict[str, str], where: str):
        """One request; the answer read whole, unless it grows past MAX_RESPONSE_BYTES (a page that big
        is a wrong data_path or page size, and must not take the sandbox's memory with it)."""
        import httpx

        request = self.client.build_request("POST", url, json=body, headers=headers)
        response = self.client.send(request, stream=True)
        try:
            content = bytearray()
            for chunk in response.iter_bytes():
                content += chunk
                if len(content) > MAX_RESPONSE_BYTES:
                    raise self.error(
                        f"the {self.service} at {where} sent more than {MAX_RESPONSE_BYTES >> 20} MiB in "
                        "one answer.",
                        "Ask for smaller pages (a smaller page size, or `first:` in the query's variables).",
                        "ResponseTooLarge",
                    )
        finally:
            response.close()
        decoded = ("content-encoding", "content-length", "transfer-encoding")  # the content is decoded now
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in decoded]
        return httpx.Response(response.status_code, headers=kept, content=bytes(content), request=request)

    def _pause(self, attempt: int, retry_after: str | None, where: str, why: str) -> None:
        wait = retry_after_seconds(retry_after)
        if wait is None:
            backoff = min(self.retry_delay * 2 ** (attempt - 1), MAX_BACKOFF_S)
            wait = backoff * (0.5 + random.random() / 2)  # jitter: parallel clients do not retry in step
        elif wait > MAX_WAIT_S:
            raise self.error(
                f"the {self.service} at {where} asks to wait {wait:.0f} s before the next request ({why}).",
                "The service's rate limit is spent for now; run again later.",
                "RateLimited",
            )
        self.retries += 1
        self.ctx.emit("http.retry", url=where, reason=why, attempt=attempt, wait_s=round(wait, 3))
        time.sleep(wait)

    def error(self, message: str, hint: str, error_type: str) -> StepError:
        return StepError(f"step '{self.ctx.step_id}': {message}", hint, error_type)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def detail(self, response) -> str:
        """The server's own words about an error, short and without any secret of the request."""
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = response.text
        else:
            text = server_message(data) if isinstance(data, dict) else json.dumps(data)
        return self.scrub(" ".join(text.split())[:DETAIL_CHARS]) or "(no message)"


def server_message(data: dict) -> str:
    """The message of an API error body: GraphQL `errors`, or the usual `detail`/`message`/`error` keys."""
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        text = first.get("message") if isinstance(first, dict) else None
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{text if isinstance(text, str) else json.dumps(first)}{more}"
    for key in ("detail", "message", "error"):
        if isinstance(data.get(key), str):
            return data[key]
    return json.dumps(data)[:DETAIL_CHARS]


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def mapping_field(connection: dict, key: str) -> dict[str, str]:
    """A mapping of a connection (`headers:`), whether it arrives whole or, from the bundle, as one
    `key.<name>` field per entry (so that each `${ENV}` in it is resolved like any other field)."""
    whole = connection.get(key)
    found = {str(k): str(v) for k, v in whole.items()} if isinstance(whole, dict) else {}
    prefix = key + "."
    found.update({k[len(prefix) :]: str(v) for k, v in connection.items() if k.startswith(prefix)})
    return found
