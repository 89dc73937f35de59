"""Several pipelines in one step: they run at the same time, each in its own sandbox, and one
pipeline's failure does not hide the others' results."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

from tests.action.conftest import ORDERS_BY_STATUS, RunnerWorld, default_base_files

# Valid OML whose query fails only when it runs: the value cannot be cast.
BROKEN = (
    ORDERS_BY_STATUS.replace("name: orders-by-status", "name: broken-cast")
    .replace(
        "SELECT status, count(*) AS orders FROM input_df GROUP BY status ORDER BY status",
        "SELECT CAST(status AS INTEGER) AS n FROM input_df",
    )
    .replace("out/orders_by_status.csv", "out/broken.csv")
)
# Slow enough (a few tenths of a second) that runs started together are seen to overlap.
SLOW = "SELECT status, count(*) AS orders FROM input_df, range(3000) GROUP BY status ORDER BY status"


def _interval(events_file) -> tuple[datetime, datetime]:
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    return datetime.fromisoformat(events[0]["ts"]), datetime.fromisoformat(events[-1]["ts"])


def test_pipelines_run_concurrently_and_a_failure_hides_nothing(runner_world: RunnerWorld) -> None:
    base = default_base_files()
    base["pipelines/orders-by-status.yaml"] = ORDERS_BY_STATUS.replace(
        "SELECT status, count(*) AS orders FROM input_df GROUP BY status ORDER BY status", SLOW
    )
    base["pipelines/broken-cast.yaml"] = BROKEN
    runner_world.setup(base=base, head={"README.md": "# data pipelines, all three\n"}, checkout="main")
    result = runner_world.run(
        "workflow_dispatch",
        {"mode": "run", "pipelines": "pipelines/*.yaml", "max-parallel": "3"},
        timeout=120,
    )
    assert result.returncode == 1, result.explain()
    assert result.outputs["status"] == "failure"
    runs = {run["pipeline"]: run for run in result.report()["runs"]}
    assert {name: run["status"] for name, run in runs.items()} == {
        "broken-cast": "failure",
        "orders-by-status": "success",
        "orders-summary": "success",
    }
    assert "Conversion Error" in runs["broken-cast"]["steps"][1]["error"]["message"]
    for name in ("broken-cast", "orders-by-status", "orders-summary"):
        assert name in result.summary
    intervals = sorted(_interval(p) for p in result.artifacts_dir().glob("*/events.jsonl"))
    assert len(intervals) == 3
    overlapping = sum(later[0] < earlier[1] for earlier, later in itertools.pairwise(intervals))
    assert overlapping >= 1, intervals
    failed = [a for a in result.of_level("error") if a.title and "broken" in (a.file or "")]
    assert failed and failed[0].file == "pipelines/broken-cast.yaml"
