"""Property: whatever is done to a valid pipeline, checking it returns diagnostics and never raises.

Mutations are those a hurried edit or a broken tool makes: keys deleted, duplicated, renamed or given a
value of another type, random scalars anywhere, the file cut short, random bytes dropped in. Every file
goes through `Checker.check`, the path the CLI takes; a file the checker passes must also compile into
a manifest the manifest model accepts, since `compile` trusts what `validate` let through.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osiris_action.diagnostics import Diagnostic
from osiris_action.manifest_file import Manifest
from osiris_action.pipelines import Checker
from tests.unit.test_validate import CONNECTIONS, CSV_WRITER, PIPELINE

ROOT = Path(__file__).resolve().parents[2]
BASES = [
    PIPELINE,
    PIPELINE + CSV_WRITER,
    (ROOT / "examples/osiris-demo/mysql-duckdb-supabase.yaml").read_text(),
    (ROOT / "examples/quickstart/orders-summary.yaml").read_text(),
]
WORK = Path(tempfile.mkdtemp(prefix="oml-fuzz-"))
(WORK / "osiris_connections.yaml").write_text(CONNECTIONS)
# OML_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the unit run quick.
FUZZ = settings(
    max_examples=int(os.environ.get("OML_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["@mysql.db_movies", "@x", "${params.p}", "${ENV}", "SELECT * FROM", "read", "0.1.0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


def _mutate(data, draw) -> object:
    """One structural change at a random place: delete, retype, rename, or duplicate an entry."""
    paths = [p for p in _paths(data) if p]
    if not paths:
        return draw(values)
    path = draw(st.sampled_from(paths))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    action = draw(st.sampled_from(["delete", "retype", "rename", "duplicate"]))
    if action == "delete":
        del parent[last]
    elif action == "retype":
        parent[last] = draw(values)
    elif action == "rename" and isinstance(parent, dict):
        parent[draw(st.text(max_size=12))] = parent.pop(last)
    elif isinstance(parent, list):
        parent.insert(last, parent[last])
    return data


def _check(text: str | bytes) -> list[Diagnostic]:
    path = WORK / "p.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    checker = Checker(str(WORK / "osiris_connections.yaml"))
    checked = checker.check(path)
    assert isinstance(checked.diagnostics, list)
    assert all(isinstance(d, Diagnostic) and d.line >= 1 and d.column >= 1 for d in checked.diagnostics)
    if checked.ok:
        compiled = checker.compile(path).compiled
        if compiled is not None:
            Manifest.model_validate_json(compiled.data)
    return checked.diagnostics


@FUZZ
@given(st.data())
def test_structural_mutations_never_crash(data):
    base = yaml.safe_load(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(1, 4))):
        base = _mutate(base, data.draw)
    text = yaml.safe_dump(base, sort_keys=data.draw(st.booleans()), allow_unicode=data.draw(st.booleans()))
    _check(text)


@FUZZ
@given(st.data())
def test_text_mutations_never_crash(data):
    raw = data.draw(st.sampled_from(BASES)).encode()
    lines = raw.splitlines(keepends=True)
    action = data.draw(st.sampled_from(["truncate", "insert-bytes", "duplicate-line", "delete-line", "swap"]))
    if action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif action == "insert-bytes":
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    else:
        i = data.draw(st.integers(0, len(lines) - 1))
        if action == "duplicate-line":
            lines.insert(i, lines[i])
        elif action == "delete-line":
            del lines[i]
        else:
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        raw = b"".join(lines)
    _check(raw)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_never_crashes(text):
    _check(text)


def test_a_pipeline_made_of_each_scalar_type_never_crashes():
    for value in [None, True, 0, 1.5, float("nan"), "x", [], {}]:
        for key in ["oml_version", "name", "steps", "metadata", "params"]:
            _check(yaml.safe_dump({**yaml.safe_load(PIPELINE), key: value}))
        _check(yaml.safe_dump(value))
