"""From command-line paths to checked pipelines: discovery, loading, validation and compilation.

The CLI and the GitHub Action both go through here, so a user's laptop does exactly what CI does.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from osiris_action import connections as conns
from osiris_action.diagnostics import Diagnostic, has_errors
from osiris_action.errors import UsageError
from osiris_action.oml.load import Document, load_file
from osiris_action.oml.validate import validate

if TYPE_CHECKING:  # `validate` never compiles
    from osiris_action.compile import Compiled

# `oml_version:` at the top level, or `steps:` with `component:` under it (an Osiris pipeline missing its
# version, which validation then reports). A Cloud Build or Drone file has `steps:` but no `component:`.
_OML_VERSION = re.compile(rb"^oml_version\s*:", re.M)
_STEPS = re.compile(rb"^steps\s*:", re.M)
_COMPONENT = re.compile(rb"\bcomponent\s*:")


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it, POSIX separators: stable across machines."""
    if not path.is_absolute() and ".." not in path.parts:  # already relative to it; spares a resolve()
        return path.as_posix()
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def discover(args: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for OML files, and globs expanded; sorted, unique."""
    found: dict[str, Path] = {}
    for arg in args:
        path = Path(arg)
        if any(ch in arg for ch in "*?["):
            matches = [Path(m) for m in glob.glob(arg, recursive=True)]
            for match in matches:
                if match.is_file() and _is_oml(match):
                    found[display_path(match)] = match
            continue
        if path.is_dir():
            for sub in sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]):
                if sub.is_file() and sub.name != conns.FILE_NAME and _is_oml(sub):
                    found[display_path(sub)] = sub
        elif path.exists():
            found[display_path(path)] = path
        else:
            raise UsageError(f"no such file or folder: {arg}", "Pass pipeline files, folders or globs.")
    return [found[k] for k in sorted(found)]


def _is_oml(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml") or path.name == conns.FILE_NAME:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    return bool(_OML_VERSION.search(head) or (_STEPS.search(head) and _COMPONENT.search(head)))


@dataclass
class Checked:
    path: Path
    document: Document
    connections: conns.Connections
    diagnostics: list[Diagnostic] = field(default_factory=list)
    compiled: Compiled | None = None

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


class Checker:
    """Validates pipelines, loading each connections file once."""

    def __init__(self, connections_arg: str | None = None):
        self.connections_arg = connections_arg
        self._cache: dict[Path | None, tuple[conns.Connections, list[Diagnostic]]] = {}
        self._found: dict[Path, Path | None] = {}  # pipeline folder → its connections file
        self.connection_diagnostics: list[Diagnostic] = []

    def connections_for(self, pipeline: Path) -> conns.Connections:
        return self._connections(pipeline)[0]

    def _connections(self, pipeline: Path) -> tuple[conns.Connections, list[Diagnostic]]:
        # The search stats up to a dozen paths; pipelines in one folder share the answer.
        if pipeline.parent not in self._found:
            self._found[pipeline.parent] = conns.find(self.connections_arg, pipeline.parent)
        path = self._found[pipeline.parent]
        key = path.resolve() if path else None
        if key not in self._cache:
            loaded = conns.load(path, display_path(path) if path else None)
            self._cache[key] = loaded
            self.connection_diagnostics += loaded[1]
        return self._cache[key]

    def check(self, path: Path) -> Checked:
        doc, diags = load_file(path, display_path(path))
        connections = self.connections_for(path)
        checked = Checked(path, doc, connections, list(diags))
        if all(d.code == "OML002" for d in diags):  # duplicates still leave a usable document
            checked.diagnostics += validate(doc, connections)
        return checked

    def compile(
        self, path: Path, params: dict[str, str] | None = None, profile: str | None = None
    ) -> Checked:
        from osiris_action.compile import compile_document

        checked = self.check(path)
        # A broken connections file (a literal secret, say) stops the compile as it fails `validate`.
        checked.diagnostics += self._connections(path)[1]
        if checked.ok:
            result = compile_document(checked.document, params, profile)
            if isinstance(result, list):
                checked.diagnostics += result
            else:
                checked.compiled = result
                checked.diagnostics += result.notices
        return checked
