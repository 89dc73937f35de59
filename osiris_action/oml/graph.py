"""The step graph: which steps feed which, in what order, and under which table names.

Osiris infers `needs = [previous step]` when a step has none; we do the same for transforms and writers,
but never chain an extractor to the step before it, since an extractor reads no input.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Sequence


def effective_needs(steps: Sequence[dict]) -> dict[str, tuple[list[str], bool]]:
    """step id → (needs, inferred). Assumes ids are unique strings.

    A step without `needs` reads from the step before it, unless that step already depends on it:
    the inferred edge would then make a cycle the user never wrote, so none is inferred.
    """
    explicit = {
        s["id"]: [n for n in s["needs"] if isinstance(n, str)]
        for s in steps
        if isinstance(s.get("needs"), list)
    }
    result: dict[str, tuple[list[str], bool]] = {}
    previous: str | None = None
    for step in steps:
        sid = step["id"]
        if sid in explicit:
            result[sid] = (explicit[sid], False)
        elif step.get("mode") == "read" or previous is None or _reaches(explicit, previous, sid):
            result[sid] = ([], False)
        else:
            result[sid] = ([previous], True)
        previous = sid
    return result


def _reaches(needs: dict[str, list[str]], start: str, target: str) -> bool:
    """Does `start` depend on `target`, directly or through other explicit needs?"""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo += needs.get(node, [])
    return False


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
    """Dependency order, stable: among ready steps, the one written first runs first (Kahn's algorithm
    with the written position as priority). Assumes no cycle."""
    position = {sid: n for n, sid in enumerate(ids)}
    waiting = {sid: len(set(d for d in needs.get(sid, []) if d in position)) for sid in ids}
    users: dict[str, list[str]] = {}
    for sid in ids:
        for dep in set(d for d in needs.get(sid, []) if d in position):
            users.setdefault(dep, []).append(sid)
    ready = [position[sid] for sid in ids if waiting[sid] == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        sid = ids[heapq.heappop(ready)]
        result.append(sid)
        for user in users.get(sid, []):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, position[user])
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
