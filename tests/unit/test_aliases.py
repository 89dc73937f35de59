"""A finding in config that comes from a YAML anchor points at the line where the value is written."""

from __future__ import annotations

import pytest

from osiris_action.pipelines import Checker

PIPELINE = """oml_version: "0.1.0"
name: anchors
x-defaults: &d
  connection: "@mysql.db"
  batchsize: 10
steps:
  - id: e
    component: mysql.extractor
    mode: read
    config:
      <<: *d
      table: movies
  - id: f
    component: mysql.extractor
    mode: read
    config:
      <<: *d
      batchsize: 20
      table: movies
"""


def test_merged_and_overridden_values_point_where_they_are_written(tmp_path):
    (tmp_path / "osiris_connections.yaml").write_text(
        'connections:\n  mysql:\n    db: {host: h, database: d, user: u, password: ""}\n'
    )
    (tmp_path / "p.yaml").write_text(PIPELINE)
    found = sorted((d.code, d.line) for d in Checker().check(tmp_path / "p.yaml").diagnostics)
    # step e inherits the typo from the anchor (line 5); step f overrides it on line 18
    assert found == [("OML041", 5), ("OML041", 18)]


@pytest.mark.timeout(60)  # linear: about 2 s; the quadratic version took minutes
def test_many_anchors_stay_linear(tmp_path):
    lines = ['oml_version: "0.1.0"', "name: many", "x-m:"]
    lines += [f"  a{i}: &a{i} {{x: 1}}" for i in range(40000)]
    (tmp_path / "p.yaml").write_text("\n".join([*lines, "steps: []"]) + "\n")
    codes = [d.code for d in Checker().check(tmp_path / "p.yaml").diagnostics]
    assert codes == ["OML017"]


def test_a_finding_in_a_shared_config_is_reported_once(tmp_path):
    (tmp_path / "osiris_connections.yaml").write_text(
        'connections:\n  mysql:\n    db: {host: h, database: d, user: u, password: ""}\n'
    )
    (tmp_path / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: shared\nsteps:\n'
        "  - id: a\n    component: mysql.extractor\n    mode: read\n"
        '    config: &c {connection: "@mysql.dbx", table: t}\n'
        "  - {id: b, component: mysql.extractor, mode: read, config: *c}\n"
    )
    # both steps use the one written value: one finding where it is written, not one per step
    found = [(d.code, d.line) for d in Checker().compile(tmp_path / "p.yaml").diagnostics]
    assert found == [("OML052", 7)]
