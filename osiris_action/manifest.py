"""The manifest contract: canonical JSON bytes and their sha256 fingerprint.

Canonical means sorted keys, no insignificant white space, UTF-8, and nothing that depends on the
machine, the clock, the working directory or the environment: the same pipeline gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

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
