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


ALWAYS = ("report.json", "_system/*", "*/cleaned_config.json", "*.sql", "*.txt", "*.json", "*.log")
DATA = ("*.parquet", "*.feather", "*.pkl", "*.csv", "*.csv.gz", "*.tsv")


@dataclass(frozen=True)
class ArtifactPolicy:
    """Which files come back: diagnostics always, data only when asked, nothing above the size cap.

    Compatible with Osiris's switches E2B_DOWNLOAD_DATA_ARTIFACTS and E2B_ARTIFACT_MAX_MB; unlike
    Osiris, writer outputs and DDL plans are included.
    """

    download_data: bool = False
    max_bytes: int = 5 * 1024 * 1024

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
        """None to download, else the reason it is skipped."""
        if size > self.max_bytes:
            return f"larger than {self.max_bytes // (1024 * 1024)} MB (raise E2B_ARTIFACT_MAX_MB)"
        name = path.split("/")[-1]
        if any(fnmatch.fnmatch(name, p) for p in DATA) or path.startswith("data/"):
            return None if self.download_data else "data file (set E2B_DOWNLOAD_DATA_ARTIFACTS=1)"
        if any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in ALWAYS):
            return None
        return None if self.download_data else "not a diagnostic file (set E2B_DOWNLOAD_DATA_ARTIFACTS=1)"


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
