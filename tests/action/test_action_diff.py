"""The data diff through the whole action on the real Postgres: `isolate: pr`, `diff: on` and
`fail-on-diff`, read back as the runner reads them (outputs, annotations, the summary's Markdown).
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.action.conftest import PR_NUMBER, RunnerWorld, default_base_files
from tests.conftest import Database, pg_execute

pytestmark = pytest.mark.db

PIPELINE_FILE = "pipelines/staging/items.yaml"
PIPELINE = """\
oml_version: "0.1.0"
name: items
description: The price list, written to the staging database.
steps:
  - id: read-items
    component: filesystem.csv_extractor
    mode: read
    config:
      connection: "@filesystem.items"
      path: items.csv

  - id: write-items
    component: supabase.writer
    mode: write
    needs: [read-items]
    config:
      connection: "@supabase.staging"
      table: items
      write_mode: replace
      primary_key: [id]
"""
CONNECTIONS = """\
version: 1
connections:
  filesystem:
    items:
      default: true
      base_dir: data
  supabase:
    staging:
      default: true
      pg_dsn: ${SUPABASE_PG_DSN}
"""
# Against the base table: 1 the same, 2 a new price, 3 NULL = NULL (the same), 4 removed, 5 added.
ITEMS = "id,name,price\n1,apple,1.5\n2,pear,2.25\n3,plum,\n5,kiwi,4.0\n"
BASE = (
    "INSERT INTO public.items VALUES (1, 'apple', 1.5), (2, 'pear', 2.0), (3, 'plum', NULL), (4, 'fig', 3.0)"
)
SCHEMA = f"osiris_pr_{PR_NUMBER}"
KEYS = {"step", "table", "base_table", "key", "rows_base", "rows_new", "added", "removed", "changed"}
KEYS |= {"unchanged", "columns", "schema_changes", "sample"}

SECTION = (
    "#### Data diff\n\n"
    "<b><code>osiris\\_pr\\_42.items</code></b> against <code>public.items</code>"
    " · step write-items · key <code>id</code>\n"
    + """\

| rows before | rows after | added | removed | changed | unchanged |
| --- | --- | --- | --- | --- | --- |
| 4 | 4 | 1 | 1 | 1 | 2 |

| column | rows changed | nulls | sum | min | max |
| --- | --- | --- | --- | --- | --- |
| price | 1 | 1 | 6.5 → 7.75 | 1.5 | 3 → 4 |
| name | 0 | 0 | — | — | — |

<details><summary>Sample of changed, added and removed rows (3)</summary>

| change | id | name | price |
| --- | --- | --- | --- |
| changed | 2 | pear | <b>2 → 2.25</b> |
| added | 5 | kiwi | 4 |
| removed | 4 | fig | 3 |

</details>
"""
)


@pytest.fixture
def world(runner_world: RunnerWorld, pg_db: Database) -> RunnerWorld:
    pg_execute(
        pg_db,
        "CREATE TABLE public.items (id bigint PRIMARY KEY, name text, price double precision)",
        BASE,
    )
    runner_world.setup(
        default_base_files(),
        {
            PIPELINE_FILE: PIPELINE,
            "pipelines/staging/osiris_connections.yaml": CONNECTIONS,
            "pipelines/staging/data/items.csv": ITEMS,
        },
    )
    return runner_world


def section(summary: str) -> str:
    start = summary.index("#### Data diff")
    return summary[start : summary.index("</details>", start) + len("</details>\n")]


def test_isolated_run_compares_the_pr_table_with_the_base(world: RunnerWorld, pg_db: Database):
    result = world.run(
        "pull_request",
        {"isolate": "pr", "comment": "always", "show-data-values": "true"},
        env={"SUPABASE_PG_DSN": pg_db.pg_dsn},
    )
    assert result.returncode == 0, result.explain()

    (diff,) = json.loads(result.outputs["data-diff"])  # read as the runner reads GITHUB_OUTPUT
    assert set(diff) == KEYS - {"sample"}
    assert diff == {
        "step": "write-items",
        "table": f"{SCHEMA}.items",
        "base_table": "public.items",
        "key": ["id"],
        "rows_base": 4,
        "rows_new": 4,
        "added": 1,
        "removed": 1,
        "changed": 1,
        "unchanged": 2,
        "columns": {"name": 0, "price": 1},
        "schema_changes": [],
    }
    (run,) = result.report()["runs"]
    (full,) = run["data_diff"]
    assert set(full) == KEYS and len(full["sample"]) == 3
    assert section(result.summary) == SECTION
    (comment,) = world.api.comments("acme/data-pipelines", PR_NUMBER)
    assert SECTION in comment["body"]
    assert pg_execute(pg_db, "SELECT count(*) FROM public.items") == [(4,)]  # the base is untouched


def test_a_public_repository_shows_which_rows_changed_but_not_their_values(
    world: RunnerWorld, pg_db: Database
):
    result = world.run(
        "pull_request", {"isolate": "pr", "comment": "always"}, env={"SUPABASE_PG_DSN": pg_db.pg_dsn}
    )
    assert result.returncode == 0, result.explain()
    (comment,) = world.api.comments("acme/data-pipelines", PR_NUMBER)
    for shown in (result.summary, comment["body"]):
        assert "| changed | price |" in shown and "pear" not in shown and "kiwi" not in shown
    (run,) = result.report()["runs"]  # the artifact keeps the sample whole
    assert {row["kind"] for row in run["data_diff"][0]["sample"]} == {"changed", "added", "removed"}


def test_diff_on_compares_the_incoming_rows_before_the_write(world: RunnerWorld, pg_db: Database):
    result = world.run("pull_request", {"diff": "on"}, env={"SUPABASE_PG_DSN": pg_db.pg_dsn})
    assert result.returncode == 0, result.explain()
    (diff,) = json.loads(result.outputs["data-diff"])
    assert diff["table"] == diff["base_table"] == "public.items"
    assert [diff[k] for k in ("rows_base", "rows_new", "added", "removed", "changed", "unchanged")] == [
        4,
        4,
        1,
        1,
        1,
        2,
    ]
    assert pg_execute(pg_db, "SELECT id FROM public.items ORDER BY id") == [(1,), (2,), (3,), (5,)]


def test_fail_on_diff_fails_the_step_and_annotates_the_writer(world: RunnerWorld, pg_db: Database):
    result = world.run(
        "pull_request",
        {"isolate": "pr", "fail-on-diff": "removed > 0\nchanged > 50%"},
        env={"SUPABASE_PG_DSN": pg_db.pg_dsn},
    )
    assert result.returncode == 1, result.explain()
    assert result.outputs["status"] == "failure"
    (error,) = [a for a in result.of_level("error") if (a.title or "").startswith("Data diff gate")]
    assert error.title == "Data diff gate for step write-items"
    assert error.file == PIPELINE_FILE
    assert error.line == PIPELINE.splitlines().index("  - id: write-items") + 1
    assert "removed > 0 (measured 1)" in error.message and "changed > 50%" not in error.message


def test_a_bad_threshold_is_an_input_error(world: RunnerWorld, pg_db: Database):
    result = world.run(
        "pull_request", {"fail-on-diff": "removed > lots"}, env={"SUPABASE_PG_DSN": pg_db.pg_dsn}
    )
    assert result.returncode == 2, result.explain()
    (error,) = result.of_level("error")
    assert error.title == "Invalid input 'fail-on-diff'"
    assert "'removed > lots'" in error.message


def test_plan_says_which_table_the_diff_will_compare(world: RunnerWorld, pg_db: Database):
    result = world.run(
        "pull_request", {"mode": "plan", "isolate": "pr"}, env={"SUPABASE_PG_DSN": pg_db.pg_dsn}
    )
    assert result.returncode == 0, result.explain()
    assert "a data diff will compare the written table with public.items, on key (id)" in result.summary


def test_the_sample_without_values_names_only_rows_and_columns():
    from osiris_action.render import sample_table

    sample = [
        {
            "kind": "changed",
            "row_key": {"id": "2"},
            "before": {"id": "2", "price": "2"},
            "after": {"id": "2", "price": "2.25"},
            "changed": ["price"],
        }
    ]
    hidden = sample_table(sample, ["id"], show_values=False).render()
    assert "2.25" not in hidden and "| changed | price |" in hidden
    assert "<b>2 → 2.25</b>" in sample_table(sample, ["id"]).render()


def test_a_write_that_kept_rows_out_is_a_warning_on_the_writer(world: RunnerWorld, pg_db: Database):
    pg_execute(
        pg_db,
        "CREATE FUNCTION skip_kiwi() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.name = 'kiwi' THEN RETURN NULL; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER skip BEFORE INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION skip_kiwi()",
    )
    result = world.run("pull_request", {}, env={"SUPABASE_PG_DSN": pg_db.pg_dsn})
    assert result.returncode == 0, result.explain()
    (warning,) = [a for a in result.of_level("warning") if (a.title or "").startswith("Fewer rows")]
    assert warning.title == "Fewer rows written by step write-items"
    assert warning.line == PIPELINE.splitlines().index("  - id: write-items") + 1
    assert "4 in, 3 written or unchanged (1 kept out by the target" in warning.message
    assert "⚠️ write-items wrote fewer rows than it received: 4 in, 3 written" in result.summary
    assert result.outputs["rows-written"] == "3"


def test_a_count_the_target_did_not_give_reads_not_measured():
    from osiris_action.render import markdown, text
    from osiris_action.report import RunReport, WriteReport

    report = RunReport(run_id="r", pipeline="p", manifest_fingerprint="f" * 64, target="local", steps=[])
    report.writes.append(
        WriteReport(
            step_id="w",
            table="t",
            schema_="public",
            mode="append",
            rows_written=None,
            channel="rest",
            rows_in=5,
            rows_written_measured=False,
        )
    )
    assert "| public.t | append | not measured | rest" in markdown([report])
    assert "wrote rows (how many: not measured) to public.t" in text(report)


def test_sample_values_equal_to_a_secret_are_masked(world: RunnerWorld, pg_db: Database):
    password = f"pg-Secret-{uuid.uuid4().hex}"  # trust auth accepts it; it must never show
    dsn = f"postgresql://{pg_db.user}:{password}@{pg_db.host}:{pg_db.port}/{pg_db.database}"
    world.write({"pipelines/staging/data/items.csv": ITEMS.replace("2,pear,2.25", f"2,{password},2.25")})
    result = world.run(
        "pull_request", {"isolate": "pr", "show-data-values": "true"}, env={"SUPABASE_PG_DSN": dsn}
    )
    assert result.returncode == 0, result.explain()
    assert "| changed | 2 | <b>pear → \\*\\*\\*</b> | <b>2 → 2.25</b> |" in result.summary
    (run,) = result.report()["runs"]
    changed = run["data_diff"][0]["sample"][0]
    assert changed["after"]["name"] == "***" and changed["changed"] == ["name", "price"]
    assert password not in (result.artifacts_dir() / "report.json").read_text()
    assert json.loads(result.outputs["data-diff"])[0]["columns"] == {"name": 1, "price": 1}
