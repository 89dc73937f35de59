"""The component registry: component name → spec, read from the driver files themselves.

Each driver file under `drivers/` starts with a `SPEC` dict (config JSON Schema, modes, connection
families, secret fields, constraints, runtime imports). That one dict drives validation, defaults,
documentation, redaction and bundling, so they cannot disagree. Driver files import their heavy
libraries inside `run`, which keeps reading the specs fast.
"""

from __future__ import annotations

import functools
import importlib
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
