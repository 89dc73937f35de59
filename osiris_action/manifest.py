"""The manifest contract: canonical JSON bytes and their sha256 fingerprint.

Canonical means sorted keys, no insignificant white space, UTF-8, and nothing that depends on the
machine, the clock, the working directory or the environment: the same pipeline gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from osiris_action.errors import OsirisError

MANIFEST_VERSION = "1"


def canonical_bytes(obj: Any) -> bytes:
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _plain(obj: Any) -> Any:
    """What JSON can say without ambiguity. YAML allows keys of any scalar type (`1: a`, `true: b`), which
    `sort_keys` cannot order next to strings, and `.nan`/`.inf`, which are not JSON: keys are spelled as
    JSON spells them and non-finite numbers as YAML does."""
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else json.dumps(_plain(k)): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return ".nan" if math.isnan(obj) else (".inf" if obj > 0 else "-.inf")
    return obj


def fingerprint(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
