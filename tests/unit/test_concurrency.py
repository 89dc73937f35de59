"""The action compiles several pipelines at once: validation and compilation must be thread-safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from osiris_action.pipelines import Checker

PIPELINE = """oml_version: "0.1.0"
name: p{i}
steps:
  - id: a
    component: duckdb.processor
    mode: transform
    config:
      query: SELECT {i} AS n FROM range(10) WHERE {bad}
"""


def test_threads_compile_and_validate_at_once(tmp_path: Path):
    paths = []
    for i in range(16):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(PIPELINE.format(i=i, bad="true" if i % 2 else "FROM"))
        paths.append(path)

    def one(path: Path):
        return Checker().compile(path)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, paths * 4))
    for result in results:
        index = int(result.path.stem[1:])
        codes = [d.code for d in result.diagnostics if d.severity == "error"]
        assert codes == ([] if index % 2 else ["OML060"]), (result.path, result.diagnostics)
        assert (result.compiled is not None) == bool(index % 2)
