"""A local stand-in for E2B: the REST control plane and envd, served in-process for tests.

Why it exists: the sandbox adapter must be tested against the *real* ``e2b`` SDK, unmodified and over
real HTTP, without the cloud. The SDK talks to two services: the REST API (create, connect, kill) and
envd inside the sandbox (files over plain HTTP, processes and filesystem over Connect RPC). This module
answers both on one ``127.0.0.1`` port. The Connect protocol itself is not re-implemented here: the SDK
ships the generated server stubs next to its clients (``ProcessWSGIApplication``,
``FilesystemWSGIApplication``), so this file only supplies the service logic.

What it cannot represent: there is no isolation (commands run on the host as the current user; only the
cwd, ``HOME`` and the literal ``/home/user`` prefix in command strings and env values are mapped into the
sandbox directory), ``bash -l`` sources the host's ``/etc/profile``, the transport is plain HTTP/1.0
with one connection per request, and stdin, PTY, re-attaching to commands, watchers, pause/resume,
metrics and templates are not implemented.

Usage::

    with FakeE2B(api_key="k") as fake:
        os.environ.update(fake.env())      # REST mode; fake.debug_env() for E2B_DEBUG mode
        sbx = Sandbox.create(envs={"A": "1"})
        assert fake.sandboxes[sbx.sandbox_id].envs == {"A": "1"}
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import posixpath
import queue
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from email.message import Message
from email.parser import HeaderParser
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.filesystem import filesystem_connect, filesystem_pb
from e2b.envd.process import process_connect, process_pb
from protobuf import Oneof
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

HOME = "/home/user"
ENVD_VERSION = "0.6.7"  # recent enough that the SDK enables octet-stream uploads and file metadata
DEBUG_SANDBOX_ID = "debug_sandbox_id"  # the id the SDK uses in E2B_DEBUG mode, without any REST call
DEFAULT_TIMEOUT = 300  # seconds, the API's default sandbox lifetime
NOT_FOUND_MESSAGE = "The sandbox was not found"  # E2B's edge proxy; the SDK keys on "was not found"
READ_CHUNK = 32 * 1024  # envd reads process output 32 KiB at a time
# Every variable that steers the SDK's endpoints, so fixtures can clear them before pointing at the fake.
E2B_ENV_VARS = (
    "E2B_API_URL",
    "E2B_SANDBOX_URL",
    "E2B_API_KEY",
    "E2B_DEBUG",
    "E2B_DOMAIN",
    "E2B_HTTP_VERSION",
)

_HOME_IN_TEXT = re.compile(r"/home/user(?![\w.-])")
# Go's syscall.Signal.String(), which envd reports as "signal: <name>".
_GO_SIGNAL_NAMES = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGPIPE: "broken pipe",
}


PEP_668_MESSAGE = """error: externally-managed-environment

× This environment is externally managed
╰─> To install Python packages system-wide, try apt install
    python3-xyz, where xyz is the package you are trying to
    install.

    If you wish to install a non-Debian-packaged Python package,
    create a virtual environment using python3 -m venv path/to/venv.

note: If you believe this is a mistake, please contact your Python installation or OS distribution \
provider. You can override this, at the risk of breaking your Python installation or OS, by passing \
--break-system-packages.
hint: See PEP 668 for the detailed specification."""

OLD_PYTHON_CRASH = """Traceback (most recent call last):
  File "/home/user/osiris/worker.py", line 22, in <module>
    from datetime import UTC, datetime
ImportError: cannot import name 'UTC' from 'datetime' (/usr/lib/python3.10/datetime.py)"""


@dataclass
class SimulatedPython:
    """The template image's `python3`, where the host's own interpreter cannot stand in for it.

    Installed in every sandbox as `/usr/local/bin/python3` (first on PATH), a small script run by the
    host's interpreter. It hands every command to the host's interpreter, except:
    - `version`: it claims that version to a `sys.version_info` probe and fails anything else the way
      a Python older than 3.11 fails on the worker (ImportError on datetime.UTC);
    - `externally_managed`: an `EXTERNALLY-MANAGED` marker sits in its stdlib folder, so `pip install`
      outside a virtual environment fails with pip's PEP 668 message; `-m venv DIR` creates an
      environment whose `bin/python` is this same script, where pip is allowed;
    - pip never installs anything on the host: it prints the requirements and `pip_output`, then exits
      with `pip_exit`;
    - `crash`: running worker.py prints this to stderr and exits 1 (an import error at start).
    """

    version: str | None = None
    externally_managed: bool = False
    pip_output: str = "Successfully installed (simulated)"
    pip_exit: int = 0
    venv_works: bool = True
    crash: str | None = None

    def install(self, root: Path) -> Path:
        """Write the interpreter under root; returns the folder to put first on PATH."""
        bin_dir = root / "usr" / "local" / "bin"
        stdlib = root / "usr" / "lib" / "python3"
        bin_dir.mkdir(parents=True, exist_ok=True)
        stdlib.mkdir(parents=True, exist_ok=True)
        if self.externally_managed:
            (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a venv\n")
        config = {**asdict(self), "marker": str(stdlib / "EXTERNALLY-MANAGED"), "real": sys.executable}
        script = bin_dir / "python3"
        script.write_text(
            f"#!{sys.executable}\nCONFIG = {config!r}\nPEP_668 = {PEP_668_MESSAGE!r}\n"
            f"OLD = {OLD_PYTHON_CRASH!r}\n" + _SIMULATED_PYTHON
        )
        script.chmod(0o755)
        return bin_dir


_SIMULATED_PYTHON = """
import os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
here = Path(__file__)
in_venv = (here.parent.parent / "pyvenv.cfg").is_file()
if CONFIG["version"]:
    if args[:1] == ["-c"] and "version_info" in args[1]:
        print(CONFIG["version"])
        sys.exit(0)
    print(OLD, file=sys.stderr)
    sys.exit(1)
if args[:2] == ["-m", "venv"]:
    if not CONFIG["venv_works"]:
        print("The virtual environment was not created successfully because ensurepip is not available.")
        sys.exit(1)
    target = Path(args[-1])
    (target / "bin").mkdir(parents=True, exist_ok=True)
    (target / "pyvenv.cfg").write_text("include-system-site-packages = true\\n")
    shutil.copy(here, target / "bin" / "python")
    sys.exit(0)
if args[:3] == ["-m", "pip", "install"]:
    if Path(CONFIG["marker"]).is_file() and not in_venv:
        print(PEP_668, file=sys.stderr)
        sys.exit(1)
    if "-r" in args:
        print(Path(args[args.index("-r") + 1]).read_text(), end="")
    print(CONFIG["pip_output"])
    sys.exit(CONFIG["pip_exit"])
if CONFIG["crash"] and args and args[0].endswith("worker.py"):
    print(CONFIG["crash"], file=sys.stderr)
    sys.exit(1)
os.execv(CONFIG["real"], [CONFIG["real"], *args])
"""


class SandboxPathError(ValueError):
    """A path that would leave the sandbox directory."""


def go_end_event(returncode: int) -> process_pb.ProcessEvent.EndEvent:
    """The end event envd builds from Go's ProcessState: exit status, or the signal that killed it."""
    if returncode >= 0:
        status = f"exit status {returncode}"
        error = status if returncode else None
        return process_pb.ProcessEvent.EndEvent(exit_code=returncode, exited=True, status=status, error=error)
    signum = -returncode
    status = f"signal: {_GO_SIGNAL_NAMES.get(signum, f'signal {signum}')}"
    return process_pb.ProcessEvent.EndEvent(exit_code=-1, exited=False, status=status, error=status)


def _event(field: str, value) -> process_pb.StartResponse:
    return process_pb.StartResponse(event=process_pb.ProcessEvent(event=Oneof(field, value)))


class FakeProcess:
    """One command: a bash subprocess in its own session, its output pumped into an event queue."""

    def __init__(
        self, sandbox: FakeSandbox, config: process_pb.ProcessConfig, tag: str | None, argv, cwd, env
    ):
        self.sandbox, self.config, self.tag = sandbox, config, tag
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.deadline_hit = False
        self._deadline: threading.Timer | None = None
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a kill reaches everything it started
            bufsize=0,
        )
        self.pid = self.popen.pid
        pumps = [
            self._thread(self._pump, self.popen.stdout, "stdout"),
            self._thread(self._pump, self.popen.stderr, "stderr"),
        ]
        self._thread(self._reap, pumps)

    @staticmethod
    def _thread(target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def _pump(self, stream, name: str) -> None:
        # Keeps draining even after the client went away, so the command never blocks on a full pipe.
        while chunk := stream.read(READ_CHUNK):
            self.events.put((name, chunk))
        stream.close()

    def _reap(self, pumps: list[threading.Thread]) -> None:
        for pump in pumps:
            pump.join()
        returncode = self.popen.wait()
        if self._deadline:
            self._deadline.cancel()
        self.sandbox.forget(self)
        self.events.put(("end", returncode))

    def set_deadline(self, seconds: float) -> None:
        """envd kills the command when the request's Connect-Timeout-Ms expires, not on disconnect."""
        self._deadline = threading.Timer(max(seconds, 0), self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        self.deadline_hit = True
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group may already be gone
            os.killpg(self.pid, signum)


class FakeSandbox:
    """One sandbox: a temp directory standing for its "/" and the commands running in it."""

    def __init__(
        self,
        sandbox_id: str,
        root: Path,
        template: str,
        timeout: int,
        envs: dict,
        metadata: dict,
        python: SimulatedPython | None = None,
    ):
        self.id, self.root, self.template = sandbox_id, root, template
        self.envs, self.metadata, self.timeout = envs, metadata, timeout
        self.token = secrets.token_hex(16)
        self.alive = True
        self.processes: dict[int, FakeProcess] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.home.mkdir(parents=True)
        self.path_prefix = str(python.install(root)) + os.pathsep if python else ""
        self.set_timeout(timeout)

    @property
    def home(self) -> Path:
        return self.root / HOME.lstrip("/")

    # -- lifetime ------------------------------------------------------------------------------------

    def set_timeout(self, seconds: float) -> None:
        """(Re)start the lifetime timer; when it fires the sandbox is gone, as on E2B."""
        if self._timer:
            self._timer.cancel()
        self.timeout = seconds
        self._timer = threading.Timer(seconds, self.kill)
        self._timer.daemon = True
        self._timer.start()

    def kill(self) -> None:
        with self._lock:
            self.alive = False
            running = list(self.processes.values())
        if self._timer:
            self._timer.cancel()
        for proc in running:
            proc.signal(signal.SIGKILL)

    # -- paths ---------------------------------------------------------------------------------------

    def host_path(self, path: str) -> Path:
        """Map a sandbox path (absolute, relative to home, or ~-prefixed) into the sandbox directory."""
        if path == "~" or path.startswith("~/"):
            path = HOME + path[1:]
        parts: list[str] = []
        for part in posixpath.join(HOME, path).split("/"):
            if part == "..":
                if not parts:
                    raise SandboxPathError(f"path '{path}' escapes the sandbox")
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        host = self.root.joinpath(*parts)
        # A symlink created by a command could still point outside; refuse to follow it there.
        if not host.resolve().is_relative_to(self.root):
            raise SandboxPathError(f"path '{path}' escapes the sandbox")
        return host

    def sandbox_path(self, host: Path) -> str:
        relative = host.relative_to(self.root).as_posix()
        return "/" if relative == "." else "/" + relative

    def map_home(self, text: str) -> str:
        return _HOME_IN_TEXT.sub(str(self.home), text)

    # -- processes -----------------------------------------------------------------------------------

    def spawn(
        self, request: process_pb.StartRequest, rewrite_cmd: Callable[[str], str] | None
    ) -> FakeProcess:
        config = request.process or process_pb.ProcessConfig()
        cwd_arg = config.cwd if config.has_field("cwd") and config.cwd else HOME
        try:
            cwd = self.host_path(cwd_arg)
        except SandboxPathError as e:
            raise ConnectError(Code.INVALID_ARGUMENT, str(e)) from None
        if not cwd.is_dir():
            raise ConnectError(Code.INVALID_ARGUMENT, f"cwd '{cwd_arg}' does not exist")
        argv = [config.cmd, *config.args]
        if argv[:3] == ["/bin/bash", "-l", "-c"] and len(argv) == 4:
            argv[3] = self.map_home(rewrite_cmd(argv[3]) if rewrite_cmd else argv[3])
            if self.path_prefix:  # after `bash -l` (the host's /etc/profile resets PATH), as in the image
                argv[3] = f'export PATH={shlex.quote(self.path_prefix)}"$PATH"; {argv[3]}'
        # Built like envd's: the user's basics, then the sandbox envs from create, then the request's.
        path = self.path_prefix + os.environ.get("PATH", "/usr/bin:/bin")
        env = {"PATH": path, "HOME": str(self.home), "USER": "user"}
        env["LOGNAME"] = "user"
        env.update({k: self.map_home(v) for k, v in {**self.envs, **config.envs}.items()})
        with self._lock:
            if not self.alive:
                raise ConnectError(Code.UNAVAILABLE, f"sandbox {self.id}: {NOT_FOUND_MESSAGE}")
            proc = FakeProcess(
                self, config, request.tag if request.has_field("tag") else None, argv, cwd, env
            )
            self.processes[proc.pid] = proc
        return proc

    def running(self) -> list[FakeProcess]:
        with self._lock:
            return list(self.processes.values())

    def forget(self, proc: FakeProcess) -> None:
        with self._lock:
            self.processes.pop(proc.pid, None)

    def find(self, selector: process_pb.ProcessSelector | None) -> FakeProcess:
        running = self.running()
        match selector.selector if selector else None:
            case Oneof(field="pid", value=pid):
                found = [p for p in running if p.pid == pid]
            case Oneof(field="tag", value=tag):
                found = [p for p in running if p.tag == tag]
            case _:
                found = []
        if not found:
            raise ConnectError(Code.NOT_FOUND, "process not found")
        return found[0]


class ProcessService(process_connect.ProcessSync):
    """envd's process.Process: Start (server stream), List and SendSignal."""

    def __init__(self, fake: FakeE2B):
        self.fake = fake

    def start(self, request, ctx) -> Iterator[process_pb.StartResponse]:
        sandbox = self.fake.sandbox_of(ctx.request_headers)
        proc = sandbox.spawn(request, self.fake.rewrite_cmd)
        if ctx.timeout_ms is not None:
            proc.set_deadline(ctx.timeout_ms / 1000)
        yield _event("start", process_pb.ProcessEvent.StartEvent(pid=proc.pid))
        interval = self.fake.keepalive_interval or float(
            ctx.request_headers.get("keepalive-ping-interval", 50)
        )
        while True:
            try:
                kind, value = proc.events.get(timeout=interval)
            except queue.Empty:
                yield _event("keepalive", process_pb.ProcessEvent.KeepAlive())
                continue
            if kind == "end":
                break
            yield _event("data", process_pb.ProcessEvent.DataEvent(output=Oneof(kind, value)))
        if not sandbox.alive:
            # What envd's proxy reports when the sandbox disappears under an open stream.
            raise ConnectError(Code.UNAVAILABLE, f"the connection to sandbox {sandbox.id} ended early")
        if proc.deadline_hit:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "context deadline exceeded")
        yield _event("end", go_end_event(value))

    def list(self, request, ctx) -> process_pb.ListResponse:
        procs = self.fake.sandbox_of(ctx.request_headers).running()
        infos = [process_pb.ProcessInfo(config=p.config, pid=p.pid, tag=p.tag) for p in procs]
        return process_pb.ListResponse(processes=infos)

    def send_signal(self, request, ctx) -> process_pb.SendSignalResponse:
        proc = self.fake.sandbox_of(ctx.request_headers).find(request.process)
        signum = {process_pb.Signal.SIGKILL: signal.SIGKILL, process_pb.Signal.SIGTERM: signal.SIGTERM}
        if request.signal not in signum:
            raise ConnectError(Code.INVALID_ARGUMENT, f"invalid signal: {request.signal}")
        proc.signal(signum[request.signal])
        return process_pb.SendSignalResponse()


class FilesystemService(filesystem_connect.FilesystemSync):
    """envd's filesystem.Filesystem: Stat, MakeDir, ListDir, Remove and Move."""

    def __init__(self, fake: FakeE2B):
        self.fake = fake

    def _resolve(self, ctx, path: str) -> tuple[FakeSandbox, Path]:
        sandbox = self.fake.sandbox_of(ctx.request_headers)
        try:
            return sandbox, sandbox.host_path(path)
        except SandboxPathError as e:
            raise ConnectError(Code.INVALID_ARGUMENT, str(e)) from None

    @staticmethod
    def _existing(host: Path, path: str) -> Path:
        if not os.path.lexists(host):
            raise ConnectError(Code.NOT_FOUND, f"file not found: {path}")
        return host

    @staticmethod
    def _entry(sandbox: FakeSandbox, host: Path) -> filesystem_pb.EntryInfo:
        link = host.lstat()
        is_link = stat.S_ISLNK(link.st_mode)
        target = host.stat() if is_link and host.exists() else link
        is_dir = stat.S_ISDIR(target.st_mode)
        return filesystem_pb.EntryInfo(
            name="/" if host == sandbox.root else host.name,  # Go's filepath.Base("/")
            type=filesystem_pb.FileType.DIRECTORY if is_dir else filesystem_pb.FileType.FILE,
            path=sandbox.sandbox_path(host),
            size=target.st_size,
            mode=link.st_mode & 0o777,
            permissions=stat.filemode(link.st_mode),
            owner="user",
            group="user",
            modified_time=Timestamp(seconds=int(link.st_mtime), nanos=link.st_mtime_ns % 1_000_000_000),
            symlink_target=os.readlink(host) if is_link else None,
            is_symlink=is_link,
        )

    def stat(self, request, ctx) -> filesystem_pb.StatResponse:
        sandbox, host = self._resolve(ctx, request.path)
        return filesystem_pb.StatResponse(entry=self._entry(sandbox, self._existing(host, request.path)))

    def make_dir(self, request, ctx) -> filesystem_pb.MakeDirResponse:
        sandbox, host = self._resolve(ctx, request.path)
        if host.is_dir():
            raise ConnectError(Code.ALREADY_EXISTS, f"directory already exists: {request.path}")
        if os.path.lexists(host):
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"path already exists but is not a directory: {request.path}"
            )
        host.mkdir(parents=True)
        return filesystem_pb.MakeDirResponse(entry=self._entry(sandbox, host))

    def list_dir(self, request, ctx) -> filesystem_pb.ListDirResponse:
        sandbox, host = self._resolve(ctx, request.path)
        if not self._existing(host, request.path).is_dir():
            raise ConnectError(Code.INVALID_ARGUMENT, f"path is not a directory: {request.path}")

        def walk(directory: Path, depth: int) -> Iterator[Path]:
            for child in sorted(directory.iterdir()):
                yield child
                if depth > 1 and child.is_dir() and not child.is_symlink():
                    yield from walk(child, depth - 1)

        entries = [self._entry(sandbox, child) for child in walk(host, max(request.depth, 1))]
        return filesystem_pb.ListDirResponse(entries=entries)

    def remove(self, request, ctx) -> filesystem_pb.RemoveResponse:
        _, host = self._resolve(ctx, request.path)
        self._existing(host, request.path)
        if host.is_dir() and not host.is_symlink():
            shutil.rmtree(host)
        else:
            host.unlink()
        return filesystem_pb.RemoveResponse()

    def move(self, request, ctx) -> filesystem_pb.MoveResponse:
        sandbox, source = self._resolve(ctx, request.source)
        _, destination = self._resolve(ctx, request.destination)
        self._existing(source, request.source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, destination)
        return filesystem_pb.MoveResponse(entry=self._entry(sandbox, destination))


# -- HTTP plumbing ---------------------------------------------------------------------------------------


def _read_chunked(stream) -> bytes:
    """Decode a Transfer-Encoding: chunked body (the SDK streams Connect requests that way)."""
    chunks = []
    while size := int(stream.readline().split(b";")[0].strip() or b"0", 16):
        chunks.append(stream.read(size))
        stream.readline()  # the CRLF closing each chunk
    while stream.readline() not in (b"\r\n", b"\n", b""):
        pass  # trailers
    return b"".join(chunks)


class _Handler(WSGIRequestHandler):
    """wsgiref's handler, giving apps a bounded, de-chunked request body with a Content-Length."""

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            return
        # Buffer the whole body: connectrpc drains wsgi.input to EOF on errors, which on the raw socket
        # would wait forever for a client that is itself waiting for the response.
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = _read_chunked(self.rfile)
            self.headers["Content-Length"] = str(len(body))
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.rfile = io.BytesIO(body)
        handler = ServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        handler.run(self.server.get_app())  # writes and flushes every yielded frame as it comes

    def log_message(self, *args) -> None:
        pass  # keep test output quiet; `FakeE2B.requests` is the log


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck stream must not block shutdown


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """(filename, data) for each part; the SDK sends one part named "file" per file."""
    header = Message()
    header["content-type"] = content_type
    boundary = str(header.get_param("boundary") or "").encode()
    files = []
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary)[1:]:
        if part.startswith(b"--"):
            break  # closing delimiter
        head, _, data = part.partition(b"\r\n\r\n")
        # httpx sends non-ASCII file names as raw UTF-8 in the part header.
        filename = HeaderParser().parsestr(head.lstrip(b"\r\n").decode("utf-8")).get_filename() or ""
        files.append((filename, data))
    return files


def _respond(start_response, code: int, body=None) -> list[bytes]:
    data = b"" if body is None else json.dumps(body).encode()
    content = [("Content-Type", "application/json")] if body is not None else []
    start_response(f"{code} {HTTPStatus(code).phrase}", [*content, ("Content-Length", str(len(data)))])
    return [data]


def _error(start_response, code: int, message: str) -> list[bytes]:
    """The JSON error body both the API and envd's HTTP routes use; the SDK reads its "message"."""
    return _respond(start_response, code, {"code": code, "message": message})


class FakeE2B:
    """The fake: REST control plane and envd on one port, one temp directory per sandbox."""

    def __init__(
        self,
        api_key: str | None = "e2b_fake_api_key",
        rewrite_cmd: Callable[[str], str] | None = None,
        keepalive_interval: float | None = None,
        python: SimulatedPython | None = None,
    ):
        self.api_key = api_key  # None accepts any key
        self.python = python  # None: the host's own interpreters stand in for the image's
        self.rewrite_cmd = rewrite_cmd  # sees the command as sent, before /home/user is mapped
        self.keepalive_interval = keepalive_interval  # None: honour the client's Keepalive-Ping-Interval
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._base: Path | None = None
        self._server: _Server | None = None
        self._process_app = process_connect.ProcessWSGIApplication(ProcessService(self))
        self._filesystem_app = filesystem_connect.FilesystemWSGIApplication(FilesystemService(self))

    # -- lifecycle and client configuration ----------------------------------------------------------

    def start(self) -> FakeE2B:
        self._base = Path(tempfile.mkdtemp(prefix="fake-e2b-")).resolve()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.set_app(self)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        for sandbox in list(self.sandboxes.values()):
            sandbox.kill()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._base:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> FakeE2B:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Environment for REST mode: create/kill go to the fake's API, envd calls to its sandbox URL."""
        return {
            "E2B_API_URL": self.url,
            "E2B_SANDBOX_URL": self.url,
            "E2B_API_KEY": self.api_key or "e2b_any",
        }

    def debug_env(self) -> dict[str, str]:
        """Environment for E2B_DEBUG mode: no REST calls, the sandbox id is always "debug_sandbox_id"."""
        return {"E2B_DEBUG": "true", "E2B_SANDBOX_URL": self.url}

    def create_sandbox(
        self, template="base", timeout=DEFAULT_TIMEOUT, envs=None, metadata=None, sandbox_id=None
    ):
        sandbox_id = sandbox_id or "fake" + secrets.token_hex(8)
        root = Path(tempfile.mkdtemp(prefix=f"{sandbox_id}-", dir=self._base))
        sandbox = FakeSandbox(
            sandbox_id, root, template, timeout, dict(envs or {}), dict(metadata or {}), self.python
        )
        self.sandboxes[sandbox_id] = sandbox
        return sandbox

    def sandbox_of(self, headers) -> FakeSandbox:
        """The live sandbox a request is routed to (the router has already refused unknown ones)."""
        sandbox = self.sandboxes.get(headers.get("e2b-sandbox-id", ""))
        if sandbox is None or not sandbox.alive:
            raise ConnectError(Code.UNAVAILABLE, f"sandbox: {NOT_FOUND_MESSAGE}")
        return sandbox

    # -- routing -------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        self.requests.append((method, path))
        if path.startswith(("/sandboxes", "/v2/sandboxes")):
            return self._rest(environ, start_response, method, path)
        return self._envd(environ, start_response, method, path)

    def _rest(self, environ, start_response, method: str, path: str):
        if self.api_key is not None and environ.get("HTTP_X_API_KEY") != self.api_key:
            return _error(start_response, 401, "Invalid API key")
        body = json.loads(self._body(environ) or b"{}")
        parts = path.strip("/").removeprefix("v2/").split("/")
        if method == "POST" and parts == ["sandboxes"]:
            sandbox = self.create_sandbox(
                template=body.get("templateID", "base"),
                timeout=body.get("timeout", DEFAULT_TIMEOUT),
                envs=body.get("envVars"),
                metadata=body.get("metadata"),
            )
            return _respond(start_response, 201, self._describe(sandbox))
        sandbox = self.sandboxes.get(parts[1]) if len(parts) > 1 else None
        if sandbox is None or not sandbox.alive:
            return _error(start_response, 404, f"sandbox {parts[1:2]} not found")
        if method == "DELETE" and len(parts) == 2:
            sandbox.kill()
            return _respond(start_response, 204)
        if method == "POST" and parts[2:] == ["connect"]:
            sandbox.set_timeout(max(sandbox.timeout, body.get("timeout", 0)))  # connect only extends the TTL
            return _respond(start_response, 200, self._describe(sandbox))
        if method == "POST" and parts[2:] == ["timeout"]:
            sandbox.set_timeout(body["timeout"])
            return _respond(start_response, 204)
        return _error(start_response, 404, f"no route for {method} {path}")

    @staticmethod
    def _describe(sandbox: FakeSandbox) -> dict:
        return {
            "templateID": sandbox.template,
            "sandboxID": sandbox.id,
            "clientID": "fakeclient",
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": sandbox.token,
        }

    def _envd(self, environ, start_response, method: str, path: str):
        sandbox_id = environ.get("HTTP_E2B_SANDBOX_ID", "")
        with self._lock:
            if sandbox_id == DEBUG_SANDBOX_ID and sandbox_id not in self.sandboxes:
                # Debug mode never calls the REST API, so its one sandbox appears on first use, tokenless.
                self.create_sandbox(sandbox_id=sandbox_id).token = None
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or not sandbox.alive:
            # Answered by E2B's edge proxy, before the request ever reaches envd.
            body = {"sandboxId": sandbox_id, "message": NOT_FOUND_MESSAGE, "code": 502}
            return _respond(start_response, 502, body)
        if sandbox.token is not None and environ.get("HTTP_X_ACCESS_TOKEN") != sandbox.token:
            return _error(start_response, 401, "unauthorized access, please provide a valid access token")
        if path == "/health":
            return _respond(start_response, 204)
        if path.startswith("/process.Process/"):
            return self._process_app(environ, start_response)
        if path.startswith("/filesystem.Filesystem/"):
            return self._filesystem_app(environ, start_response)
        if path == "/files" and method in ("GET", "POST"):
            try:
                return self._files(environ, start_response, sandbox, method)
            except SandboxPathError as e:
                return _error(start_response, 400, str(e))
        return _error(start_response, 404, f"no route for {method} {path}")

    @staticmethod
    def _body(environ) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return environ["wsgi.input"].read(length) if length else b""

    def _files(self, environ, start_response, sandbox: FakeSandbox, method: str):
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if method == "GET":
            return self._download(start_response, sandbox, query.get("path", ""))
        body, content_type = self._body(environ), environ.get("CONTENT_TYPE", "")
        if content_type.startswith("multipart/form-data"):
            files = _parse_multipart(body, content_type)
            if len(files) == 1 and "path" in query:
                files = [(query["path"], files[0][1])]
        else:  # application/octet-stream, one file per request, optionally gzipped
            gzipped = environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip"
            files = [(query.get("path", ""), gzip.decompress(body) if gzipped else body)]
        written = []
        for path, data in files:
            host = sandbox.host_path(path)
            if host.is_dir():
                return _error(start_response, 400, f"path '{path}' is a directory")
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(data)
            written.append({"name": host.name, "type": "file", "path": sandbox.sandbox_path(host)})
        return _respond(start_response, 200, written)

    @staticmethod
    def _download(start_response, sandbox: FakeSandbox, path: str):
        host = sandbox.host_path(path)
        if not host.exists():
            return _error(start_response, 404, f"path '{path}' does not exist")
        if host.is_dir():
            return _error(start_response, 400, f"path '{path}' is a directory")
        size = host.stat().st_size
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
        )

        def chunks() -> Iterator[bytes]:
            with host.open("rb") as f:
                while chunk := f.read(64 * 1024):
                    yield chunk

        return chunks()
