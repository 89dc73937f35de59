"""A ready-made E2B template: Python 3.11 with the drivers' dependencies pinned as in requirements.lock.

Why: `--install-deps` runs `pip install` inside every sandbox, which costs a minute per run and
depends on PyPI being reachable; a template built once starts with everything already there
(`--e2b-template NAME`). The definition uses the SDK's Template builder, so the same object renders
offline as a Dockerfile (for review and tests) and builds on E2B.

    osiris-action e2b-template               prints the Dockerfile
    osiris-action e2b-template --build NAME  builds it on E2B as NAME
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path

PYTHON_VERSION = "3.11"
LOCK_FILE = Path(__file__).resolve().parents[2] / "requirements.lock"
# The worker's and every driver's third-party imports, as distribution names.
PACKAGES = (
    "duckdb",
    "pyarrow",
    "connectorx",
    "adbc-driver-postgresql",
    "adbc-driver-manager",
    "psycopg",
    "psycopg-binary",
    "pymysql",
    "httpx",
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock_file: Path = LOCK_FILE) -> dict[str, str]:
    """name -> version for every `name==version` line of a pip-compile lock file (hashes and extras too)."""
    if not lock_file.is_file():
        return {}
    versions = {}
    for line in lock_file.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            versions[_normalize(match.group(1))] = match.group(2)
    return versions


def pins(lock_file: Path = LOCK_FILE) -> list[str]:
    """`name==version` for each package: the lock file's version, else the one installed here.

    A package neither locked nor installed stays unpinned rather than missing from the image.
    """
    locked = locked_versions(lock_file)
    result = []
    for name in PACKAGES:
        version = locked.get(name)
        if version is None:
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                version = None
        result.append(f"{name}=={version}" if version else name)
    return result


def definition(packages: list[str] | None = None):
    """The template: the official Python image, the pinned packages, /home/user as the working folder."""
    from e2b import Template

    return (
        Template()
        .from_python_image(PYTHON_VERSION)
        .pip_install(packages if packages is not None else pins())
        .set_workdir("/home/user")
    )


def render_dockerfile(packages: list[str] | None = None) -> str:
    """The template as a Dockerfile; offline, no API key needed."""
    from e2b import Template

    return Template.to_dockerfile(definition(packages))


def build(
    name: str,
    api_key: str | None,
    on_log: Callable[[str], None] | None = None,
    packages: list[str] | None = None,
):
    """Build the template on E2B as `name` ("name" or "name:tag"); returns the SDK's BuildInfo.

    Failures come back as one SandboxError with a hint, like the sandbox's own.
    """
    from e2b import Template

    from osiris_action.sandbox.base import SandboxError
    from osiris_action.sandbox.e2b import translate

    if not api_key:  # before the SDK logs "build started" for a build that cannot start
        raise SandboxError("no E2B API key was given", "Set E2B_API_KEY to build the template.")

    def log(entry) -> None:
        if on_log is not None:
            on_log(str(entry))

    try:
        return Template.build(definition(packages), name, api_key=api_key, on_build_logs=log)
    except Exception as exc:
        error = translate(exc, f"building the template '{name}'", api_key)
        if error is None:
            raise
        raise error from exc
