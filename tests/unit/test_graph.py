"""The step graph: Osiris's implicit chain, never a cycle the user did not write, and a stable order."""

from __future__ import annotations

from osiris_action.oml import graph


def _steps(*specs):
    return [
        {"id": sid, "mode": mode, **({"needs": needs} if needs is not None else {})}
        for sid, mode, needs in specs
    ]


def test_a_step_without_needs_reads_from_the_step_before_it():
    steps = _steps(("e", "read", None), ("t", "transform", None), ("w", "write", None))
    assert graph.effective_needs(steps) == {"e": ([], False), "t": (["e"], True), "w": (["t"], True)}


def test_an_extractor_is_never_chained():
    steps = _steps(("a", "read", None), ("b", "read", None), ("t", "transform", ["a", "b"]))
    assert graph.effective_needs(steps)["b"] == ([], False)


def test_no_inferred_edge_closes_a_cycle():
    # written last-first: b needs c explicitly, c has no needs; inferring c → b would be a cycle
    steps = _steps(("a", "write", ["b"]), ("b", "transform", ["c"]), ("c", "transform", None))
    needs = graph.effective_needs(steps)
    assert needs["c"] == ([], False)
    plain = {k: v for k, (v, _) in needs.items()}
    assert graph.find_cycle(plain) is None
    assert graph.order(["a", "b", "c"], plain) == ["c", "b", "a"]


def test_order_is_stable_and_linear_for_long_reversed_chains():
    ids = [f"s{i}" for i in range(20000)]
    needs = {sid: [ids[i + 1]] for i, sid in enumerate(ids[:-1])}
    assert graph.order(ids, needs) == ids[::-1]
    assert graph.order(["x", "y", "z"], {"z": ["x"]}) == ["x", "y", "z"]
