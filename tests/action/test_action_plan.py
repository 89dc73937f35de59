"""The action's `mode: plan`, `isolate: pr` and `mode: cleanup` on pull request events, against the real
Postgres: what the summary, the comment and the annotations say, and what the database holds afterwards.
"""

from __future__ import annotations

import pytest

from tests.action.conftest import PR_NUMBER, REPOSITORY, RunnerWorld, default_base_files
from tests.conftest import Database, pg_execute

pytestmark = pytest.mark.db

PIPELINE_FILE = "pipelines/staging/revenue.yaml"
PIPELINE = """\
oml_version: "0.1.0"
name: revenue
description: Revenue and order counts per country, written to the staging database.
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config:
      connection: "@filesystem.orders"
      path: orders.csv

  - id: by-country
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: |
        SELECT country, count(*) AS orders, sum(amount) AS revenue FROM input_df GROUP BY country

  - id: write-revenue
    component: supabase.writer
    mode: write
    needs: [by-country]
    config:
      connection: "@supabase.staging"
      table: revenue
      write_mode: replace
      primary_key: [country]

  - id: write-counts
    component: supabase.writer
    mode: write
    needs: [by-country]
    config:
      connection: "@supabase.staging"
      table: order_counts
      write_mode: upsert
      primary_key: [country]
"""
CONNECTIONS = """\
version: 1
connections:
  filesystem:
    orders:
      default: true
      base_dir: ../data
  supabase:
    staging:
      default: true
      pg_dsn: ${SUPABASE_PG_DSN}
"""
SCHEMA = f"osiris_pr_{PR_NUMBER}"
SHOWN = SCHEMA.replace("_", "\\_")  # as the Markdown of the summary escapes it


def line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


@pytest.fixture
def world(runner_world: RunnerWorld, pg_db: Database) -> RunnerWorld:
    """A pull request adding the pipeline; production's `revenue` table has other columns than the data."""
    pg_execute(
        pg_db,
        "CREATE TABLE public.revenue (country text PRIMARY KEY, revenue date, region text NOT NULL)",
        "INSERT INTO public.revenue VALUES ('production', '2024-01-01', 'EU')",
    )
    runner_world.setup(
        default_base_files(),
        {PIPELINE_FILE: PIPELINE, "pipelines/staging/osiris_connections.yaml": CONNECTIONS},
    )
    return runner_world


def test_plan_reports_each_target_and_annotates_the_incompatible_writer(world: RunnerWorld, pg_db: Database):
    result = world.run(
        "pull_request", {"mode": "plan", "comment": "always"}, env={"SUPABASE_PG_DSN": pg_db.pg_dsn}
    )
    assert result.returncode == 1, result.explain()
    assert result.outputs["status"] == "failure" and result.outputs["rows-written"] == "0"

    (error,) = result.of_level("error")
    assert error.file == PIPELINE_FILE
    assert error.line == line_of(PIPELINE, "  - id: write-revenue")
    assert error.title == "Incompatible target for step write-revenue"
    assert error.message == (
        "target public.revenue does not fit the data: not in the table: orders; "
        "incompatible types: revenue (double into date); "
        "NOT NULL columns without a default missing from the data: region"
    )

    summary = result.summary
    assert "#### Plan" in summary
    assert "| public.revenue | ❌ incompatible | delete every row, then insert" in summary
    assert "in one transaction (replacing the 1 row now in the table) |" in summary
    assert (
        "| public.order\\_counts | 🆕 missing | create the table, then insert new rows and update" in summary
    )
    assert '```sql\nCREATE TABLE "public"."order_counts" (' in summary
    assert "| by-country | country string, orders int64, revenue double |" in summary
    (comment,) = world.api.comments(REPOSITORY, PR_NUMBER)
    assert "#### Plan" in comment["body"] and "❌ incompatible" in comment["body"]
    assert 'CREATE TABLE "public"."order_counts"' in comment["body"]

    # A plan writes nothing.
    assert pg_execute(pg_db, "SELECT country FROM public.revenue") == [("production",)]
    assert pg_execute(pg_db, "SELECT to_regclass('public.order_counts')") == [(None,)]


def test_isolate_pr_writes_to_the_pull_requests_schema_and_cleanup_drops_it(
    world: RunnerWorld, pg_db: Database
):
    env = {"SUPABASE_PG_DSN": pg_db.pg_dsn}
    result = world.run("pull_request", {"mode": "run", "isolate": "pr"}, env=env)
    assert result.returncode == 0, result.explain()
    written = pg_execute(pg_db, f"SELECT country, orders FROM {SCHEMA}.revenue ORDER BY country")
    assert written and written == pg_execute(
        pg_db, f"SELECT country, orders FROM {SCHEMA}.order_counts ORDER BY 1"
    )
    assert sum(orders for _, orders in written) == 1000  # every order in orders.csv
    assert pg_execute(pg_db, "SELECT country FROM public.revenue") == [("production",)]
    assert f"own schema {SHOWN}." in result.summary
    assert f"| {SHOWN}.revenue | replace | {len(written)} |" in result.summary
    assert f"| {SHOWN}.order\\_counts | upsert | {len(written)} |" in result.summary

    closed = world.run("pull_request_closed", {"mode": "cleanup"}, env=env)
    assert closed.returncode == 0, closed.explain()
    assert closed.outputs["status"] == "success"
    assert f"Dropped @&#8203;supabase.staging: {SHOWN}." in closed.summary  # an inert @
    assert pg_execute(pg_db, f"SELECT nspname FROM pg_namespace WHERE nspname = '{SCHEMA}'") == []
    assert pg_execute(pg_db, "SELECT country FROM public.revenue") == [("production",)]
