"""osiris_connections.yaml: finding it, checking it, and resolving `${ENV}` references.

Connections stay references until the last moment: the manifest and the bundle carry `@family.alias`
and `${ENV}` names only; values are read from the environment on the host when a run starts and handed
to the worker as environment variables of that one command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from osiris_action.diagnostics import Diagnostic
from osiris_action.errors import OsirisError
from osiris_action.oml.load import Document, load_file

FILE_NAME = "osiris_connections.yaml"
ENV_REF = re.compile(r"\$\{([^}]+)\}")
REF = re.compile(r"^@([a-zA-Z0-9_-]+)\.([a-zA-Z0-9_-]+)$")

# Connection fields that are mappings of secrets (`headers: {Authorization: ${TOKEN}}`). The file's loader
# spreads each into one field per entry (`headers.Authorization`), so every entry is resolved, passed to
# the worker and redacted like any other secret field.
SECRET_MAPPINGS = frozenset({"headers"})


class _SecretNames(frozenset):
    """Secret field names, plus every `<mapping>.<entry>` of a secret mapping."""

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and "." in key and key.split(".", 1)[0] in SECRET_MAPPINGS:
            return True
        return super().__contains__(key)


# Field names whose values are secrets wherever they appear (connections file or step config).
SECRET_FIELDS = _SecretNames(
    {
        "password",
        "passwd",
        "pwd",
        "token",
        "secret",
        "secret_key",
        "service_key",
        "service_role_key",
        "api_key",
        "access_token",
        "refresh_token",
        "auth_token",
        "auth_username",
        "bearer_token",
        "client_secret",
        "client_key",
        "key",
        "dsn",
        "pg_dsn",
        "sql_dsn",
        "connection_string",
        "anon_key",
        "pg_password",
    }
)
DSN_FIELDS = frozenset({"dsn", "pg_dsn", "sql_dsn", "connection_string"})
KEYWORD_PASSWORD = re.compile(r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))")

# The runner's own variables and the ones this action reads: a pull request could otherwise write
# `password: ${GITHUB_TOKEN}` and receive the job's token (or the E2B key) inside the worker.
RUNNER_PREFIXES = ("GITHUB_", "INPUT_", "ACTIONS_", "RUNNER_", "E2B_", "OSIRIS_SECRET_")
RUNNER_NAMES = frozenset({"OSIRIS_HOME", "OSIRIS_BUNDLE_SHA256", "OSIRIS_TYPES"})


def runner_owned(name: str) -> bool:
    """Whether `${name}` names a variable of the runner or of this action (never a pipeline's)."""
    upper = name.strip().upper()
    return upper.startswith(RUNNER_PREFIXES) or upper in RUNNER_NAMES


@dataclass
class Connections:
    """The parsed file: family → alias → fields, with `${ENV}` references left in place."""

    path: Path | None
    document: Document | None
    families: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def default_alias(self, family: str) -> str | None:
        aliases = self.families.get(family, {})
        for alias, fields in aliases.items():
            if isinstance(fields, dict) and fields.get("default") is True:
                return alias
        return "default" if "default" in aliases else None

    def lookup(self, family: str, alias: str | None) -> tuple[str, dict[str, Any]]:
        """The alias and its raw fields; raises OsirisError with the available choices."""
        where = str(self.path) if self.path else FILE_NAME
        if not self.families:
            raise OsirisError(
                f"no connections configured for family '{family}'",
                f"Create {FILE_NAME} with a `connections: {{{family}: {{...}}}}` entry.",
                file=where,
            )
        if family not in self.families:
            raise OsirisError(
                f"connection family '{family}' not found in {where}",
                f"Available families: {', '.join(sorted(self.families))}.",
                file=where,
            )
        if alias is None:
            alias = self.default_alias(family)
            if alias is None:
                raise OsirisError(
                    f"no default connection for family '{family}'",
                    f"Mark one alias with `default: true` or reference it as @{family}.<alias>; "
                    f"available aliases: {', '.join(sorted(self.families[family]))}.",
                    file=where,
                )
        if alias not in self.families[family]:
            raise OsirisError(
                f"connection alias '{alias}' not found in family '{family}'",
                f"Available aliases: {', '.join(sorted(self.families[family]))}.",
                file=where,
            )
        fields = self.families[family][alias]
        return alias, {k: v for k, v in fields.items() if k not in ("default", "alias")}

    def env_names(self, family: str, alias: str | None) -> set[str]:
        _, fields = self.lookup(family, alias)
        return {
            name for value in fields.values() if isinstance(value, str) for name in ENV_REF.findall(value)
        }

    def resolve(self, family: str, alias: str | None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Fields with every `${VAR}` replaced from `env`; a missing or empty variable is an error."""
        env = os.environ if env is None else env
        alias, fields = self.lookup(family, alias)
        resolved: dict[str, Any] = {}
        for key, value in fields.items():
            if isinstance(value, str):
                for name in ENV_REF.findall(value):
                    if runner_owned(name):
                        raise OsirisError(
                            f"'{key}' in @{family}.{alias} names the runner's variable '{name}'",
                            "A connection may read only variables the workflow sets for it; see CON003.",
                        )
                    if not env.get(name):
                        raise OsirisError(
                            f"environment variable '{name}' is {'empty' if name in env else 'not set'} "
                            f"for '{key}' in @{family}.{alias}",
                            f"Set {name} (in CI: `env: {name}: ${{{{ secrets.{name} }}}}` on the step).",
                        )
                value = ENV_REF.sub(lambda m: env[m.group(1)], value)
            resolved[key] = value
        return resolved


def secret_values(resolved: Mapping[str, Any], raw: Mapping[str, Any] | None = None) -> list[str]:
    """The values in a resolved connection that must never be shown: secret fields, URLs read from the
    environment (they may carry tokens), and every piece of a DSN's password."""
    found = []
    for key, value in resolved.items():
        if not isinstance(value, str) or not value:
            continue
        from_env = raw is not None and isinstance(raw.get(key), str) and bool(ENV_REF.search(raw[key]))
        if key.lower() in SECRET_FIELDS or (from_env and "://" in value):
            found.append(value)
        if "://" in value:
            found += url_password_pieces(value)
        elif key.lower() in DSN_FIELDS:  # libpq keyword form: host=h password='p w' dbname=d
            found += [quoted or bare for quoted, bare in KEYWORD_PASSWORD.findall(value)]
    return found


def url_password_pieces(url: str) -> list[str]:
    """The password of `scheme://user:password@host`, read both ways parsers read it (up to the last `@`,
    as Python does, and up to the first, as libpq does), plus its pieces: a password holding an
    unescaped `/` or `@` makes a driver print part of it as a host or port."""
    rest = url.split("://", 1)[1]
    pieces: set[str] = set()
    last, first = rest.rpartition("@")[0], rest.partition("@")[0] if "@" in rest else ""
    for userinfo in (last, first, last.split("/", 1)[0]):
        if ":" not in userinfo:
            continue
        password = userinfo.split(":", 1)[1]
        pieces |= {password, unquote(password), *(p for p in re.split(r"[@/?#:]", password) if p)}
    return sorted(p for p in pieces if p)


def find(explicit: str | None, pipeline_dir: Path | None = None) -> Path | None:
    """Osiris's search order ($OSIRIS_HOME, ./, ../), then the pipeline's folder and its parents."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise OsirisError(
                f"connections file not found: {explicit}", "Check the --connections path.", exit_code=2
            )
        return path
    candidates = []
    if os.environ.get("OSIRIS_HOME"):
        candidates.append(Path(os.environ["OSIRIS_HOME"]))
    candidates += [Path("."), Path("..")]
    if pipeline_dir is not None:
        here = pipeline_dir.resolve()
        candidates += [here, *here.parents]
    for folder in candidates:
        path = folder / FILE_NAME
        if path.is_file():
            return path
    return None


def load(path: Path | None, display: str | None = None) -> tuple[Connections, list[Diagnostic]]:
    """Parse a connections file; diagnostics point at the exact key in it."""
    if path is None:
        return Connections(None, None), []
    doc, diags = load_file(path, display or str(path))
    conns = Connections(path, doc)
    if diags:
        return conns, diags

    def problem(p: tuple, message: str, hint: str, severity: str = "error", part: str = "value") -> None:
        diags.append(Diagnostic(doc.file, doc.span(p, part), severity, "CON001", message, hint))

    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("connections"), dict):
        problem(
            ("connections",) if isinstance(data, dict) and "connections" in data else (),
            "the connections file needs a top-level `connections:` mapping",
            "Write `connections:` then `<family>: {<alias>: {fields}}`.",
        )
        return conns, diags
    for family, aliases in data["connections"].items():
        if not isinstance(aliases, dict):
            problem(
                ("connections", family), f"family '{family}' must map aliases to fields", "See examples/."
            )
            continue
        conns.families[str(family)] = {}
        for alias, fields in aliases.items():
            if not isinstance(fields, dict):
                problem(
                    ("connections", family, alias),
                    f"@{family}.{alias} must be a mapping of fields",
                    "Write `host: ...`, `password: ${ENV_NAME}` and so on.",
                )
                continue
            spread = _spread(fields)
            conns.families[str(family)][str(alias)] = {name: value for name, (_, value) in spread.items()}
            for key, (path, value) in spread.items():
                for name in ENV_REF.findall(value) if isinstance(value, str) else ():
                    if runner_owned(name):
                        diags.append(
                            Diagnostic(
                                doc.file,
                                doc.span(("connections", family, alias, *path)),
                                "error",
                                "CON003",
                                f"@{family}.{alias}: '{key}' reads the runner's variable ${{{name}}}",
                                f"`{name}` belongs to the runner or to this action, never to a pipeline. "
                                f"Use a variable of your own, e.g. `${{{_env_name(family, key)}}}`, set on "
                                "the step from a secret.",
                            )
                        )
                if _literal_secret(str(key), value):
                    diags.append(
                        Diagnostic(
                            doc.file,
                            doc.span(("connections", family, alias, *path)),
                            "warning",
                            "CON002",
                            f"@{family}.{alias}: '{key}' holds a literal secret",
                            f"Write `{path[-1]}: ${{{_env_name(family, key)}}}` and set that variable from a "
                            "secret; a committed secret is a leaked secret.",
                        )
                    )
    return conns, diags


def _spread(fields: dict) -> dict[str, tuple[tuple, Any]]:
    """Fields by name with their path in the file; a secret mapping becomes one field per entry."""
    spread: dict[str, tuple[tuple, Any]] = {}
    for key, value in fields.items():
        if str(key) in SECRET_MAPPINGS and isinstance(value, dict):
            spread.update({f"{key}.{name}": ((key, name), entry) for name, entry in value.items()})
        else:
            spread[key] = ((key,), value)
    return spread


def _env_name(family: Any, key: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", f"{family}_{key}".upper())


def _literal_secret(key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value or ENV_REF.fullmatch(value.strip()):
        return False
    if key.lower() in DSN_FIELDS:
        if ENV_REF.search(value):
            return False
        return bool(urlsplit(value).password) if "://" in value else "password=" in value
    return key.lower() in SECRET_FIELDS
