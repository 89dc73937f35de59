"""`validate --format github`: annotations a runner accepts, at the exact positions, within its limits."""

from __future__ import annotations

import subprocess
import sys

from tests.action.runner_parse import parse_stdout

PIPELINE = """oml_version: "0.1.0"
name: many-problems
steps:
""" + "".join(
    f"""  - id: s{i}
    component: duckdb.processor
    mode: transform
    config:
      query: SELECT FROM WHERE {i}
"""
    for i in range(12)
)


def test_github_format_annotates_exact_positions_within_limits(tmp_path):
    (tmp_path / "p.yaml").write_text(PIPELINE)
    proc = subprocess.run(
        [sys.executable, "-m", "osiris_action", "validate", "p.yaml", "--format", "github"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    transcript = parse_stdout(proc.stdout)
    errors = [c for c in transcript.annotations if c.name == "error"]
    assert len(errors) == 10  # the runner keeps ten per type: the rest go to the overflow notice
    first = errors[0]
    assert (first.prop("file"), first.prop("title")) == ("p.yaml", "OML060")
    assert first.prop("line") == "8"  # the line of the first query
    notices = [c for c in transcript.annotations if c.name == "notice"]
    assert len(notices) == 1 and "2 more" in notices[0].data
