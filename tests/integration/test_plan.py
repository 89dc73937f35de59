"""`osiris-action plan` against the real MariaDB and Postgres: what it reports, and that it writes nothing.

Each test snapshots both databases (every schema, table and row) before the plan and compares after it,
so "writes nothing" is measured, not assumed. The read-only test goes further: its users could not write
if the plan tried.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pymysql
import pytest
from osiris_drivers._common import StepContext, StepError
from osiris_drivers.csv_writer import plan as plan_csv
from osiris_drivers.mysql_extractor import plan as plan_extract

from osiris_action import cli
from tests.conftest import MYSQL, Database, mysql_execute, pg_execute

pytestmark = pytest.mark.db

ORDERS = [
    (1, "ada", "12.50"),
    (2, "ada", "7.25"),
    (3, "bob", "100.00"),
    (4, "cy", "3.10"),
    (5, "bob", "0.90"),
]
QUERY = "SELECT id, customer, amount FROM orders"

CONNECTIONS = """\
version: 1
connections:
  mysql:
    shop:
      host: {host}
      port: {port}
      database: {database}
      user: ${{MYSQL_USER}}
      password: {password}
  supabase:
    staging:
      pg_dsn: ${{PG_DSN}}
"""
PIPELINE = """\
oml_version: "0.1.0"
name: customer-totals
steps:
  - id: extract-orders
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.shop"
      query: "{query}"
  - id: totals
    component: duckdb.processor
    mode: transform
    needs: [extract-orders]
    config:
      query: SELECT customer, count(*) AS orders, sum(amount) AS total FROM input_df GROUP BY customer
"""
PG_WRITER = """\
  - id: {id}
    component: supabase.writer
    mode: write
    needs: [totals]
    config:
      connection: "@supabase.staging"
      table: {table}
      write_mode: {mode}
      primary_key: [customer]
"""
MYSQL_WRITER = """\
  - id: {id}
    component: mysql.writer
    mode: write
    needs: [totals]
    config:
      connection: "@mysql.shop"
      table: {table}
      mode: {mode}
      upsert_keys: [customer]
      create_table: true
"""


def seed(db: Database) -> None:
    mysql_execute(
        db,
        "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(50) NOT NULL, amount DECIMAL(10,2))",
        "INSERT INTO orders VALUES " + ", ".join(f"({i}, '{c}', {a})" for i, c, a in ORDERS),
    )


def project(tmp: Path, mysql_db: Database, writers: str, query: str = QUERY, password: str = '""') -> Path:
    """The pipeline and its connections; the users come from the environment (see `as_users`)."""
    (tmp / "osiris_connections.yaml").write_text(
        CONNECTIONS.format(
            host=mysql_db.host, port=mysql_db.port, database=mysql_db.database, password=password
        )
    )
    pipeline = tmp / "customer-totals.yaml"
    pipeline.write_text(PIPELINE.format(query=query) + writers)
    return pipeline


def as_users(monkeypatch, mysql_user: str, mysql_password: str, pg_dsn: str) -> None:
    monkeypatch.setenv("MYSQL_USER", mysql_user)
    if mysql_password:
        monkeypatch.setenv("MYSQL_PASSWORD", mysql_password)
    monkeypatch.setenv("PG_DSN", pg_dsn)


def osiris(capsys, command: str, pipeline: Path, out: Path) -> tuple[int, str, dict]:
    """The CLI in this process: its exit code, what it printed, and its report.json."""
    code = cli.main([command, str(pipeline), "--out", str(out)])
    printed = capsys.readouterr()
    printed = printed.out + printed.err
    assert (out / "report.json").is_file(), printed
    return code, printed, json.loads((out / "report.json").read_text())


def snapshot(mysql_db: Database, pg_db: Database) -> dict:
    """Every database and table the tests could touch, with every row."""
    tables = [row[0] for row in mysql_execute(mysql_db, "SHOW TABLES")]
    databases = [row[0] for row in mysql_execute(mysql_db, "SHOW DATABASES")]
    pg_tables = pg_execute(
        pg_db,
        "SELECT schemaname, tablename FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    return {
        # throwaway databases of tests running alongside come and go; they are not ours to compare
        "mysql databases": sorted(d for d in databases if not d.startswith("osiris_t_")),
        "mysql": {t: mysql_execute(mysql_db, f"SELECT * FROM `{t}` ORDER BY 1") for t in tables},
        "pg schemas": pg_execute(pg_db, "SELECT nspname FROM pg_namespace ORDER BY 1"),
        "pg": {f"{s}.{t}": pg_execute(pg_db, f'SELECT * FROM "{s}"."{t}" ORDER BY 1') for s, t in pg_tables},
    }


def targets(report: dict) -> dict[str, dict]:
    return {t["step_id"]: t for t in report["targets"]}


def test_missing_targets_show_the_create_table_a_run_would_execute(
    tmp_path, mysql_db, pg_db, monkeypatch, capsys
):
    seed(mysql_db)
    as_users(monkeypatch, "root", "", pg_db.pg_dsn)
    writers = PG_WRITER.format(id="to-pg", table="totals", mode="replace")
    writers += MYSQL_WRITER.format(id="to-mysql", table="totals", mode="upsert")
    pipeline = project(tmp_path, mysql_db, writers)
    before = snapshot(mysql_db, pg_db)

    code, printed, report = osiris(capsys, "plan", pipeline, tmp_path / "plan")
    assert code == 0, printed
    assert snapshot(mysql_db, pg_db) == before
    assert report["mode"] == "plan" and report["status"] == "success" and report["writes"] == []
    columns = {s["id"]: [(c["name"], c["type"]) for c in s["columns"] or []] for s in report["steps"]}
    assert columns["extract-orders"] == [
        ("id", "int32"),
        ("customer", "string"),
        ("amount", "decimal128(10, 2)"),
    ]
    assert columns["totals"] == [("customer", "string"), ("orders", "int64"), ("total", "decimal128(38, 2)")]
    pg, my = targets(report)["to-pg"], targets(report)["to-mysql"]
    assert (pg["state"], pg["schema"], pg["table"]) == ("missing", "public", "totals")
    assert (
        pg["ddl"].startswith('CREATE TABLE "public"."totals" (') and 'PRIMARY KEY ("customer")' in pg["ddl"]
    )
    assert pg["effect"].startswith("create the table, then")
    assert (my["state"], my["schema"]) == ("missing", mysql_db.database)
    assert my["ddl"].startswith(f"CREATE TABLE `{mysql_db.database}`.`totals` (")
    assert "PRIMARY KEY (`customer`)" in my["ddl"]
    assert "on (customer)" in my["effect"]
    assert "CREATE TABLE `" in printed and 'CREATE TABLE "public"."totals"' in printed
    summary = (tmp_path / "plan" / "summary.md").read_text()
    assert "#### Plan" in summary and "🆕 missing" in summary and "```sql\nCREATE TABLE" in summary

    # The planned DDL is exactly what the run then executes.
    code, printed, _ = osiris(capsys, "run", pipeline, tmp_path / "run")
    assert code == 0, printed
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    executed = {e["step_id"]: e["sql"] for e in events if e["event"] == "table.ddl_executed"}
    assert executed == {"to-pg": pg["ddl"], "to-mysql": my["ddl"]}


def test_compatible_targets_show_the_rows_a_replace_deletes_and_the_upsert_key(
    tmp_path, mysql_db, pg_db, monkeypatch, capsys
):
    seed(mysql_db)
    mysql_execute(
        mysql_db,
        "CREATE TABLE totals (customer VARCHAR(50) PRIMARY KEY, orders BIGINT, total DECIMAL(12,2))",
        "INSERT INTO totals VALUES ('ada', 1, 1.00), ('zed', 2, 2.00)",
        "CREATE TABLE archive (customer TEXT, orders INT, total DOUBLE, loaded DATETIME DEFAULT NOW())",
        "INSERT INTO archive (customer) VALUES ('a'), ('b'), ('c'), ('d')",
    )
    pg_execute(
        pg_db,
        "CREATE TABLE totals (customer text PRIMARY KEY, orders bigint, total numeric(12,2), note text)",
        "INSERT INTO totals VALUES ('x', 1, 1, NULL), ('y', 2, 2, 'kept'), ('z', 3, 3, NULL)",
    )
    as_users(monkeypatch, "root", "", pg_db.pg_dsn)
    writers = PG_WRITER.format(id="to-pg", table="totals", mode="replace")
    writers += MYSQL_WRITER.format(id="to-mysql", table="totals", mode="upsert")
    writers += MYSQL_WRITER.format(id="to-archive", table="archive", mode="replace")
    pipeline = project(tmp_path, mysql_db, writers)
    before = snapshot(mysql_db, pg_db)

    code, printed, report = osiris(capsys, "plan", pipeline, tmp_path / "plan")
    assert code == 0, printed
    assert snapshot(mysql_db, pg_db) == before
    found = targets(report)
    assert {step: t["state"] for step, t in found.items()} == dict.fromkeys(found, "compatible")
    assert all(t["ddl"] is None and t["differences"] == [] for t in found.values())
    assert found["to-pg"]["effect"].startswith("delete every row, then insert")
    assert found["to-pg"]["effect"].endswith("in one transaction (replacing the 3 rows now in the table)")
    assert found["to-mysql"]["effect"] == (
        "insert new rows and update existing ones on (customer) in one transaction"
    )
    assert found["to-archive"]["effect"] == (
        "delete every row, then insert the incoming rows in one transaction "
        "(replacing the 4 rows now in the table)"
    )
    assert "public.totals is compatible; delete every row" in printed
    assert "(replacing the 3 rows now in the table)" in printed


def test_incompatible_targets_list_every_difference_and_fail(tmp_path, mysql_db, pg_db, monkeypatch, capsys):
    seed(mysql_db)
    mysql_execute(
        mysql_db,
        "CREATE TABLE totals (id INT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(50), orders DATE, "
        "region VARCHAR(8) NOT NULL, at DATETIME NOT NULL DEFAULT NOW())",
    )
    pg_execute(pg_db, "CREATE TABLE totals (customer text PRIMARY KEY, total date, region text NOT NULL)")
    as_users(monkeypatch, "root", "", pg_db.pg_dsn)
    writers = PG_WRITER.format(id="to-pg", table="totals", mode="append")
    writers += MYSQL_WRITER.format(id="to-mysql", table="totals", mode="upsert")
    pipeline = project(tmp_path, mysql_db, writers)
    before = snapshot(mysql_db, pg_db)

    code, printed, report = osiris(capsys, "plan", pipeline, tmp_path / "plan")
    assert code == 1, printed
    assert snapshot(mysql_db, pg_db) == before
    assert report["status"] == "failure"
    found = targets(report)
    assert found["to-pg"]["state"] == found["to-mysql"]["state"] == "incompatible"
    assert found["to-pg"]["differences"] == [
        "not in the table: orders",
        "incompatible types: total (decimal128(38, 2) into date)",
        "NOT NULL columns without a default missing from the data: region",
    ]
    assert found["to-mysql"]["differences"] == [
        "not in the table: total",
        "incompatible types: orders (int64 into date)",
        "NOT NULL columns without a default missing from the data: region",
    ]
    assert "public.totals is incompatible" in printed and "not in the table: total" in printed


def test_mysql_upsert_without_a_unique_key_on_the_keys_is_incompatible(
    tmp_path, mysql_db, pg_db, monkeypatch, capsys
):
    seed(mysql_db)
    mysql_execute(mysql_db, "CREATE TABLE totals (customer VARCHAR(50), orders BIGINT, total DECIMAL(12,2))")
    as_users(monkeypatch, "root", "", pg_db.pg_dsn)
    pipeline = project(tmp_path, mysql_db, MYSQL_WRITER.format(id="to-mysql", table="totals", mode="upsert"))
    code, printed, report = osiris(capsys, "plan", pipeline, tmp_path / "plan")
    assert code == 1, printed
    (difference,) = targets(report)["to-mysql"]["differences"]
    assert "no PRIMARY KEY or UNIQUE index on exactly (customer)" in difference


@pytest.fixture
def mysql_reader(mysql_db: Database):
    """A MariaDB user that may only SELECT, and only in the test's database."""
    user, password = f"ro_{uuid.uuid4().hex[:8]}", f"ro-{uuid.uuid4().hex}"
    hosts = ("localhost", "127.0.0.1", "%")
    mysql_execute(
        mysql_db,
        *[f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'" for host in hosts],
        *[f"GRANT SELECT ON `{mysql_db.database}`.* TO '{user}'@'{host}'" for host in hosts],
    )
    try:
        yield user, password
    finally:
        mysql_execute(mysql_db, *[f"DROP USER IF EXISTS '{user}'@'{host}'" for host in hosts])


@pytest.fixture
def pg_reader(pg_db: Database):
    """A Postgres role with CONNECT, USAGE on public and SELECT on its tables, and nothing else: no
    CREATE in any schema, no TEMP tables."""
    role = f"ro_{uuid.uuid4().hex[:8]}"
    pg_execute(
        pg_db,
        f'CREATE ROLE "{role}" LOGIN',
        f'REVOKE ALL ON DATABASE "{pg_db.database}" FROM PUBLIC',
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        f'GRANT CONNECT ON DATABASE "{pg_db.database}" TO "{role}"',
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{role}"',
    )
    try:
        yield role
    finally:
        pg_execute(pg_db, f'DROP OWNED BY "{role}"')
        pg_execute(Database(**{**pg_db.__dict__, "database": "postgres"}), f'DROP ROLE IF EXISTS "{role}"')


def test_plan_needs_read_access_only(tmp_path, mysql_db, pg_db, mysql_reader, pg_reader, monkeypatch, capsys):
    seed(mysql_db)
    mysql_execute(
        mysql_db,
        "CREATE TABLE totals (customer VARCHAR(50) PRIMARY KEY, orders BIGINT, total DECIMAL(12,2))",
        "INSERT INTO totals VALUES ('ada', 1, 1.00)",
    )
    pg_execute(
        pg_db,
        "CREATE TABLE totals (customer text PRIMARY KEY, orders bigint, total numeric(12,2))",
        "INSERT INTO totals VALUES ('x', 1, 1), ('y', 2, 2)",
    )
    user, password = mysql_reader
    reader_dsn = f"postgresql://{pg_reader}@{pg_db.host}:{pg_db.port}/{pg_db.database}"
    as_users(monkeypatch, user, password, reader_dsn)
    writers = PG_WRITER.format(id="to-pg", table="totals", mode="replace")
    writers += PG_WRITER.format(id="to-pg-new", table="fresh", mode="append")
    writers += MYSQL_WRITER.format(id="to-mysql", table="totals", mode="upsert")
    writers += MYSQL_WRITER.format(id="to-mysql-new", table="fresh", mode="append")
    pipeline = project(tmp_path, mysql_db, writers, password="${MYSQL_PASSWORD}")
    before = snapshot(mysql_db, pg_db)

    code, printed, report = osiris(capsys, "plan", pipeline, tmp_path / "plan")
    assert code == 0, printed
    assert snapshot(mysql_db, pg_db) == before
    states = {step: t["state"] for step, t in targets(report).items()}
    assert states == {
        "to-pg": "compatible",
        "to-pg-new": "missing",
        "to-mysql": "compatible",
        "to-mysql-new": "missing",
    }
    assert targets(report)["to-pg"]["effect"].endswith("(replacing the 2 rows now in the table)")

    # The users really are read-only: the same writes the plan describes are refused.
    with pytest.raises(pymysql.err.OperationalError, match="INSERT command denied"):
        conn = pymysql.connect(**{**MYSQL, "user": user, "password": password}, database=mysql_db.database)
        with conn, conn.cursor() as cursor:
            cursor.execute("INSERT INTO totals VALUES ('bob', 2, 2.00)")
    import psycopg

    for sql in ("CREATE TABLE fresh (customer text)", "INSERT INTO totals VALUES ('z', 3, 3)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), psycopg.connect(reader_dsn) as conn:
            conn.execute(sql)
    assert snapshot(mysql_db, pg_db) == before


def _context(tmp_path: Path, connection: dict | None = None) -> StepContext:
    """A driver's context outside the worker; `ctx.results` keeps the last event of each name."""
    return StepContext("step", connection, tmp_path, tmp_path)


def test_the_extractor_plan_runs_the_query_with_limit_0(tmp_path, mysql_db):
    """Every row of the query sleeps one second: a plan that fetched the five rows would take five."""
    seed(mysql_db)
    ctx = _context(tmp_path, mysql_db.connection)
    step = {"id": "x", "config": {"query": "SELECT id, customer, SLEEP(1) AS slept FROM orders"}}
    started = time.perf_counter()
    table = plan_extract(step, {}, ctx)
    assert time.perf_counter() - started < 1.0
    assert table.num_rows == 0 and table.schema.names == ["id", "customer", "slept"]
    assert ctx.results["extract.planned"]["check"] == "LIMIT 0"
    assert ctx.results["extract.planned"]["rows_fetched"] == 0


@pytest.mark.parametrize(
    ("query", "server_says"),
    [
        ("SELECT nope FROM orders", "Unknown column 'nope' in "),
        ("SELECT id FROM ordres", "Table '{db}.ordres' doesn't exist (error 1146)"),
        ("SELEC id FROM orders", "You have an error in your SQL syntax"),
    ],
)
def test_a_bad_query_fails_the_plan_with_the_servers_message(tmp_path, mysql_db, query, server_says):
    seed(mysql_db)
    with pytest.raises(StepError) as failure:
        plan_extract({"id": "x", "config": {"query": query}}, {}, _context(tmp_path, mysql_db.connection))
    assert server_says.format(db=mysql_db.database) in failure.value.message


def test_a_bad_query_fails_the_plan_command(tmp_path, mysql_db, pg_db, monkeypatch, capsys):
    seed(mysql_db)
    as_users(monkeypatch, "root", "", pg_db.pg_dsn)
    writers = PG_WRITER.format(id="to-pg", table="totals", mode="append")
    pipeline = project(
        tmp_path, mysql_db, writers, query="SELECT id, customer, amount FROM orders WHERE nope"
    )
    code, printed, report = osiris(capsys, "plan", pipeline, tmp_path / "plan")
    assert code == 1
    assert "Unknown column 'nope'" in printed and "(error 1054)" in printed
    assert [s["status"] for s in report["steps"]] == ["failed", "skipped", "skipped"]


def test_the_csv_writer_plan_compares_the_header_and_counts_the_rows(tmp_path):
    import pyarrow as pa

    data = pa.table({"country": pa.array([], pa.string()), "revenue": pa.array([], pa.float64())})
    config = {"path": "out/revenue.csv", "header": True, "delimiter": ",", "encoding": "utf-8"}
    config["create_dirs"] = True

    def planned() -> dict:
        ctx = _context(tmp_path)
        plan_csv({"id": "w", "config": config}, {"input_df": data}, ctx)
        return ctx.results["plan.target"]

    missing = planned()
    assert (missing["state"], missing["table"]) == ("missing", "out/revenue.csv")
    assert not (tmp_path / "out").exists(), "a plan creates no folder"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "revenue.csv").write_text('country,revenue\nDE,1.5\n"multi\nline",2\nFR,3\n')
    compatible = planned()
    assert compatible["state"] == "compatible"
    assert compatible["effect"] == "replace the file (its 3 rows) with the incoming rows, in one rename"
    (tmp_path / "out" / "revenue.csv").write_text("country,total\nDE,1.5\n")
    incompatible = planned()
    assert incompatible["state"] == "incompatible"
    assert incompatible["differences"] == [
        "the file's columns are country, total; the data's are country, revenue"
    ]
    assert (tmp_path / "out" / "revenue.csv").read_text() == "country,total\nDE,1.5\n"
