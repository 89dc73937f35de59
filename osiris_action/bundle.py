"""The bundle: every file a sandbox receives, each with the sha256 the host computed before upload.

worker.py, the driver files the manifest needs (and nothing else), the manifest, the connection
*references* per step (`${ENV}` names, never values), the input data files of CSV extractors and,
when dependencies are to be installed, a pinned requirements file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osiris_action import components
from osiris_action.connections import ENV_REF, REF, SECRET_FIELDS, Connections, runner_owned
from osiris_action.errors import OsirisError
from osiris_action.manifest import canonical_bytes

WORKER = Path(__file__).with_name("worker.py")
DATA = "data"


@dataclass
class Bundle:
    files: dict[str, bytes] = field(default_factory=dict)
    env_names: set[str] = field(default_factory=set)
    literal_env: dict[str, str] = field(default_factory=dict)  # secrets written literally in the file

    @property
    def hashes(self) -> dict[str, str]:
        return {path: hashlib.sha256(data).hexdigest() for path, data in sorted(self.files.items())}

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())

    def seal(self) -> str:
        """Add bundle.json (the list the worker checks itself against); returns its sha256."""
        listed = {p: h for p, h in self.hashes.items() if p.endswith((".py", ".json")) and p != "bundle.json"}
        data = canonical_bytes({"files": listed})
        self.files["bundle.json"] = data
        return hashlib.sha256(data).hexdigest()


def _connection_key(step: dict, connections: Connections) -> tuple[str, str | None] | None:
    component = components.get(step["component"])
    ref = step.get("connection")
    if isinstance(ref, str) and REF.match(ref):
        family, alias = REF.match(ref).groups()
        return family, alias
    if not component.needs_connection:
        return None
    for family in component.families:
        if family in connections.families and connections.default_alias(family):
            return family, None  # Osiris applies no filesystem default; we honour `default: true`
    if "filesystem" in component.families or component.connection_optional:
        return None  # no filesystem connection at all: paths are relative to the pipeline's folder
    raise OsirisError(
        f"step '{step['id']}' has no connection and no default {component.families[0]} connection exists",
        f'Add `connection: "@{component.families[0]}.<alias>"` to the step\'s config.',
        step=step["id"],
    )


def _without_literal_secrets(fields: dict[str, Any], bundle: Bundle) -> dict[str, Any]:
    """A secret written literally in osiris_connections.yaml (CON002) still never lands in a file: it
    travels like an `${ENV}` one, as a variable of the worker's command."""
    for key, value in fields.items():
        if isinstance(value, str) and value and key.lower() in SECRET_FIELDS and not ENV_REF.search(value):
            # numbered, not derived from the value: a name must tell nothing about the secret
            known = {v: k for k, v in bundle.literal_env.items()}
            name = known.get(value) or f"OSIRIS_SECRET_{len(bundle.literal_env) + 1}"
            bundle.literal_env[name] = value
            fields[key] = "${" + name + "}"
    return fields


def build(
    manifest: dict[str, Any],
    manifest_bytes: bytes,
    connections: Connections,
    pipeline_dir: Path,
    requirements: bool = False,
    root: Path | None = None,
) -> Bundle:
    """`root` is the folder the host may read data from: the workspace in the action; by default the
    pipeline's project (its git work tree, else the folder holding the pipeline and its connections)."""
    bundle = Bundle()
    root = (root or project_root(pipeline_dir, connections.path)).resolve()
    bundle.files["worker.py"] = WORKER.read_bytes()
    bundle.files["manifest.json"] = manifest_bytes
    wanted = {
        "__init__.py",
        "_common.py",
        "_duckdb.py",
        "_streams.py",
    }  # the worker streams and fingerprints with these
    step_connections: dict[str, dict[str, Any]] = {}
    for step in manifest["steps"]:
        wanted.update(step["files"])
        key = _connection_key(step, connections)
        spec: dict[str, Any] = {}
        label = "pipeline"
        if key is not None:
            alias, fields = connections.lookup(*key)
            bundle.env_names |= connections.env_names(key[0], alias)
            spec, label = _without_literal_secrets(dict(fields), bundle), _folder_name(f"{key[0]}-{alias}")
        if "filesystem" in components.get(step["component"]).families:
            spec = _filesystem(step, spec, f"{DATA}/{label}", connections, (pipeline_dir, root), bundle)
        step_connections[step["id"]] = spec or None
    for name in sorted(wanted):
        bundle.files[f"osiris_drivers/{name}"] = (components.DRIVERS_DIR / name).read_bytes()
    bundle.files["connections.json"] = canonical_bytes(step_connections)
    if requirements:
        bundle.files["requirements.txt"] = requirements_for(manifest).encode()
    return bundle


def project_root(pipeline_dir: Path, connections_file: Path | None) -> Path:
    """The pipeline's project: the git work tree holding it, else the folder that holds both the
    pipeline and its connections file."""
    here = pipeline_dir.resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    if connections_file is None:
        return here
    return Path(os.path.commonpath([here, connections_file.resolve().parent]))


def _folder_name(label: str) -> str:
    """A connection's family and alias as one plain folder name of the sandbox (an alias is user data)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "connection"
    return safe if safe == label else f"{safe}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"


def _filesystem(
    step: dict,
    spec: dict,
    sandbox_base: str,
    connections: Connections,
    folders: tuple[Path, Path],
    bundle: Bundle,
) -> dict:
    """Map the step's folder into the sandbox's data folder, and ship the files an extractor reads.
    `folders` are the pipeline's folder and the root no data path may leave (symlinks resolved)."""
    pipeline_dir, root = folders
    base_dir = spec.get("base_dir", ".")
    if isinstance(base_dir, str) and any(runner_owned(n) for n in ENV_REF.findall(base_dir)):
        raise OsirisError(
            f"the connection's base_dir {base_dir!r} names a variable of the runner",
            "A connection may read only variables the workflow sets for it; see CON003.",
            step=step["id"],
        )
    if isinstance(base_dir, str) and ENV_REF.search(base_dir):
        base_dir = ENV_REF.sub(lambda m: os.environ.get(m.group(1), m.group(0)), base_dir)
    if not isinstance(base_dir, str) or ENV_REF.search(base_dir):
        raise OsirisError(
            f"the connection's base_dir must be a folder path, got {base_dir!r}",
            "Set `base_dir:` of the filesystem connection to a path such as ./data.",
            step=step["id"],
        )
    home = connections.path.parent if connections.path and spec.get("base_dir") else pipeline_dir
    local_base = (home / base_dir).resolve()
    if not local_base.is_relative_to(root):  # /proc/self, /etc, or a symlinked folder leading there
        raise OsirisError(
            f"the data folder {base_dir!r} resolves to {local_base}, outside {root}",
            "Keep base_dir (and every folder on its way, symlinks included) inside the repository; "
            "data files outside it are not read.",
            step=step["id"],
        )
    if step["component"] == "filesystem.csv_extractor":
        source = (local_base / step["config"]["path"]).resolve()
        if not source.is_relative_to(local_base):
            raise OsirisError(
                f"path '{step['config']['path']}' leads outside the base folder {local_base}",
                "Keep data files inside the connection's base_dir.",
                step=step["id"],
            )
        if not source.is_file():
            raise OsirisError(
                f"input {'is a folder, not a file' if source.is_dir() else 'file not found'}: {source}",
                "Check `path` (relative to the connection's base_dir or the pipeline's folder).",
                step=step["id"],
            )
        bundle.files[f"{sandbox_base}/{source.relative_to(local_base).as_posix()}"] = source.read_bytes()
    return {**spec, "base_dir": sandbox_base}


def requirements_for(manifest: dict[str, Any]) -> str:
    """Requirements pinned to the versions this host runs, for the imports the manifest's drivers need."""
    from importlib.metadata import PackageNotFoundError, version

    imports = {"duckdb", "pyarrow"}  # the worker's own needs: Arrow tables and fingerprints
    for step in manifest["steps"]:
        imports.update(components.get(step["component"]).spec.get("requires", []))
    distributions = {name.replace("_", "-").lower() for name in imports}
    if "adbc-driver-postgresql" in distributions:
        distributions.add("adbc-driver-manager")
    if "psycopg" in distributions:
        distributions.add("psycopg-binary")
    lines = []
    for name in sorted(distributions):
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"
