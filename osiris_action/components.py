"""The component registry: component name → spec, read from the driver files themselves.

Each driver file under `drivers/` starts with a `SPEC` dict (config JSON Schema, modes, connection
families, secret fields, constraints, runtime imports). That one dict drives validation, defaults,
documentation, redaction and bundling, so they cannot disagree. Driver files import their heavy
libraries inside `run`, which keeps reading the specs fast.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import osiris_drivers

DRIVERS_DIR = Path(osiris_drivers.__file__).parent
OML_TO_COMPONENT_MODE = {"read": "extract", "write": "write", "transform": "transform"}


@dataclass(frozen=True)
class Component:
    name: str
    module: str
    spec: dict[str, Any]

    @property
    def file(self) -> Path:
        return DRIVERS_DIR / f"{self.module}.py"

    @property
    def families(self) -> list[str]:
        return self.spec["families"]

    @property
    def properties(self) -> dict[str, Any]:
        return self.spec["config"]["properties"]

    @property
    def needs_connection(self) -> bool:
        return self.families != ["duckdb"]

    @property
    def connection_optional(self) -> bool:
        """A step may run without any connection (a public API): a default one is used when it exists."""
        return bool(self.spec.get("connection_optional"))

    def defaults(self) -> dict[str, Any]:
        """Defaults of the non-connection fields: connection fields come from the connections file."""
        connection = self.spec["connection"]
        return {
            key: prop["default"]
            for key, prop in self.properties.items()
            if "default" in prop and key not in connection
        }

    def bundle_files(self) -> list[str]:
        return [f"{self.module}.py", *self.spec.get("helpers", [])]

    @functools.cached_property
    def validator(self):
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.spec["config"])


@functools.cache
def registry() -> dict[str, Component]:
    found: dict[str, Component] = {}
    for info in sorted(pkgutil.iter_modules([str(DRIVERS_DIR)]), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"osiris_drivers.{info.name}")
        spec = getattr(module, "SPEC", None)
        if spec is None:
            continue
        component = Component(spec["name"], info.name, spec)
        for name in [spec["name"], *spec.get("aliases", [])]:
            found[name] = component
    return found


def get(name: str) -> Component | None:
    return registry().get(name)


def names() -> list[str]:
    return sorted(registry())


def markdown() -> str:
    """docs/components.md, generated from the specs so that it cannot drift from them."""
    out = [
        "# Components",
        "",
        "Generated from the `SPEC` at the top of each file under `drivers/` "
        "(`python -m osiris_action.components > docs/components.md`).",
        "",
    ]
    seen: set[str] = set()
    for name in names():
        component = get(name)
        if component.name in seen:
            continue
        seen.add(component.name)
        spec = component.spec
        aliases = spec.get("aliases", [])
        out += [f"## `{component.name}`" + (f" (also `{'`, `'.join(aliases)}`)" if aliases else ""), ""]
        out += [(component.file.read_text().split('"""')[1].strip().splitlines() or [""])[0], ""]
        modes = [m for m, c in OML_TO_COMPONENT_MODE.items() if c in spec["modes"]]
        out += [
            f"- OML modes: {', '.join(modes)}",
            f"- connection families: {', '.join(spec['families'])}",
            f"- secret fields (never in config): {', '.join(spec['secrets']) or 'none'}",
            "",
        ]
        out += ["| key | type | default | required | notes |", "| --- | --- | --- | --- | --- |"]
        required = set(spec["config"].get("required", []))
        for key, prop in spec["config"]["properties"].items():
            kind = (
                prop.get("type") or " or ".join(str(o.get("type")) for o in prop.get("oneOf", [])) or "enum"
            )
            kind = " or ".join(kind) if isinstance(kind, list) else kind
            notes = []
            if "enum" in prop:
                notes.append("one of " + ", ".join(f"`{v}`" for v in prop["enum"]))
            for word, label in (("minimum", "≥"), ("maximum", "≤")):
                if word in prop:
                    notes.append(f"{label} {prop[word]}")
            if "pattern" in prop:
                notes.append(f"pattern `{prop['pattern']}`")
            for value, why in prop.get("x-no-effect-values", {}).items():
                notes.append(f"`{value}` has no effect: {why} (OML080)")
            if "x-no-effect" in prop:
                notes.append(f"accepted for Osiris pipelines, no effect: {prop['x-no-effect']} (OML080)")
            policy = spec["connection"].get(key)
            if policy:
                notes.append(f"connection field ({policy} as override)")
            default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
            out.append(
                f"| `{key}` | {kind} | {default} | {'yes' if key in required else ''} | {'; '.join(notes)} |"
            )
        for rule in spec.get("constraints", []):
            if "one_of" in rule:
                out.append(f"\nExactly one of {' or '.join(f'`{k}`' for k in rule['one_of'])}.")
            elif "require" in rule and "when" not in rule:
                out.append(f"\n`{rule['require']}` is required (from the step or its connection).")
            elif "require" in rule:
                field, values = next(iter(rule["when"].items()))
                shown = " or ".join(v if isinstance(v, str) else json.dumps(v) for v in values)
                out.append(f"\n`{rule['require']}` is required when `{field}` is {shown}.")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
