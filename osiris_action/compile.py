"""Document → Manifest: steps in dependency order, defaults made explicit, references kept as names."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from osiris_action import __version__, components
from osiris_action.diagnostics import Diagnostic, has_errors
from osiris_action.errors import UsageError
from osiris_action.manifest import MANIFEST_VERSION, canonical_bytes, fingerprint
from osiris_action.oml import graph, sql
from osiris_action.oml.load import Document
from osiris_action.oml.validate import check_resolved

PARAM_RE = re.compile(r"\$\{params\.([A-Za-z0-9_]+)\}")


@dataclass
class Compiled:
    manifest: dict[str, Any]
    data: bytes
    fingerprint: str
    notices: list[Diagnostic]


def _params(data: dict, overrides: dict[str, Any], profile: str | None, environ: Mapping[str, str]) -> dict:
    """Osiris's precedence, as its code has it: the `params` defaults, then `OSIRIS_PARAM_<NAME>` for
    declared names only (an unrelated variable changes nothing), then `profiles.<profile>.params`, then
    `--param`. Values from the environment and the command line are read as YAML scalars, so `5` is 5."""
    raw = data.get("params") if isinstance(data.get("params"), dict) else {}
    values = {k: (v.get("default") if isinstance(v, dict) else v) for k, v in raw.items()}
    for key, value in environ.items():
        name = key[len("OSIRIS_PARAM_") :].lower() if key.startswith("OSIRIS_PARAM_") else None
        declared = next((k for k in values if str(k).lower() == name), None)
        if declared is not None:
            values[declared] = scalar(value)
    if profile is not None:
        profiles = data.get("profiles") if isinstance(data.get("profiles"), dict) else {}
        if not isinstance(profiles.get(profile), dict):
            raise UsageError(
                f"profile '{profile}' is not defined in the pipeline",
                f"Defined profiles: {', '.join(map(str, profiles)) or 'none'}.",
            )
        values.update(profiles[profile].get("params") or {})
    values.update({k: scalar(v) if isinstance(v, str) else v for k, v in overrides.items()})
    return values


def scalar(text: str) -> Any:
    """`5` → 5, `true` → True, `x` → 'x': a value typed on a command line, read as YAML reads it."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


def _substitute(value: Any, params: dict[str, Any], missing: dict[str, tuple], path: tuple) -> Any:
    """`${params.X}` replaced; a whole-value reference keeps the parameter's type (Osiris makes it a
    string). Unknown names are collected with the path of their first use, for the diagnostic."""
    if isinstance(value, str):
        whole = PARAM_RE.fullmatch(value)
        if whole:
            if whole.group(1) not in params:
                missing.setdefault(whole.group(1), (path, value, 0, len(value)))
                return value
            return params[whole.group(1)]

        def one(m: re.Match) -> str:
            if m.group(1) not in params:
                missing.setdefault(m.group(1), (path, value, m.start(), len(m.group(0))))
                return m.group(0)
            return str(params[m.group(1)])

        return PARAM_RE.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, params, missing, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, params, missing, (*path, k)) for k, v in value.items()}
    return value


def compile_document(
    doc: Document,
    params: dict[str, str] | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Compiled | list[Diagnostic]:
    """Build the manifest of a validated document; returns diagnostics if parameters are unresolved."""
    data = doc.data
    values = _params(data, params or {}, profile, os.environ if environ is None else environ)
    missing: dict[str, tuple] = {}
    steps = [dict(s) for s in data["steps"]]
    substituted: dict[str, str] = {}  # step id → its config key, for configs that held parameters
    for i, step in enumerate(steps):
        key = "config" if "config" in step or "with" not in step else "with"
        step.setdefault("component", step.pop("uses", None))
        original = step.pop(key, None) or {}
        step["config"] = _substitute(original, values, missing, ("steps", i, key))
        if step["config"] != original:
            substituted[step["id"]] = key
    if missing:
        return [
            Diagnostic(
                doc.file,
                sql.locate(doc, *where),
                "error",
                "OML070",
                f"unresolved parameter '{name}'",
                f"Define it under `params:` with a default (`params: {{{name}: {{default: ...}}}}`), "
                f"or pass --param {name}=VALUE.",
            )
            for name, where in sorted(missing.items())
        ]
    needs = graph.effective_needs(steps)
    notices = []
    for i, step in enumerate(steps):
        if needs[step["id"]][1]:
            notices.append(
                Diagnostic(
                    doc.file,
                    doc.span(("steps", i, "id")),
                    "notice",
                    "OML090",
                    f"step '{step['id']}' has no `needs`; it reads from the step before it, "
                    f"'{needs[step['id']][0][0]}'",
                    "Write `needs:` explicitly to make the data flow visible.",
                )
            )
    by_id = {s["id"]: s for s in steps}
    order = graph.order([s["id"] for s in steps], {k: v[0] for k, v in needs.items()})
    df_names = graph.dataframe_names(order)
    for i, step in enumerate(steps):
        if step["id"] in substituted:  # what validation could not check before the parameters had values
            inputs = graph.input_names(needs[step["id"]][0], df_names)
            tables = {name for names in inputs.values() for name in names}
            at = ("steps", i, substituted[step["id"]])
            notices += check_resolved(doc, at, step["config"], step["component"], tables)
    if has_errors(notices):
        return notices
    out_steps = []
    for sid in order:
        step = by_id[sid]
        component = components.get(step["component"])
        config = dict(step["config"])
        connection = config.pop("connection", None)
        config = {**component.defaults(), **config}
        step_needs = needs[sid][0]
        out_steps.append(
            {
                "id": sid,
                "component": component.name,
                "driver": component.module,
                "mode": components.OML_TO_COMPONENT_MODE[step["mode"]],
                "needs": step_needs,
                "needs_inferred": needs[sid][1],
                "inputs": graph.input_names(step_needs, df_names),
                "connection": connection,
                "config": config,
                "files": component.bundle_files(),
            }
        )
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "oml_version": data["oml_version"],
        "compiler": f"osiris-action/{__version__}",
        "pipeline": {
            "name": data["name"],
            "id": data["name"].lower().replace(" ", "_"),
            "description": data.get("description"),
            "metadata": data.get("metadata") or {},
            "params": values,
        },
        "steps": out_steps,
    }
    raw = canonical_bytes(manifest)
    return Compiled(manifest, raw, fingerprint(raw), notices)
