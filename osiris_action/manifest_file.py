"""A compiled manifest read back from a file (`osiris-action run manifest.json`): its exact shape, and the
checks that it is what `compile` would have written. Only that command needs it, so pydantic loads only
there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from osiris_action.errors import OsirisError


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    component: str
    driver: str
    mode: Literal["extract", "transform", "write"]
    needs: list[str]
    needs_inferred: bool
    inputs: dict[str, list[str]]
    connection: str | None
    config: dict[str, Any]
    files: list[str]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest_version: str
    oml_version: str
    compiler: str
    pipeline: dict[str, Any]
    steps: list[Step]


def verify(manifest: Manifest, file: str) -> None:
    """A manifest from disk may have been edited by hand: everything the host derives from it (which
    driver files to upload, which steps feed which) must be what `compile` would have written."""
    from osiris_action import components

    def refuse(problem: str) -> OsirisError:
        return OsirisError(
            f"{problem}: the manifest was changed after `compile`",
            "Compile the pipeline again with `osiris-action compile`.",
            file=file,
        )

    if not manifest.pipeline.get("id"):
        raise refuse("pipeline.id is missing")
    seen: set[str] = set()
    for step in manifest.steps:
        component = components.get(step.component)
        if component is None or component.name != step.component:
            raise refuse(f"step '{step.id}' names an unknown component '{step.component}'")
        if step.driver != component.module or step.files != component.bundle_files():
            raise refuse(f"step '{step.id}' does not name the driver files of {step.component}")
        if step.mode not in component.spec["modes"]:
            raise refuse(f"step '{step.id}' has mode '{step.mode}', which {step.component} does not support")
        if step.id in seen:
            raise refuse(f"step id '{step.id}' is used twice")
        if any(need not in seen for need in step.needs) or set(step.inputs) != set(step.needs):
            raise refuse(f"step '{step.id}' needs steps that do not run before it")
        config = {k: v for k, v in step.config.items() if k in component.properties}
        if set(config) != set(step.config) or next(component.validator.iter_errors(config), None):
            raise refuse(f"step '{step.id}' has config that {step.component} does not accept")
        seen.add(step.id)


def load(path: Path) -> tuple[Manifest, bytes]:
    try:
        data = path.read_bytes()
        return Manifest.model_validate_json(data), data
    except OSError as exc:
        raise OsirisError(
            f"cannot read manifest {path}: {exc.strerror}", "Check the path.", exit_code=2
        ) from exc
    except ValueError as exc:
        raise OsirisError(
            f"{path} is not a manifest this version understands",
            "Compile the pipeline again with `osiris-action compile`.",
            file=str(path),
        ) from exc
