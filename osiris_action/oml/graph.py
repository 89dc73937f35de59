"""The step graph: which steps feed which, in what order, and under which table names.

Osiris infers `needs = [previous step]` when a step has none; we do the same for transforms and writers,
but never chain an extractor to the step before it, since an extractor reads no input.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence


def effective_needs(steps: Sequence[dict]) -> dict[str, tuple[list[str], bool]]:
    """step id → (needs, inferred). Assumes ids are unique strings."""
    result: dict[str, tuple[list[str], bool]] = {}
    previous: str | None = None
    for step in steps:
        sid = step["id"]
        if "needs" in step and isinstance(step["needs"], list):
            result[sid] = ([n for n in step["needs"] if isinstance(n, str)], False)
        elif step.get("mode") == "read" or previous is None:
            result[sid] = ([], False)
        else:
            result[sid] = ([previous], True)
        previous = sid
    return result


def find_cycle(needs: dict[str, list[str]]) -> list[str] | None:
    """A list of ids forming a cycle (first == last), or None."""
    state: dict[str, int] = {}
    for root in needs:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            deps = [d for d in needs.get(node, []) if d in needs]
            if index < len(deps):
                stack.append((node, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    return [*path[path.index(dep) :], dep]
                if not state.get(dep):
                    stack.append((dep, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def order(ids: Sequence[str], needs: dict[str, list[str]]) -> list[str]:
    """Dependency order, stable: among ready steps, the one written first runs first."""
    done: set[str] = set()
    result: list[str] = []
    pending = list(ids)
    while pending:
        ready = next(i for i in pending if all(d in done for d in needs.get(i, [])))
        pending.remove(ready)
        done.add(ready)
        result.append(ready)
    return result


def _sanitise(step_id: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]", "_", step_id)
    return "_" + name if name[:1].isdigit() else name


def dataframe_names(ids: Sequence[str]) -> dict[str, str]:
    """Osiris's `df_<id>` names; ids that sanitise to the same name get a short hash suffix."""
    base = {sid: "df_" + _sanitise(sid) for sid in ids}
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    return {
        sid: name if counts[name] == 1 else f"{name}_{hashlib.sha256(sid.encode()).hexdigest()[:8]}"
        for sid, name in base.items()
    }


def input_names(needs: Sequence[str], df_names: dict[str, str]) -> dict[str, list[str]]:
    """For each upstream step, the names its table is visible under in this step's SQL."""
    names = {}
    for need in needs:
        aliases = [df_names[need]]
        if len(needs) == 1:
            aliases.append("input_df")
        if need not in aliases:
            aliases.append(need)
        names[need] = aliases
    return names
