"""Per-pull-request isolation against the real Postgres (and MariaDB): every writer's target moves to the
pull request's own schema, two pull requests at once leave two separate results, and cleanup drops one
pull request's schema and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from osiris_action import cli
from tests.conftest import Database, mysql_execute, pg_execute

pytestmark = pytest.mark.db

CONNECTIONS = """\
version: 1
connections:
  filesystem:
    local:
      default: true
      base_dir: ./data
  supabase:
    staging:
      pg_dsn: ${PG_DSN}
  mysql:
    staging:
      host: 127.0.0.1
      port: 3306
      database: ${MYSQL_DATABASE}
      user: root
      password: ""
"""
PIPELINE = """\
oml_version: "0.1.0"
name: revenue
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config:
      path: orders.csv
  - id: revenue-by-country
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: SELECT country, sum(amount) AS revenue FROM input_df GROUP BY country
  - id: write-revenue
    component: {writer}
    mode: write
    needs: [revenue-by-country]
    config:
{config}
"""
PG_CONFIG = """\
      connection: "@supabase.staging"
      table: revenue
      write_mode: replace
      primary_key: [country]
"""
MYSQL_CONFIG = """\
      connection: "@mysql.staging"
      table: revenue
      mode: replace
      upsert_keys: [country]
      create_table: true
"""
# Each pull request changes the data; the pipeline and the target are the same.
ORDERS = {
    1: [("DE", 10), ("DE", 5), ("FR", 7)],
    2: [("US", 100), ("JP", 1), ("JP", 2), ("BR", 3)],
}


def checkout(root: Path, orders: list[tuple[str, int]], writer: str = "supabase.writer") -> Path:
    """One pull request's working copy: the pipeline, its connections and its CSV."""
    (root / "data").mkdir(parents=True)
    rows = "".join(f"{country},{amount}\n" for country, amount in orders)
    (root / "data" / "orders.csv").write_text("country,amount\n" + rows)
    (root / "osiris_connections.yaml").write_text(CONNECTIONS)
    config = PG_CONFIG if writer == "supabase.writer" else MYSQL_CONFIG
    pipeline = root / "revenue.yaml"
    pipeline.write_text(PIPELINE.format(writer=writer, config=config))
    return pipeline


def expected(orders: list[tuple[str, int]]) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for country, amount in orders:
        totals[country] = totals.get(country, 0) + amount
    return sorted(totals.items())


def pg_revenue(db: Database, schema: str) -> list[tuple[str, int]]:
    return [
        (c, int(r)) for c, r in pg_execute(db, f"SELECT country, revenue FROM {schema}.revenue ORDER BY 1")
    ]


def pg_schemas(db: Database) -> set[str]:
    return {row[0] for row in pg_execute(db, "SELECT nspname FROM pg_namespace")}


def test_two_pull_requests_at_once_leave_two_separate_results(tmp_path, pg_db):
    """Two runs of the same pipeline, started together as two CI jobs would be, against one database
    whose configured table holds production rows that neither may touch."""
    pg_execute(
        pg_db,
        "CREATE TABLE public.revenue (country text PRIMARY KEY, revenue bigint)",
        "INSERT INTO public.revenue VALUES ('production', 1)",
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PG_DSN": pg_db.pg_dsn}
    runs = {}
    for number, orders in ORDERS.items():
        pipeline = checkout(tmp_path / f"pr{number}", orders)
        command = [
            sys.executable,
            "-m",
            "osiris_action",
            "run",
            str(pipeline),
            "--out",
            str(pipeline.parent / "out"),
        ]
        command += ["--isolate-schema", f"osiris_pr_{number}"]
        runs[number] = subprocess.Popen(
            command, cwd=pipeline.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    printed = {number: proc.communicate(timeout=120)[0] for number, proc in runs.items()}
    for number, proc in runs.items():
        assert proc.returncode == 0, printed[number]

    for number, orders in ORDERS.items():
        assert pg_revenue(pg_db, f"osiris_pr_{number}") == expected(orders)
        report = json.loads((tmp_path / f"pr{number}" / "out" / "report.json").read_text())
        (write,) = report["writes"]
        assert (write["schema"], write["table"], write["rows_written"]) == (
            f"osiris_pr_{number}",
            "revenue",
            len(expected(orders)),
        )
        assert f"to osiris_pr_{number}.revenue (replace" in printed[number]
        summary = (tmp_path / f"pr{number}" / "out" / "summary.md").read_text()
        assert f"| osiris\\_pr\\_{number}.revenue | replace |" in summary
    assert pg_execute(pg_db, "SELECT * FROM public.revenue") == [("production", 1)]


def test_a_plan_in_an_isolated_schema_shows_the_schema_it_would_create(tmp_path, pg_db, monkeypatch, capsys):
    monkeypatch.setenv("PG_DSN", pg_db.pg_dsn)
    pipeline = checkout(tmp_path, ORDERS[1])
    before = pg_schemas(pg_db)
    code = cli.main(
        ["plan", str(pipeline), "--out", str(tmp_path / "out"), "--isolate-schema", "osiris_pr_7"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert pg_schemas(pg_db) == before
    (target,) = json.loads((tmp_path / "out" / "report.json").read_text())["targets"]
    assert (target["schema"], target["state"]) == ("osiris_pr_7", "missing")
    assert target["ddl"].startswith(
        'CREATE SCHEMA IF NOT EXISTS "osiris_pr_7";\nCREATE TABLE "osiris_pr_7"."revenue"'
    )


def test_cleanup_drops_that_pull_requests_schema_and_nothing_else(tmp_path, pg_db, monkeypatch, capsys):
    pg_execute(
        pg_db,
        "CREATE TABLE public.revenue (country text)",
        *[
            statement
            for n in (1, 2)
            for statement in (
                f"CREATE SCHEMA osiris_pr_{n}",
                f"CREATE TABLE osiris_pr_{n}.revenue (country text)",
                f"CREATE VIEW osiris_pr_{n}.revenue_view AS SELECT * FROM osiris_pr_{n}.revenue",
            )
        ],
    )
    monkeypatch.setenv("PG_DSN", pg_db.pg_dsn)
    pipeline = checkout(tmp_path, ORDERS[1])
    assert cli.main(["cleanup", str(pipeline), "--schema", "osiris_pr_1"]) == 0
    assert "dropped @supabase.staging: osiris_pr_1" in capsys.readouterr().out
    schemas = pg_schemas(pg_db)
    assert "osiris_pr_1" not in schemas and {"osiris_pr_2", "public"} <= schemas
    tables = pg_execute(
        pg_db, "SELECT schemaname, tablename FROM pg_tables WHERE tablename = 'revenue' ORDER BY 1"
    )
    assert tables == [("osiris_pr_2", "revenue"), ("public", "revenue")]
    assert pg_execute(pg_db, "SELECT count(*) FROM osiris_pr_2.revenue_view") == [(0,)]


@pytest.mark.parametrize(
    ("schema", "template"),
    [
        ("public", "osiris_pr_{number}"),
        ("osiris_pr_x", "osiris_pr_{number}"),
        ("osiris_pr_", "osiris_pr_{number}"),
        ("osiris_pr_1; drop schema public cascade", "osiris_pr_{number}"),
        ('osiris_pr_1" cascade; --', "osiris_pr_{number}"),
        ("OSIRIS_PR_1", "osiris_pr_{number}"),
        ("osiris_pr_1_old", "osiris_pr_{number}"),
        ("x_osiris_pr_1", "osiris_pr_{number}"),
        ("osiris_pr_1", "staging_{number}"),
        ("public", "{number}"),
    ],
)
def test_cleanup_refuses_a_schema_outside_the_template(
    tmp_path, pg_db, monkeypatch, capsys, schema, template
):
    pg_execute(pg_db, "CREATE SCHEMA osiris_pr_1", "CREATE TABLE public.keep (id int)")
    monkeypatch.setenv("PG_DSN", pg_db.pg_dsn)
    before = pg_schemas(pg_db)
    pipeline = checkout(tmp_path, ORDERS[1])
    assert cli.main(["cleanup", str(pipeline), "--schema", schema, "--template", template]) == 2
    assert "refusing to drop schema" in capsys.readouterr().err
    assert pg_schemas(pg_db) == before


def test_mysql_isolation_creates_the_database_and_cleanup_drops_it(tmp_path, mysql_db, monkeypatch, capsys):
    """MySQL's schema is a database: created on first use, dropped by cleanup. The template carries a
    random part, since databases are shared by every test on the server."""
    template = f"osiris_t{uuid.uuid4().hex[:8]}_pr_{{number}}"
    schema = template.format(number=5)
    monkeypatch.setenv("MYSQL_DATABASE", mysql_db.database)
    pipeline = checkout(tmp_path, ORDERS[2], writer="mysql.writer")
    try:
        code = cli.main(["run", str(pipeline), "--out", str(tmp_path / "out"), "--isolate-schema", schema])
        assert code == 0, capsys.readouterr().out
        rows = mysql_execute(mysql_db, f"SELECT country, revenue FROM `{schema}`.revenue ORDER BY 1")
        assert [(c, int(r)) for c, r in rows] == expected(ORDERS[2])
        assert mysql_execute(mysql_db, f"SHOW TABLES FROM `{mysql_db.database}`") == []
        assert cli.main(["cleanup", str(pipeline), "--schema", schema, "--template", template]) == 0
        assert f"dropped @mysql.staging: {schema}" in capsys.readouterr().out
        assert mysql_execute(mysql_db, f"SHOW DATABASES LIKE '{schema}'") == []
    finally:
        mysql_execute(mysql_db, f"DROP DATABASE IF EXISTS `{schema}`")
