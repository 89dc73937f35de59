"""The sandbox contract: where the worker runs, cut to four calls on plain values.

The run logic (compile, bundle, parity, report) must not care whether the worker runs in a child
process on this machine or in an E2B cloud sandbox; everything that differs between the two lives
behind this class. `LocalSandbox` and `E2BSandbox` are its only implementations, and the same
contract tests run against both.

    with LocalSandbox() as box:
        hashes = box.prepare(bundle.files)
        code = box.run(["python", "worker.py", "--run-id", rid], env, timeout, on_line=print)
        fetched = box.fetch(out_dir, policy)
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LineHandler = Callable[[str], None]


class SandboxError(Exception):
    """A failure of the sandbox itself (not of the pipeline), with the fix in `hint`."""

    def __init__(self, message: str, hint: str = "", stderr_tail: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.stderr_tail = stderr_tail


class SandboxTimeout(SandboxError):
    pass


MIN_PYTHON = (3, 11)  # the worker uses datetime.UTC and `X | Y` types
PYTHON_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
ALWAYS = ("report.json", "_system/*", "*/cleaned_config.json", "*.sql", "*.txt", "*.json", "*.log")
DATA = ("*.parquet", "*.feather", "*.pkl", "*.csv", "*.csv.gz", "*.tsv")


@dataclass(frozen=True)
class ArtifactPolicy:
    """Which files come back: diagnostics always, data only when asked, nothing above the size cap.

    Compatible with Osiris's switches E2B_DOWNLOAD_DATA_ARTIFACTS and E2B_ARTIFACT_MAX_MB; unlike
    Osiris, writer outputs and DDL plans are included.
    """

    download_data: bool = False
    max_bytes: int | None = 5 * 1024 * 1024  # None: no cap

    @classmethod
    def everything(cls) -> ArtifactPolicy:
        """A local run writes on this machine: every output is kept, whatever its size."""
        return cls(download_data=True, max_bytes=None)

    @classmethod
    def from_env(cls, environ=os.environ, download_data: bool | None = None) -> ArtifactPolicy:
        data = (
            environ.get("E2B_DOWNLOAD_DATA_ARTIFACTS", "") == "1" if download_data is None else download_data
        )
        try:
            max_mb = float(environ.get("E2B_ARTIFACT_MAX_MB", "5"))
        except ValueError:
            max_mb = 5.0
        return cls(download_data=data, max_bytes=int(max_mb * 1024 * 1024))

    def decide(self, path: str, size: int) -> str | None:
        """None to download, else the reason it is skipped, with the setting that would bring it back."""
        skipped = self.skip(path, size)
        return f"{skipped[0]} (set {skipped[1]})" if skipped else None

    def skip(self, path: str, size: int) -> tuple[str, str] | None:
        """None to download, else (why it stays in the sandbox, the setting that brings it back)."""
        settings = []
        if self.max_bytes is not None and size > self.max_bytes:
            settings.append(f"E2B_ARTIFACT_MAX_MB={math.ceil(size / (1024 * 1024))}")
        wanted = self.download_data or (not is_data(path) and _is_diagnostic(path))
        if not wanted:
            settings.insert(0, "E2B_DOWNLOAD_DATA_ARTIFACTS=1")
        if not settings:
            return None
        if self.max_bytes is not None and size > self.max_bytes:
            why = f"larger than {self.max_bytes / (1024 * 1024):g} MB"
        else:
            why = "data file" if is_data(path) else "not a diagnostic file"
        return why, " and ".join(settings)


def is_data(path: str) -> bool:
    """An output of the pipeline (never altered on its way back), as opposed to a diagnostic file."""
    name = path.split("/")[-1]
    return path.startswith("data/") or any(fnmatch.fnmatch(name, p) for p in DATA)


def _is_diagnostic(path: str) -> bool:
    name = path.split("/")[-1]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in ALWAYS)


def python_problem(python: str, code: int, output: str) -> SandboxError | None:
    """What is wrong with the sandbox's interpreter, from the PYTHON_PROBE's exit code and output."""
    need = ".".join(map(str, MIN_PYTHON))
    hint = (
        f"The worker needs Python {need} or newer. Use a template that has it (`osiris-action "
        "e2b-template --build NAME`, then --e2b-template NAME), or name its interpreter with --e2b-python."
    )
    found = output.strip().splitlines()[-1:] if output.strip() else []
    if code != 0:
        missing = " (not found)" if code == 127 else ""
        detail = f": {found[0]}" if found else ""
        return SandboxError(
            f"'{python}' could not run in the sandbox{missing}, exit code {code}{detail}", hint
        )
    try:
        version = tuple(int(part) for part in found[0].split("."))
    except (IndexError, ValueError):
        return SandboxError(
            f"'{python}' did not report its version (it printed {output.strip()[:80]!r})", hint
        )
    if version[:2] < MIN_PYTHON:
        return SandboxError(
            f"the sandbox's Python is {found[0]}; the worker needs Python {need} or newer", hint
        )
    return None


@dataclass
class Fetched:
    downloaded: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)


class Sandbox:
    name = "sandbox"
    python = "python3"

    def prepare(self, files: dict[str, bytes]) -> dict[str, str]:
        """Upload the bundle; returns the sha256 the host computed for each file."""
        raise NotImplementedError

    def check_python(self) -> None:
        """Raise a SandboxError saying what is needed when the sandbox's Python cannot run the worker.

        Called before the bundle is uploaded: a worker that cannot start would otherwise die before its
        first event, and the run would show nothing but a missing report. This default runs the probe
        through `run`; a sandbox that must exist before it can run anything overrides it.
        """
        lines: list[str] = []
        try:
            code = self.run([self.python, "-c", PYTHON_PROBE], {}, 60, lines.append)
        except OSError as exc:  # the interpreter itself is missing or not executable
            raise SandboxError(
                f"'{self.python}' could not be started: {exc.strerror}",
                python_problem(self.python, 1, "").hint,
            ) from exc
        output = "\n".join(lines) if code == 0 else getattr(self, "stderr_tail", "")
        problem = python_problem(self.python, code, output)
        if problem is not None:
            raise problem

    def install(self, out: Path) -> None:
        """Install the bundle's requirements.txt inside the sandbox; the log is kept under out/."""

    def missing_imports(self) -> list[str]:
        """Modules the bundle needs that the sandbox's Python cannot import."""
        return []

    def run(self, command: list[str], env: dict[str, str], timeout: float, on_line: LineHandler) -> int:
        """Run the command in the bundle folder with exactly `env`; each stdout line goes to on_line.
        Returns the exit code; raises SandboxTimeout or SandboxError when the sandbox fails."""
        raise NotImplementedError

    def fetch(self, out: Path, policy: ArtifactPolicy) -> Fetched:
        """Copy artifacts/ and data/ back under `out` as the policy allows."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop a running command from another thread (cancellation)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
