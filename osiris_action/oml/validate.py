"""Every OML rule, each reported at the exact position of the key or value it is about.

Codes are stable and documented in docs/diagnostics.md, which also names the Osiris rule each one
comes from. Where Osiris checks nothing (types, ranges, cycles, constraints, SQL) we check too.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from osiris_action import components
from osiris_action.connections import ENV_REF, REF, SECRET_FIELDS, Connections
from osiris_action.diagnostics import Diagnostic, Span
from osiris_action.errors import OsirisError
from osiris_action.oml import graph, sql
from osiris_action.oml.load import Document

TOP_KEYS = {"oml_version", "name", "steps", "description", "metadata", "params", "profiles", "schedule"}
FORBIDDEN_TOP = {"version", "connectors", "tasks", "outputs"}
STEP_KEYS = {"id", "component", "mode", "needs", "config", "description", "uses", "with"}
OML_MODES = ("read", "transform", "write")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
PARAM_RE = re.compile(r"\$\{params\.([A-Za-z0-9_]+)\}")


def _type(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _suggest(word: str, choices) -> str:
    match = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


class _Checker:
    def __init__(self, doc: Document, connections: Connections | None):
        self.doc = doc
        self.connections = connections
        self.found: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()
        self.unsure_inputs: set[str | None] = set()  # steps with broken `needs`: tables left unchecked

    def add(
        self, path: tuple, severity: str, code: str, message: str, hint: str, part: str = "value", span=None
    ) -> None:
        found = Diagnostic(self.doc.file, span or self.doc.span(path, part), severity, code, message, hint)
        # A config shared by YAML alias (`config: *common`) is checked once per step that uses it, but
        # its findings sit where the value is written: one finding there, not one per step.
        if found not in self._seen:
            self._seen.add(found)
            self.found.append(found)

    def _start(self, path: tuple) -> Span:
        """Where something missing from the mapping at `path` belongs: its first character only, since
        underlining a whole step or file for one absent key helps nobody."""
        span = self.doc.span(path)
        return Span(span.line, span.col)

    def _missing_in_config(self, cat: tuple) -> Span:
        """The `config:` key itself when present, else the start of the step."""
        if cat in self.doc.keys:
            return self.doc.keys[cat]
        return self._start(cat[:-1])

    # -- top level -------------------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        data = self.doc.data
        if not isinstance(data, dict):
            self.add(
                (),
                "error",
                "OML010",
                f"a pipeline must be a mapping, got {_type(data)}",
                'Start the file with `oml_version: "0.1.0"`, `name:` and `steps:`.',
            )
            return self.found
        for key in data:
            if key in FORBIDDEN_TOP:
                hint = {"version": "Use 'oml_version' instead.", "tasks": "Use 'steps' instead."}.get(
                    key, "This legacy key is not part of OML 0.1.0; remove it."
                )
                self.add((key,), "error", "OML012", f"forbidden top-level key '{key}'", hint, "key")
            elif key not in TOP_KEYS and not str(key).startswith("x-"):  # x-*: extensions, anchor holders
                self.add(
                    (key,),
                    "warning",
                    "OML018",
                    f"unknown top-level key '{key}' is ignored",
                    "Remove it, or move it under `metadata:`." + _suggest(key, TOP_KEYS),
                    "key",
                )
        for key in ("oml_version", "name", "steps"):
            if key not in data:
                self.add(
                    (),
                    "error",
                    "OML011",
                    f"missing required top-level key '{key}'",
                    {
                        "oml_version": 'Add `oml_version: "0.1.0"`.',
                        "name": "Add `name: my-pipeline`.",
                        "steps": "Add a `steps:` list.",
                    }[key],
                    span=self._start(()),
                )
        self._version(data)
        self._name(data)
        self._secrets(data, ())
        steps = data.get("steps")
        if "steps" in data and not isinstance(steps, list):
            self.add(
                ("steps",),
                "error",
                "OML017",
                f"steps must be a list, got {_type(steps)}",
                "Write each step as a list item starting with `- id:`.",
            )
        elif isinstance(steps, list) and not steps:
            self.add(("steps",), "error", "OML017", "the pipeline has no steps", "Add at least one step.")
        elif isinstance(steps, list):
            self._steps(steps, data)
        return self.found

    def _secrets(self, node: Any, path: tuple) -> None:
        """Secrets anywhere in the file (config, params, metadata), as Osiris's compiler scans for them:
        a pipeline is committed to git, so any value under a secret-named key is already leaked."""
        if isinstance(node, dict):
            for key, value in node.items():
                if _is_secret(key, value) or (path[-1:] == ("headers",) and _credential_header(key, value)):
                    self.add((*path, key), "error", "OML048", *_secret_text(str(key), value))
                else:
                    self._secrets(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._secrets(value, (*path, i))

    def _version(self, data: dict) -> None:
        if "oml_version" not in data:
            return
        version = data["oml_version"]
        if not isinstance(version, str):
            self.add(
                ("oml_version",),
                "error",
                "OML013",
                f"oml_version must be a string, got {_type(version)}",
                'Quote it: `oml_version: "0.1.0"`.',
            )
        elif version != "0.1.0":
            severity = "warning" if version.startswith("0.") else "error"
            self.add(
                ("oml_version",),
                severity,
                "OML014",
                f"OML version '{version}' "
                + ("may not be fully supported" if severity == "warning" else "is not supported")
                + " (expected '0.1.0')",
                'Use `oml_version: "0.1.0"`.',
            )

    def _name(self, data: dict) -> None:
        if "name" not in data:
            return
        name = data["name"]
        if not isinstance(name, str):
            self.add(
                ("name",),
                "error",
                "OML015",
                f"name must be a string, got {_type(name)}",
                "Write `name: my-pipeline`.",
            )
        elif not name.strip():
            self.add(("name",), "error", "OML015", "name cannot be empty", "Write `name: my-pipeline`.")
        elif not NAME_RE.match(name):
            self.add(
                ("name",),
                "warning",
                "OML016",
                f"pipeline name '{name}' does not follow the convention (lowercase letters, digits, hyphens)",
                f"Rename it to '{re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-') or 'pipeline'}'.",
            )

    # -- steps -----------------------------------------------------------------------------------
    def _steps(self, steps: list, data: dict) -> None:
        ids: dict[str, int] = {}
        valid: list[dict] = []
        for i, step in enumerate(steps):
            at = ("steps", i)
            if not isinstance(step, dict):
                self.add(
                    at,
                    "error",
                    "OML020",
                    f"step {i + 1} must be a mapping, got {_type(step)}",
                    "Write the step as `- id: ...` with `component:` and `mode:` under it.",
                )
                continue
            self._step_keys(step, at)
            sid = step.get("id")
            if isinstance(sid, str) and sid and (sid in (".", "..") or any(c in sid for c in "/\\\0")):
                self.add(
                    (*at, "id"),
                    "error",
                    "OML022",
                    f"step id {sid!r} cannot name a folder: it holds a path separator or is '.' or '..'",
                    "A step's id names its artifacts folder; write `id: extract-orders`.",
                )
            elif isinstance(sid, str) and sid:
                if sid in ids:
                    self.add(
                        (*at, "id"),
                        "error",
                        "OML023",
                        f"duplicate step id '{sid}' (first used by step {ids[sid] + 1})",
                        "Give every step a unique id.",
                    )
                else:
                    ids[sid] = i
                    valid.append({**step, "_index": i})
            elif "id" in step:
                self.add(
                    (*at, "id"),
                    "error",
                    "OML022",
                    f"step id must be a non-empty string, got {_type(sid)}",
                    "Write `id: extract-orders`.",
                )
            component = self._component(step, at)
            self._mode(step, at, component)
            if component is not None:
                self._config(step, at, component, data)
        needs = self._needs(steps, ids)
        self._sql(steps, valid, needs)

    def _step_keys(self, step: dict, at: tuple) -> None:
        for key in ("id", "component", "mode"):
            if key not in step and not (key == "component" and "uses" in step):
                self.add(
                    at,
                    "error",
                    "OML021",
                    f"step is missing required field '{key}'",
                    {
                        "id": "Add `id: <unique-name>`.",
                        "component": f"Add `component:`, one of: {', '.join(components.names())}.",
                        "mode": "Add `mode:` read, transform or write.",
                    }[key],
                    span=self._start(at),
                )
        for key in step:
            if key not in STEP_KEYS:
                self.add(
                    (*at, key),
                    "warning",
                    "OML029",
                    f"unknown step key '{key}' is ignored",
                    "Osiris reads only id, component, mode, needs and config." + _suggest(key, STEP_KEYS),
                    "key",
                )

    def _component(self, step: dict, at: tuple) -> components.Component | None:
        key = "component" if "component" in step else "uses"
        if key not in step:
            return None
        name = step[key]
        if not isinstance(name, str):
            self.add(
                (*at, key),
                "error",
                "OML024",
                f"component must be a string, got {_type(name)}",
                "Write e.g. `component: mysql.extractor`.",
            )
            return None
        component = components.get(name)
        if component is None:
            self.add(
                (*at, key),
                "error",
                "OML025",
                f"unknown component '{name}'",
                f"Known components: {', '.join(components.names())}." + _suggest(name, components.names()),
            )
        return component

    def _mode(self, step: dict, at: tuple, component: components.Component | None) -> None:
        if "mode" not in step:
            return
        mode = step["mode"]
        if not isinstance(mode, str):
            self.add(
                (*at, "mode"),
                "error",
                "OML026",
                f"mode must be a string, got {_type(mode)}",
                "Write `mode: read`, `transform` or `write`.",
            )
        elif mode not in OML_MODES:
            self.add(
                (*at, "mode"),
                "error",
                "OML027",
                f"invalid mode '{mode}'",
                "Use one of: read, transform, write." + _suggest(mode, OML_MODES),
            )
        elif component is not None:
            needed = components.OML_TO_COMPONENT_MODE[mode]
            if needed not in component.spec["modes"]:
                allowed = [
                    m for m, c in components.OML_TO_COMPONENT_MODE.items() if c in component.spec["modes"]
                ]
                self.add(
                    (*at, "mode"),
                    "error",
                    "OML028",
                    f"mode '{mode}' is not supported by component '{component.name}'",
                    f"Use mode: {' or '.join(allowed)}.",
                )

    def _needs(self, steps: list, ids: dict[str, int]) -> dict[str, list[str]]:
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or "needs" not in step:
                continue
            at = ("steps", i, "needs")
            needs = step["needs"]
            if not isinstance(needs, list) or not all(isinstance(d, str) and d in ids for d in needs):
                self.unsure_inputs.add(step["id"] if isinstance(step.get("id"), str) else None)
            if not isinstance(needs, list):
                self.add(
                    at,
                    "error",
                    "OML030",
                    f"needs must be a list, got {_type(needs)}",
                    "Write `needs: [step-id]`.",
                )
                continue
            for j, dep in enumerate(needs):
                if not isinstance(dep, str):
                    self.add(
                        (*at, j),
                        "error",
                        "OML031",
                        f"a dependency must be a step id string, got {_type(dep)}",
                        "List step ids: `needs: [extract-orders]`.",
                    )
                elif dep == step.get("id"):
                    self.add(
                        (*at, j),
                        "error",
                        "OML033",
                        f"step '{dep}' needs itself",
                        "Remove the step's own id from its needs.",
                    )
                elif dep not in ids:
                    self.add(
                        (*at, j),
                        "error",
                        "OML032",
                        f"unknown dependency '{dep}'",
                        "Name a step id defined in this pipeline." + _suggest(dep, ids),
                    )
        good = [
            s
            for i, s in enumerate(steps)
            if isinstance(s, dict) and isinstance(s.get("id"), str) and ids.get(s["id"]) == i
        ]
        effective = {
            sid: [d for d in n if d in ids and d != sid]
            for sid, (n, _) in graph.effective_needs(good).items()
        }
        cycle = graph.find_cycle(effective)
        if cycle:
            first = ids[cycle[0]]
            self.add(
                ("steps", first, "needs"),
                "error",
                "OML034",
                f"needs form a cycle: {' → '.join(cycle)}",
                "Steps run in dependency order; break the cycle by removing one of these needs.",
            )
        return effective

    # -- config ----------------------------------------------------------------------------------
    def _config(self, step: dict, at: tuple, component: components.Component, data: dict) -> None:
        key = "config" if "config" in step or "with" not in step else "with"
        config = step.get(key, {})
        cat = (*at, key)
        if config is None:
            config = {}
        if not isinstance(config, dict):
            self.add(
                cat,
                "error",
                "OML040",
                f"config must be a mapping, got {_type(config)}",
                "Write the component's settings as `key: value` lines under `config:`.",
            )
            return
        config = _resolve_params(config, data)
        props = component.properties
        ref = config.get("connection")
        policy = component.spec["connection"]
        for name in config:
            if name == "connection":
                continue
            if name not in props:
                self.add(
                    (*cat, name),
                    "error",
                    "OML041",
                    f"unknown config key '{name}' for component '{component.name}'",
                    f"Allowed keys: {', '.join(sorted(props))}." + _suggest(name, props),
                    "key",
                )
                continue
            if _is_secret(name, config[name]):  # reported once, by _secrets
                continue
            why = props[name].get("x-no-effect")
            value = config[name]
            if not why and isinstance(value, str):
                why = props[name].get("x-no-effect-values", {}).get(value)
                name_shown = f"{name}: {value}"
            else:
                name_shown = name
            if why:  # accepted so that Osiris pipelines validate, but nothing here reads it
                self.add(
                    (*cat, name),
                    "warning",
                    "OML080",
                    f"'{name_shown}' has no effect on {component.name} here: {why}",
                    "Remove it; it is accepted only so that pipelines written for Osiris still validate.",
                    "key",
                )
            rule = policy.get(name)
            if isinstance(ref, str) and ref.startswith("@") and rule == "forbidden":
                self.add(
                    (*cat, name),
                    "error",
                    "OML046",
                    f"'{name}' cannot override the connection's value",
                    "Set it in osiris_connections.yaml for this connection, not in the step.",
                    "key",
                )
            elif isinstance(ref, str) and ref.startswith("@") and rule == "warning":
                self.add(
                    (*cat, name),
                    "warning",
                    "OML047",
                    f"'{name}' overrides the connection's value",
                    "Prefer setting it in osiris_connections.yaml.",
                    "key",
                )
        self._schema(config, cat, component)
        self._constraints(config, cat, at, component)
        self._connection(config, cat, at, component)

    def _schema(self, config: dict, cat: tuple, component: components.Component) -> None:
        checked = {
            k: v
            for k, v in config.items()
            if k in component.properties
            and k != "connection"
            and not _is_secret(k, v)
            and not _has_param(v)  # `${params.X}` without a default: its type is known only at compile
        }
        for err in component.validator.iter_errors(checked):
            err = _specific(err)
            path = tuple(err.absolute_path)
            if err.validator == "required":
                missing = err.message.split("'")[1]
                if missing in config:  # present but left out of the check above (secret or parameter)
                    continue
                self.add(
                    cat,
                    "error",
                    "OML043",
                    f"missing required config key '{missing}' for component '{component.name}'",
                    f"Add `{missing}:` under config.",
                    span=self._missing_in_config(cat),
                )
                continue
            if err.validator == "additionalProperties":
                continue
            self.add((*cat, *path), "error", "OML042", _schema_message(err, path), _schema_hint(err))

    def _constraints(self, config: dict, cat: tuple, at: tuple, component: components.Component) -> None:
        connected = None
        for rule in component.spec.get("constraints", []):
            if "one_of" in rule:
                present = [k for k in rule["one_of"] if k in config]
                if len(present) != 1:
                    names = " or ".join(f"'{k}'" for k in rule["one_of"])
                    message = f"set exactly one of {names}" if present else f"config needs {names}"
                    self.add(
                        (*cat, *present[1:2]),
                        "error",
                        "OML044",
                        f"{component.name}: {message}",
                        f"Use `{rule['one_of'][0]}` or `{rule['one_of'][1]}`, not both, not neither.",
                        "key",
                        span=None if present else self._missing_in_config(cat),
                    )
                continue
            if connected is None:  # fields the step's connection gives (endpoint, auth_token, region, ...)
                connected = self._connection_fields(config, component)
            field, allowed = next(iter(rule.get("when", {None: [None]}).items()))
            value = _effective(field, config, connected, component)
            if value not in allowed:
                continue
            required = rule.get("require")
            if required and _effective(required, config, connected, component) in (None, ""):
                shown = f"'{value}'" if isinstance(value, str) else json.dumps(value)
                when = f" when {field} is {shown}" if field else ""
                if field and field not in config:
                    when += " (set by its connection or by default)"
                self.add(
                    (*cat, field),
                    "error",
                    "OML045",
                    f"'{required}' is required{when}",
                    rule.get("hint") or f"Add `{required}: [column, ...]` naming the key columns.",
                    span=None if field in config else self._missing_in_config(cat),
                )
            for other, values in rule.get("require_value", {}).items():
                current = config.get(other, component.properties.get(other, {}).get("default"))
                if current not in values:
                    self.add(
                        (*cat, other),
                        "error",
                        "OML049",
                        f"'{other}: {current}' is not allowed when {field} is {value!r}",
                        f"Use {other}: {' or '.join(values)}.",
                    )

    def _connection_fields(self, config: dict, component: components.Component) -> dict | None:
        """The raw fields of the step's connection (named, else the default) that the step may rely on;
        None when nothing can be known (no connections file was read)."""
        if self.connections is None:
            return None
        ref = config.get("connection")
        if isinstance(ref, str) and REF.match(ref):
            family, alias = REF.match(ref).groups()
        else:
            family = next((f for f in component.families if self.connections.default_alias(f)), None)
            alias = None
        if family is None or family not in self.connections.families:
            return {}
        try:
            fields = self.connections.lookup(family, alias)[1]
        except OsirisError:
            return {}
        return {k: v for k, v in fields.items() if k in component.spec["connection"]}

    def _connection(self, config: dict, cat: tuple, at: tuple, component: components.Component) -> None:
        ref = config.get("connection")
        if ref is None:
            if component.connection_optional:
                return
            if component.needs_connection and "filesystem" not in component.families:
                self._default_connection(component, cat)
            return
        if not isinstance(ref, str) or not REF.match(ref):
            self.add(
                (*cat, "connection"),
                "error",
                "OML050",
                f"invalid connection reference {ref!r}",
                'Write `connection: "@family.alias"`, e.g. "@mysql.db_movies" (quote it: @ starts '
                "no YAML value).",
            )
            return
        family, alias = REF.match(ref).groups()
        if family not in component.families:
            self.add(
                (*cat, "connection"),
                "error",
                "OML051",
                f"connection family '{family}' does not fit component '{component.name}'",
                f"Use a connection of family {' or '.join(component.families)}.",
            )
            return
        if self.connections is None:
            return
        if self.connections.path is None:
            self.add(
                (*cat, "connection"),
                "error",
                "OML053",
                f"{ref} cannot be resolved: no osiris_connections.yaml found",
                "Create osiris_connections.yaml next to the pipelines or pass --connections FILE.",
            )
            return
        aliases = self.connections.families.get(family)
        if aliases is None or alias not in aliases:
            choices = [f"@{f}.{a}" for f in component.families for a in self.connections.families.get(f, {})]
            self.add(
                (*cat, "connection"),
                "error",
                "OML052",
                f"connection {ref} is not defined in {self.connections.document.file}"
                if self.connections.document
                else f"connection {ref} is not defined",
                f"Defined connections: {', '.join(choices) or 'none for this family'}."
                + _suggest(ref, choices),
            )

    def _default_connection(self, component: components.Component, cat: tuple) -> None:
        if self.connections is None or not self.connections.families:
            return
        for family in component.families:
            if family in self.connections.families and self.connections.default_alias(family):
                return
        self.add(
            cat,
            "error",
            "OML053",
            f"step has no `connection` and no default {component.families[0]} connection exists",
            f'Add `connection: "@{component.families[0]}.<alias>"` to config, or '
            "mark an alias `default: true` in osiris_connections.yaml.",
            span=self._missing_in_config(cat),
        )

    # -- SQL -------------------------------------------------------------------------------------
    def _sql(self, steps: list, valid: list[dict], needs: dict[str, list[str]]) -> None:
        df_names = graph.dataframe_names([s["id"] for s in valid])
        queries, paths = [], []
        for step in valid:
            name = step["component"] if "component" in step else step.get("uses")
            component = components.get(name) if isinstance(name, str) else None
            config = step.get("config")
            if component is None or component.name != "duckdb.processor" or not isinstance(config, dict):
                continue
            query = config.get("query")
            if not isinstance(query, str) or not query.strip() or _has_param(query):
                continue  # empty is OML042; with `${params.X}` the SQL is known only at compile
            provided = None
            if step["id"] not in self.unsure_inputs:
                inputs = graph.input_names(needs.get(step["id"], []), df_names)
                provided = {name for names in inputs.values() for name in names}
            queries.append((query, provided))
            paths.append(("steps", step["_index"], "config", "query"))
        for (query, _), path, findings in zip(queries, paths, sql.check_queries(queries), strict=True):
            for f in findings:
                span = sql.locate(self.doc, path, query, f.offset, f.length)
                self.add(path, f.severity, f.code, f.message, f.hint, span=span)


def _effective(key: str | None, config: dict, connected: dict | None, component: components.Component) -> Any:
    """A config value as the driver will see it: the step's, else its connection's, else the default.
    Unknowable (no connections file read) counts as given, for a field only a connection can give."""
    if key is None:
        return None
    if key in config:
        return config[key]
    if key in component.spec["connection"]:
        if connected is None:
            return True
        if connected.get(key) not in (None, ""):
            return connected[key]
    return component.properties.get(key, {}).get("default")


def _is_secret(key: Any, value: Any) -> bool:
    """A value under a secret-named key (password, token, key, ...); empty values and booleans are not."""
    if not isinstance(key, str) or key.lower() not in SECRET_FIELDS:
        return False
    return isinstance(value, str | int | float) and not isinstance(value, bool) and str(value) != ""


def _credential_header(name: Any, value: Any) -> bool:
    """A request header that carries a credential (Authorization, X-API-Key, Cookie, ...): in a step's
    `headers` it is a committed secret, and belongs in the connection's `headers` instead."""
    words = ("auth", "key", "token", "secret", "cookie", "signature", "session", "password")
    return isinstance(value, str) and bool(value) and any(w in str(name).lower() for w in words)


def _secret_text(key: str, value: Any) -> tuple[str, str]:
    """Message and hint for OML048: a literal, an `${ENV}` reference (never resolved in a pipeline file,
    only in the connections file) or a `${params.X}` (which would copy the secret into the manifest)."""
    move = (
        f"Put `{key}: ${{ENV_VAR}}` into the connection's entry in osiris_connections.yaml and "
        'reference it with `connection: "@family.alias"`.'
    )
    if isinstance(value, str) and ENV_REF.fullmatch(value.strip()) and not _has_param(value):
        return f"'{key}' refers to {value.strip()}, but a pipeline file's values are never resolved", move
    if _has_param(value):
        return f"'{key}' comes from a parameter, which would write the secret into the manifest", move
    return f"inline secret in '{key}'", move + " A committed secret is a leaked secret."


def _has_param(value: Any) -> bool:
    return isinstance(value, str) and "${params." in value


def _resolve_params(config: dict, data: dict) -> dict:
    """Config with `${params.X}` replaced by the pipeline's param defaults, for checking types."""
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    values = {k: (v.get("default") if isinstance(v, dict) else v) for k, v in params.items()}

    def sub(value):
        if isinstance(value, str):
            whole = PARAM_RE.fullmatch(value)
            if whole and whole.group(1) in values:
                return values[whole.group(1)]
            return PARAM_RE.sub(lambda m: str(values.get(m.group(1), m.group(0))), value)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value

    return {k: sub(v) for k, v in config.items()}


_LOOKS_SCALAR = re.compile(r"^\s*(-?[\d.]+(e-?\d+)?|true|false|yes|no|on|off)\s*$", re.IGNORECASE)
_JSON_TYPES = {"array": "list", "object": "mapping"}  # the rest read the same in YAML terms


def _types(schema: dict) -> list[str]:
    """The JSON types a schema accepts, alternatives included."""
    if "oneOf" in schema or "anyOf" in schema:
        return [t for sub in schema.get("oneOf", schema.get("anyOf", [])) for t in _types(sub)]
    types = schema.get("type", [])
    return [types] if isinstance(types, str) else list(types)


def _specific(err):
    """For `oneOf`/`anyOf`, the error inside the alternative that fits the value's own type: `[id, 7]` is a
    list, so the useful message is that item 1 is not a string, not that the list is not a string."""
    while err.validator in ("oneOf", "anyOf") and err.context:
        own = _JSON_OF.get(type(err.instance), set())
        alternatives = err.schema[err.validator]
        fitting = [e for e in err.context if own & set(_types(alternatives[e.relative_schema_path[0]]))]
        if not fitting:
            break
        err = fitting[0]
    return err


_JSON_OF = {
    bool: {"boolean"},
    int: {"integer", "number"},
    float: {"number"},
    str: {"string"},
    list: {"array"},
    dict: {"object"},
    type(None): {"null"},
}


def _kind(schema: dict) -> str:
    """What a schema accepts, in words: 'an integer', 'a boolean or a list of strings'."""
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(_kind(sub) for sub in schema.get("oneOf", schema.get("anyOf", [])))
    words = []
    for kind in _types(schema):
        word = _JSON_TYPES.get(kind, kind)
        items = schema.get("items")
        if kind == "array" and isinstance(items, dict) and isinstance(items.get("type"), str):
            word += f" of {_JSON_TYPES.get(items['type'], items['type'])}s"
        words.append(_article(word))
    return " or ".join(words) or "a different value"


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML; lists and mappings by their type only."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict | list):
        return _type(value)
    return f"{_type(value)} {value!r}"


def _field(path: tuple) -> str:
    """`na_values[0]`, `dtype.id`: the config path as the user would point at it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "config"


def _schema_message(err, path: tuple) -> str:
    name = _field(path)
    value = err.instance
    schema = err.schema
    match err.validator:
        case "type" | "oneOf" | "anyOf":
            return f"'{name}' must be {_kind(schema)}, got {_show(value)}"
        case "enum":
            return f"'{name}' must be one of: {', '.join(map(str, schema['enum']))} (got {_show(value)})"
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum":
            low, high = schema.get("minimum"), schema.get("maximum")
            if low is not None and high is not None:
                return f"'{name}' must be between {low} and {high}, got {value!r}"
            return (
                f"'{name}' must be {'at least ' + str(low) if low is not None else 'at most ' + str(high)}, "
                f"got {value!r}"
            )
        case "minLength":
            return (
                f"'{name}' must not be empty"
                if schema["minLength"] == 1
                else f"'{name}' must be at least {schema['minLength']} characters long"
            )
        case "maxLength":
            return f"'{name}' must be at most {schema['maxLength']} character(s), got {value!r}"
        case "pattern":
            return f"'{name}' does not match the expected pattern {schema['pattern']} (got {value!r})"
        case "uniqueItems":
            return f"'{name}' must not contain duplicates"
        case "minItems":
            return f"'{name}' must not be empty"
    return f"'{name}': {err.message}"


def _schema_hint(err) -> str:
    schema, value = err.schema, err.instance
    if err.validator == "enum":
        return "Use one of the listed values." + _suggest(value, [str(v) for v in schema["enum"]])
    if err.validator in ("type", "oneOf", "anyOf"):
        accepted = set(_types(schema))
        quoted_scalar = isinstance(value, str) and _LOOKS_SCALAR.match(value)
        if quoted_scalar and accepted & {"integer", "number", "boolean"}:
            return "Write numbers and booleans without quotes."
        if "array" in accepted and not isinstance(value, list):
            return "Write a list, e.g. `[a, b]`, even for one item."
    return "See docs/components.md for this component's settings."


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def check_resolved(doc: Document, at: tuple, config: dict, name: str, tables: set[str]) -> list[Diagnostic]:
    """At compile time, once `${params.X}` has its value: the checks validation had to leave out, namely
    the config schema and constraints, and the DuckDB query (reported at the start of the query, since
    positions inside the substituted text do not exist in the file)."""
    component = components.get(name)
    checker = _Checker(doc, None)
    checker._schema(config, at, component)
    checker._constraints(config, at, at[:-1], component)
    query = config.get("query")
    if component.name == "duckdb.processor" and isinstance(query, str) and query.strip():
        path = (*at, "query")
        for f in sql.check_queries([(query, tables)])[0]:
            message = f"{f.message} (with parameters substituted)"
            checker.add(path, f.severity, f.code, message, f.hint, span=checker._start(path))
    return checker.found


def validate(doc: Document, connections: Connections | None) -> list[Diagnostic]:
    return _Checker(doc, connections).run()
