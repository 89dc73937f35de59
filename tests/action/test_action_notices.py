"""The step's own notices share the runner's ten-per-type budget with the findings, so the overflow
notice that points to the rest is never the one the runner drops."""

from __future__ import annotations

from tests.action.conftest import ORDERS_SUMMARY, RunnerWorld, default_base_files

CHAINED = (
    ORDERS_SUMMARY.split("steps:")[0]
    + "steps:\n"
    + """  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config:
      connection: "@filesystem.local"
      path: orders.csv
"""
    + "".join(
        f"""  - id: t{i}
    component: duckdb.processor
    mode: transform
    config:
      query: SELECT * FROM input_df
"""
        for i in range(12)
    )
)


def test_a_fork_pr_with_many_notices_keeps_the_overflow_notice(runner_world: RunnerWorld) -> None:
    base = default_base_files()
    runner_world.setup(base=base, head={"pipelines/orders-summary.yaml": CHAINED})
    result = runner_world.run("pull_request_fork")
    assert result.returncode == 0, result.explain()
    notices = [c for c in result.out.kept_annotations if c.name == "notice"]
    assert len(notices) == 10
    titles = [c.prop("title") for c in notices]
    assert "Run skipped" in titles and titles[-1] == "More findings"
