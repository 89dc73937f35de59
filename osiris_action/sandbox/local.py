"""The local sandbox: the worker as a child process in a fresh temporary folder.

The child sees a scrubbed environment: PATH, locale and our own settings, plus exactly the variables
the caller passes (the secrets the manifest's connections reference). Nothing else of the parent's
environment, such as E2B_API_KEY or GITHUB_TOKEN, reaches it.

Scrubbing is not enough on its own: Linux lets a process read the environment and memory of another
process of the same user (`/proc/<pid>/environ`, `/proc/<pid>/mem`), and root reads every process's.
So the host makes itself undumpable before it reads a secret (`protect_process`), which closes those
files to other processes of its user that lack CAP_SYS_PTRACE, and the worker starts with no
capabilities at all and cannot gain any (`no_new_privs`): as root (the action's container) it then
reads neither its parent nor PID 1.

The worker's interpreter starts with that scrubbed environment only; `run` hands it the folder, the
variables and the command on its stdin, and it runs the uploaded worker.py as `python worker.py` would.
So the secrets are in the worker's memory only, never in its `/proc/<pid>/environ`. A run of the CLI
starts that interpreter early (`start_warm`): it imports the libraries every worker needs (about 0.2 s)
while the host still validates and compiles.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

from osiris_action.sandbox.base import (
    ArtifactPolicy,
    Fetched,
    LineHandler,
    Sandbox,
    SandboxError,
    SandboxTimeout,
)

PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")

_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 4, 24, 38
_LAST_CAP = 63


def _prctl():
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no /proc to protect
        return None


def protect_process() -> None:
    """Make this process undumpable: other processes of its user can no longer read its environment or
    memory through /proc. Call it before any secret is read."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _drop_privileges() -> None:
    """In the child before exec: no capability survives the exec, and none can be gained later."""
    prctl = _PRCTL
    for cap in range(_LAST_CAP + 1):
        prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


_PRCTL = _prctl()


def unprivileged(command: list[str]) -> tuple[list[str], object]:
    """`command` started with no capabilities: `setpriv` where it exists (no code runs between fork and
    exec in a threaded parent), else the same drop in the child before exec."""
    if _PRCTL is None:
        return command, None
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *command], None
    return command, _drop_privileges


_warm: subprocess.Popen | None = None  # started early, for the next worker
_warm_lock = threading.Lock()


def _base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def _popen(command: list[str], env: dict[str, str], cwd, stdin=None) -> subprocess.Popen:
    command, preexec = unprivileged(command)
    return subprocess.Popen(
        command,
        preexec_fn=preexec,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )


_INTERPRETER = str(Path(__file__).with_name("interpreter.py"))


def _interpreter() -> subprocess.Popen:
    # run as a file, with -P: neither its folder nor the working directory is on sys.path while it
    # imports, and it needs no installed osiris_action (a source checkout runs it the same way)
    command = [sys.executable, "-P", _INTERPRETER]
    return _popen(command, _base_env(), "/", subprocess.PIPE)


def start_warm() -> None:
    """Start the next local worker's interpreter now, so that its imports overlap the host's work."""
    global _warm
    with _warm_lock:
        if _warm is None:
            with contextlib.suppress(OSError):  # none now: the worker's own start will say why
                _warm = _interpreter()


def _start_script(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """`python script args...` in `cwd` with exactly `env`: the warm interpreter if one waits, else a new one.
    The environment goes through the pipe, so the secrets in it never show in /proc/<pid>/environ."""
    global _warm
    request = json.dumps({"cwd": str(cwd), "env": env, "argv": command[1:]}) + "\n"
    with _warm_lock:
        proc, _warm = _warm, None
    if proc is not None and not _send(proc, request):  # it died while it waited
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        proc = _interpreter()
        _send(proc, request)  # if it fails, the worker's exit status and stderr say why
    return proc


def _send(proc: subprocess.Popen, request: str) -> bool:
    try:
        proc.stdin.write(request)
        proc.stdin.close()
        return True
    except OSError:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        return False


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(self, python: str | None = None):
        self.python = python or sys.executable
        self.root = Path(tempfile.mkdtemp(prefix="osiris-sandbox-"))
        self._proc: subprocess.Popen | None = None
        self._timed_out = False
        self._stopped = False
        self.uploaded: set[str] = set()
        self.stderr_tail = ""

    def check_python(self) -> None:
        # The host's own interpreter already runs this package, which needs what the worker needs: the
        # probe (a process start, ~25 ms of every run) is only for another interpreter.
        if self.python != sys.executable:
            super().check_python()

    def prepare(self, files: dict[str, bytes]) -> dict[str, str]:
        import hashlib

        self.uploaded = set(files)
        for rel, data in files.items():
            path = self.root / rel
            if not path.resolve().is_relative_to(self.root.resolve()):  # never write outside the sandbox
                raise SandboxError(f"refusing to upload {rel!r}: it points outside the sandbox folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}

    def run(self, command: list[str], env: dict[str, str], timeout: float, on_line: LineHandler) -> int:
        if self._stopped:  # cancelled before the worker started: never start it
            return -9
        child_env = {**_base_env(), "HOME": str(self.root), **env}
        stderr_tail: deque[str] = deque(maxlen=20)
        if command[0] == sys.executable and command[1:2] and not command[1].startswith("-"):
            self._proc = _start_script(command, self.root, child_env)
        else:
            self._proc = _popen(command, child_env, self.root)
        drain = threading.Thread(target=lambda: stderr_tail.extend(self._proc.stderr), daemon=True)
        drain.start()
        timer = threading.Timer(timeout, self._expire) if timeout else None
        if timer:
            timer.start()
        try:
            for line in self._proc.stdout:
                on_line(line.rstrip("\n"))
            code = self._proc.wait()
        finally:
            if timer:
                timer.cancel()
            drain.join(timeout=5)
        self.stderr_tail = "".join(stderr_tail)
        if self._timed_out:
            raise SandboxTimeout(
                f"the worker did not finish within {timeout:g} s and was stopped",
                "Raise --timeout, or make the pipeline smaller.",
                self.stderr_tail,
            )
        return code

    def _expire(self) -> None:
        self._timed_out = True
        self.stop()

    def stop(self) -> None:
        self._stopped = True
        if self._proc and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def fetch(self, out: Path, policy: ArtifactPolicy) -> Fetched:
        fetched = Fetched()
        for folder in ("artifacts", "data"):
            base = self.root / folder
            if not base.is_dir():
                continue
            # a link is never followed out: only files the worker wrote come back
            for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
                rel = path.relative_to(self.root).as_posix()
                if rel in self.uploaded:
                    continue
                size = path.stat().st_size
                reason = policy.decide(rel, size)
                if reason:
                    fetched.skipped.append((rel, size, reason))
                    continue
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                fetched.downloaded.append((rel, size))
        return fetched

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
