"""The E2B sandbox: the worker in an E2B cloud microVM, driven through the official `e2b` SDK.

This module is an adapter in the way an httpx transport is one: everything E2B-specific (the SDK, its
default timeouts, its raw output chunks, its tree of exceptions) stays here, and what leaves is the
`Sandbox` contract on plain values, with every failure turned into one `SandboxError` that says what
happened and how to fix it. The same contract tests run against this class and `LocalSandbox`.

Secrets never become sandbox-level environment variables: they are passed to the one command that
needs them, like the local sandbox does, so nothing else started in the sandbox sees them.

The SDK is imported lazily: it takes about a second to import, and `osiris-action validate` never
needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import posixpath
import re
import shlex
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from osiris_action.sandbox.base import (
    PYTHON_PROBE,
    ArtifactPolicy,
    Fetched,
    LineHandler,
    Sandbox,
    SandboxError,
    SandboxTimeout,
    python_problem,
)

HOME = "/home/user"
WORKDIR = f"{HOME}/osiris"
VENV = f"{HOME}/.osiris-venv"  # outside the bundle folder, so it is never listed as an artifact
LIFETIME_MARGIN = 300  # seconds the sandbox outlives the run timeout: create, upload, fetch, teardown
UNLIMITED_RUN_LIFETIME = 3600  # seconds, when the run itself has no timeout (the Hobby tier's maximum)
INSTALL_TIMEOUT = 900  # seconds for `pip install -r requirements.txt`
CHECK_TIMEOUT = 60  # seconds for the quick import check
TRANSFER_TIMEOUT = 300  # seconds for one upload or download (the SDK's default is 60)
LIST_DEPTH = 32  # folder levels listed under artifacts/ and data/
STDERR_LINES = 20
STOPPED = -1  # the exit code envd reports for a killed command
WORKER_IMPORTS = ("duckdb", "pyarrow")  # what worker.py itself needs, whatever the drivers
# Mirrors LocalSandbox: unbuffered events, no .pyc files next to the uploaded (hashed) bundle.
BASE_ENV = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
PIP_LOG = Path("artifacts") / "_system" / "pip_install.log"
KEY_HINT = "Set E2B_API_KEY (the Action's `e2b-api-key` input) to a key from https://e2b.dev/dashboard."
STATUS_HINT = "Retry the run; if it keeps failing, check https://status.e2b.dev."
_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


class LineSplitter:
    """Turns the SDK's raw output chunks back into lines.

    envd forwards whatever it read (32 KiB at a time), so one line can span several chunks and one chunk
    can hold many lines; the worker's JSON events only parse as whole lines.
    """

    def __init__(self, emit: Callable[[str], None]):
        self._emit = emit
        self._pending: list[str] = []

    def feed(self, chunk: str) -> None:
        *complete, rest = chunk.split("\n")
        if complete:
            complete[0] = "".join(self._pending) + complete[0]
            self._pending = []
            for line in complete:
                self._emit(line.removesuffix("\r"))
        if rest:
            self._pending.append(rest)

    def flush(self) -> None:
        """Emit the last line when the output did not end with a newline."""
        if self._pending:
            line, self._pending = "".join(self._pending), []
            self._emit(line.removesuffix("\r"))


class E2BSandbox(Sandbox):
    """One E2B sandbox per run: created by `prepare`, killed by `close` whatever happened in between."""

    name = "e2b"
    python = "python3"

    def __init__(
        self,
        api_key: str | None = None,
        template: str | None = None,
        timeout: float = 900,
        workdir: str = WORKDIR,
        python: str | None = None,
        margin: float = LIFETIME_MARGIN,
    ):
        self.api_key = api_key or None  # None lets the SDK read E2B_API_KEY itself
        self.template = template or None  # None is E2B's default template, "base"
        self.workdir = posixpath.join(HOME, workdir)  # absolute, so listed paths compare with it
        if python:
            self.python = python
        self.lifetime = math.ceil(timeout + margin) if timeout else UNLIMITED_RUN_LIFETIME
        self.uploaded: set[str] = set()
        self.stderr_tail = ""
        self.sandbox_id: str | None = None
        self.kill_error: str | None = None
        self._requirements: bytes | None = None
        self._sbx = None
        self._handle = None
        self._stopped = threading.Event()

    # -- the contract --------------------------------------------------------------------------------

    def check_python(self) -> None:
        """Create the sandbox and ask its interpreter for its version, before anything is uploaded."""
        self._create()
        output: list[str] = []
        code = self._command(
            shlex.join([self.python, "-c", PYTHON_PROBE]) + " 2>&1",
            dict(BASE_ENV),
            CHECK_TIMEOUT,
            output.append,
            lambda _chunk: None,
            "checking the sandbox's Python",
            cwd=HOME,  # the bundle folder does not exist yet
        )
        if code == STOPPED and self._stopped.is_set():
            return
        problem = python_problem(self.python, code, "".join(output))
        if problem is not None:
            raise problem

    def prepare(self, files: dict[str, bytes]) -> dict[str, str]:
        """Create the sandbox (if check_python has not) and upload the whole bundle in one request."""
        self.uploaded = set(files)
        self._requirements = files.get("requirements.txt")
        sandbox = self._create()
        entries = [{"path": self._path(rel), "data": data} for rel, data in sorted(files.items())]
        with self._translating("uploading the bundle"):
            sandbox.files.write_files(entries, request_timeout=TRANSFER_TIMEOUT)
        return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}

    def install(self, out: Path) -> None:
        """Install requirements.txt into a virtual environment in the sandbox; its log goes under out/.

        A virtual environment, because a distribution's Python refuses `pip install` into itself (PEP 668,
        "externally-managed-environment") and a user-site install may not be on its path. It sees the
        template's own packages (--system-site-packages), so pip fetches only what is missing; the
        worker then runs with the environment's interpreter. Done when asked (--install-deps) or when
        the template lacks a package; a template with the pins baked in (see template.py) skips it. The
        sandbox's lifetime is extended by the install budget first, so a slow install does not eat into
        the time the run was promised.
        """
        if self._requirements is None:
            return
        log_path = out / PIP_LOG
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._extend_lifetime(INSTALL_TIMEOUT)
        venv_python = posixpath.join(VENV, "bin", "python")
        create = [self.python, "-m", "venv", "--system-site-packages", VENV]
        pip = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        pip += ["--progress-bar", "off", "-r", "requirements.txt"]
        command = "{ " + shlex.join(create) + " && " + shlex.join(pip) + "; } 2>&1"
        timeout = SandboxTimeout(
            f"pip install did not finish within {INSTALL_TIMEOUT} s",
            "Build a template with the dependencies (`osiris-action e2b-template --build NAME`) and run "
            "with --e2b-template NAME instead of --install-deps.",
        )
        with log_path.open("w", encoding="utf-8") as log:
            try:
                code = self._command(
                    command,
                    dict(BASE_ENV),
                    INSTALL_TIMEOUT,
                    log.write,
                    log.write,
                    "installing requirements.txt",
                    timeout,
                )
            except SandboxError as exc:
                log.flush()
                exc.stderr_tail = exc.stderr_tail or _tail(log_path)
                raise
        if code != 0 and not self._stopped.is_set():
            tail = _tail(log_path)
            no_venv = "ensurepip" in tail or "No module named venv" in tail
            raise SandboxError(
                f"installing requirements.txt into a virtual environment in the sandbox failed (exit code "
                f"{code})" + (": its Python cannot create virtual environments" if no_venv else ""),
                f"The whole log is in {PIP_LOG.as_posix()}. "
                + (
                    "Install the venv module in the template (Debian: python3-venv), or "
                    if no_venv
                    else "Check the pins in requirements.lock, or "
                )
                + "use a template that has the dependencies (`osiris-action e2b-template`).",
                tail,
            )
        self.python = venv_python

    def missing_imports(self, modules: Iterable[str] | None = None) -> list[str]:
        """The modules the sandbox's Python cannot import, from one short command.

        By default the ones the uploaded requirements.txt names (distribution names mapped to module
        names) plus the worker's own, so a caller can install only when the template lacks something.
        """
        names = sorted(set(self._needed_imports() if modules is None else modules))
        script = "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if not u.find_spec(m)])"
        output: list[str] = []
        code = self._command(
            shlex.join([self.python, "-c", script, *names]),
            dict(BASE_ENV),
            CHECK_TIMEOUT,
            output.append,
            lambda _chunk: None,
            "checking the sandbox's Python packages",
        )
        if code == STOPPED and self._stopped.is_set():
            return []  # cancelled: nothing more will run, so nothing needs installing
        if code != 0:
            raise SandboxError(
                f"'{self.python}' could not run in the sandbox (exit code {code})",
                "Use a template with Python 3.11 or newer (`osiris-action e2b-template`).",
            )
        return "".join(output).split()

    def run(self, command: list[str], env: dict[str, str], timeout: float, on_line: LineHandler) -> int:
        """Run the worker with exactly `env`, streaming its stdout lines; returns its exit code.

        A non-zero exit is the worker's own verdict (1: a step failed) and is returned, not raised.
        """
        stdout = LineSplitter(on_line)
        tail: deque[str] = deque(maxlen=STDERR_LINES)
        stderr = LineSplitter(tail.append)
        expired = SandboxTimeout(
            f"the worker did not finish within {timeout:g} s and was stopped",
            "Raise --timeout, or make the pipeline smaller.",
        )
        try:
            code = self._command(
                shlex.join(command),
                {**BASE_ENV, **env},
                timeout,
                stdout.feed,
                stderr.feed,
                "running the worker",
                expired,
            )
            stdout.flush()
        except SandboxError as exc:
            exc.stderr_tail = exc.stderr_tail or self._finish_tail(stderr, tail)
            raise
        self._finish_tail(stderr, tail)
        return code

    def fetch(self, out: Path, policy: ArtifactPolicy) -> Fetched:
        """Download what the policy allows from artifacts/ and data/, skipping the uploaded files."""
        fetched = Fetched()
        for rel, size in self._listing():
            if rel in self.uploaded:
                continue
            reason = policy.decide(rel, size)
            if reason:
                fetched.skipped.append((rel, size, reason))
                continue
            data = self._read(rel)
            if data is None:
                fetched.skipped.append((rel, size, "deleted in the sandbox before it could be downloaded"))
                continue
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            fetched.downloaded.append((rel, len(data)))
        return fetched

    def stop(self) -> None:
        """Cancellation from another thread: kill the running command (or the sandbox if that fails).

        The sandbox itself stays up when the command could be killed, so `fetch` still brings back what
        the worker wrote, as with LocalSandbox; a command not yet started will not start.
        """
        self._stopped.set()
        handle = self._handle
        if handle is not None and not _kill_command(handle):
            self._kill_sandbox()

    def close(self) -> None:
        """Kill the sandbox; idempotent.

        A failed kill is kept in `kill_error`, not raised: close runs in `finally`/`__exit__`, where an
        exception would hide the run's own error, and the sandbox still ends with its lifetime.
        """
        sandbox, self._sbx = self._sbx, None
        if sandbox is None:
            return
        try:
            sandbox.kill()
        except Exception as exc:
            error = translate(exc, "killing the sandbox", self.api_key)
            self.kill_error = error.message if error else f"{type(exc).__name__}: {exc}"

    # -- helpers -------------------------------------------------------------------------------------

    def _create(self):
        if self._sbx is None:
            from e2b import Sandbox as SDKSandbox

            with self._translating("creating the sandbox"):
                self._sbx = SDKSandbox.create(
                    template=self.template,
                    timeout=self.lifetime,
                    metadata={"app": "osiris-run-pipeline"},
                    api_key=self.api_key,
                )
            self.sandbox_id = self._sbx.sandbox_id
        return self._sbx

    def _require(self):
        if self._sbx is None:
            raise SandboxError("the E2B sandbox is not available: prepare() was not called, or it was closed")
        return self._sbx

    def _path(self, rel: str) -> str:
        return posixpath.join(self.workdir, rel)

    def _command(
        self,
        command: str,
        env: dict[str, str],
        timeout: float,
        on_stdout,
        on_stderr,
        doing: str,
        timeout_error: SandboxError | None = None,
        cwd: str | None = None,
    ) -> int:
        """Run one shell command (in the bundle folder by default) and wait for it; returns its exit code.

        It starts in the background only to get a handle that `stop()` can kill from another thread;
        this thread then waits on it, under the same explicit deadline (never the SDK's 60 s default;
        0 is unlimited, bounded by the sandbox's lifetime).
        """
        from e2b import CommandExitException, TimeoutException

        sandbox = self._require()
        with self._translating(doing, timeout_error):
            if self._stopped.is_set():
                return STOPPED
            handle = sandbox.commands.run(
                command,
                background=True,
                cwd=cwd or self.workdir,
                envs=env,
                timeout=timeout or 0,
                retain_output=False,
            )
            self._handle = handle
            try:
                if self._stopped.is_set():
                    _kill_command(handle)
                handle.wait(on_stdout=on_stdout, on_stderr=on_stderr)
                return 0
            except CommandExitException as exc:
                return exc.exit_code
            except TimeoutException as exc:
                if type(exc) is TimeoutException:  # the deadline, not a dead sandbox: envd kills it too
                    _kill_command(handle)
                raise
            finally:
                self._handle = None

    def _listing(self) -> list[tuple[str, int]]:
        """(path relative to the bundle folder, size) of every file under artifacts/ and data/."""
        from e2b import FileNotFoundException, FileType

        sandbox = self._require()
        found = []
        for folder in ("artifacts", "data"):
            with self._translating(f"listing {folder}/"):
                try:
                    entries = sandbox.files.list(self._path(folder), depth=LIST_DEPTH)
                except FileNotFoundException:
                    continue
            for entry in entries:
                rel = posixpath.relpath(entry.path, self.workdir)
                if entry.type == FileType.FILE and not rel.startswith("../"):
                    found.append((rel, entry.size))
        return sorted(found)

    def _read(self, rel: str) -> bytes | None:
        """The file's bytes, or None when it vanished between the listing and the download."""
        from e2b import FileNotFoundException

        with self._translating(f"downloading {rel}"):
            try:
                return bytes(
                    self._require().files.read(
                        self._path(rel), format="bytes", request_timeout=TRANSFER_TIMEOUT
                    )
                )
            except FileNotFoundException:
                return None

    def _extend_lifetime(self, extra: float) -> None:
        with self._translating("extending the sandbox's lifetime"):
            self._require().set_timeout(math.ceil(self.lifetime + extra))

    def _kill_sandbox(self) -> None:
        sandbox = self._sbx
        if sandbox is not None:
            with contextlib.suppress(Exception):
                sandbox.kill()

    def _needed_imports(self) -> list[str]:
        modules = set(WORKER_IMPORTS)
        for line in (self._requirements or b"").decode("utf-8", "replace").splitlines():
            match = _REQUIREMENT_NAME.match(line.strip())
            if match:
                modules.add(match.group(1).lower().replace("-", "_").replace(".", "_"))
        return sorted(modules)

    def _finish_tail(self, stderr: LineSplitter, tail: deque[str]) -> str:
        stderr.flush()
        self.stderr_tail = "".join(line + "\n" for line in tail)
        return self.stderr_tail

    @contextlib.contextmanager
    def _translating(self, doing: str, timeout_error: SandboxError | None = None) -> Iterator[None]:
        try:
            yield
        except SandboxError:
            raise
        except Exception as exc:
            error = translate(exc, doing, self.api_key, self.lifetime, timeout_error)
            if error is None:
                raise
            raise error from exc


def _kill_command(handle) -> bool:
    """SIGKILL one command; False only when the request itself failed."""
    try:
        handle.kill()
    except Exception:
        return False
    return True


def _tail(path: Path, lines: int = STDERR_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "".join(line + "\n" for line in text[-lines:])


def translate(
    exc: BaseException,
    doing: str,
    api_key: str | None = None,
    lifetime: int | None = None,
    timeout_error: SandboxError | None = None,
) -> SandboxError | None:
    """One SandboxError, with a hint, for a failure of the SDK or of its transport; None for anything else.

    The checks follow the SDK's exception tree, subclasses first (a dead sandbox is a
    SandboxNotRunningException, which is also a TimeoutException; a bad key and a busy service are not
    SandboxExceptions at all; an unreachable API is a raw httpx error). Anything else is a bug to
    surface as it is, not a sandbox failure. The API key never appears in the result.
    """
    import httpx
    from e2b import (
        AuthenticationException,
        BuildException,
        RateLimitException,
        SandboxException,
        SandboxNotRunningException,
        SandboxUnreachableException,
        ServiceBusyException,
        TimeoutException,
    )

    detail = _scrub(str(exc), api_key)
    if isinstance(exc, SandboxNotRunningException):
        life = f"its {lifetime} s lifetime" if lifetime else "its lifetime"
        return SandboxError(
            f"the E2B sandbox is not running any more ({doing}): it expired after {life} or was killed",
            "Raise --timeout (the sandbox lives for the run timeout plus a margin), and check the E2B "
            "dashboard for sandboxes killed by hand or by a quota.",
        )
    if isinstance(exc, SandboxUnreachableException):
        return SandboxError(f"the E2B sandbox stopped answering ({doing}): {detail}", STATUS_HINT)
    if isinstance(exc, TimeoutException):
        return timeout_error or SandboxTimeout(f"E2B did not answer in time ({doing})", STATUS_HINT)
    if isinstance(exc, AuthenticationException):
        if not (api_key or os.environ.get("E2B_API_KEY")):
            return SandboxError("no E2B API key was given", KEY_HINT)
        return SandboxError(
            f"E2B rejected the API key ({doing})",
            "Check the E2B_API_KEY secret (the Action's `e2b-api-key` input): it may be mistyped, revoked "
            "or from another team. " + KEY_HINT,
        )
    if isinstance(exc, RateLimitException):
        return SandboxError(
            f"E2B's rate limit was reached ({doing})",
            "Run fewer sandboxes at the same time, or retry in a minute.",
        )
    if isinstance(exc, ServiceBusyException):
        return SandboxError(f"E2B has no capacity right now ({doing}): {detail}", "Retry in a minute.")
    if isinstance(exc, SandboxException):
        status = f" (HTTP {exc.status_code})" if exc.status_code else ""
        return SandboxError(
            f"E2B failed{status} ({doing}): {detail}",
            "With --e2b-template, check that the template exists for this key's team. " + STATUS_HINT,
        )
    if isinstance(exc, BuildException):
        return SandboxError(
            f"the E2B template build failed ({doing}): {detail}",
            "The build log above says which step failed.",
        )
    if isinstance(exc, httpx.TransportError):
        return SandboxError(
            f"cannot reach the E2B API at {_api_url(api_key)} ({doing}): {type(exc).__name__}",
            "Check the runner's network access to E2B (proxy, firewall) and https://status.e2b.dev.",
        )
    if type(exc) is Exception:  # the SDK's bare "Command ended without an end event"
        return SandboxError(f"the connection to the E2B sandbox ended early ({doing}): {detail}", STATUS_HINT)
    return None


def _api_url(api_key: str | None) -> str:
    from e2b import ConnectionConfig

    try:
        return ConnectionConfig(api_key=api_key).api_url
    except Exception:
        return "its configured address"


def _scrub(text: str, api_key: str | None) -> str:
    for key in {api_key, os.environ.get("E2B_API_KEY")}:
        if key and len(key) >= 4:
            text = text.replace(key, "***")
    return text
