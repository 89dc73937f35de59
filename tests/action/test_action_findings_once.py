"""A finding is reported once wherever it shows: annotations, report.json and the summary."""

from __future__ import annotations

from tests.action.conftest import RunnerWorld

SHARED = (
    'oml_version: "0.1.0"\nname: shared\nsteps:\n'
    "  - id: a\n    component: filesystem.csv_extractor\n    mode: read\n"
    '    config: &c {connection: "@filesystem.nope", path: x.csv}\n'
    "  - {id: b, component: filesystem.csv_extractor, mode: read, config: *c}\n"
)


def test_an_undefined_connection_in_a_shared_config_is_one_finding(runner_world: RunnerWorld) -> None:
    runner_world.setup(head={"pipelines/shared.yaml": SHARED})
    result = runner_world.run("pull_request", {"mode": "validate"})
    assert result.returncode == 1, result.explain()
    assert [(a.title, a.line) for a in result.annotations] == [("OML052", 7)]
    assert [d["code"] for d in result.report()["diagnostics"]] == ["OML052"]
