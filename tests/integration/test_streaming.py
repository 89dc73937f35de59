"""Steps stream into each other: whole pipelines on the real servers, and writers fed streams that fail.

Rows cross several batches here (batch_size 100), so every step really passes record batches on: a join
of two streamed inputs, a self-join (an input DuckDB reads twice), one extract read by two writers, and
a write whose last batch fails, which must leave the target exactly as it was.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from osiris_drivers import mysql_writer, supabase_writer
from osiris_drivers._common import StepContext, StepError

from tests.conftest import mysql_execute, pg_execute
from tests.integration.test_pipeline_runs import run_cli

pytestmark = pytest.mark.db

ROWS = 1_050  # eleven batches of 100 rows


def _project(tmp: Path, mysql_db, pg_db, steps: str) -> Path:
    (tmp / "osiris_connections.yaml").write_text(f"""
connections:
  mysql:
    src:
      host: {mysql_db.host}
      port: {mysql_db.port}
      database: {mysql_db.database}
      user: root
      password: ""
  supabase:
    staging:
      pg_dsn: ${{PG_DSN}}
""")
    pipeline = tmp / "p.yaml"
    pipeline.write_text(f'oml_version: "0.1.0"\nname: streaming\nsteps:\n{steps}')
    return pipeline


def _seed(mysql_db) -> None:
    mysql_execute(
        mysql_db,
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer INT, amount DECIMAL(38,10), note TEXT, "
        "day DATE)",
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40))",
        "INSERT INTO orders SELECT 9007199254740993 + seq, seq % 10, "
        "CAST(seq AS DECIMAL(38,10)) * 1000000000000000000 + 0.0000000001, "
        "IF(seq % 3 = 0, NULL, CONCAT('naïve ☃ ', seq)), DATE '2024-01-01' + INTERVAL seq DAY "
        f"FROM seq_1_to_{ROWS}",
        "INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_0_to_9",
    )


def _extract(step_id: str, table: str) -> str:
    return f"""  - id: {step_id}
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.src"
      table: {table}
      batch_size: 100
"""


def _pg_write(step_id: str, needs: str, table: str) -> str:
    return f"""  - id: {step_id}
    component: postgres.writer
    mode: write
    needs: [{needs}]
    config:
      connection: "@supabase.staging"
      table: {table}
      write_mode: replace
      primary_key: [id]
"""


def _run(pipeline: Path, out: Path, pg_db) -> dict:
    proc = run_cli(pipeline, out, {"PG_DSN": pg_db.pg_dsn})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((out / "report.json").read_text())


def test_join_of_two_streamed_inputs_and_a_self_join(tmp_path, mysql_db, pg_db):
    _seed(mysql_db)
    steps = (
        _extract("orders", "orders")
        + _extract("customers", "customers")
        + """  - id: joined
    component: duckdb.processor
    mode: transform
    needs: [orders, customers]
    config:
      query: >
        SELECT o.id, o.amount, o.note, o.day, c.name,
               (SELECT count(*) FROM df_orders p WHERE p.customer = o.customer) AS same_customer
        FROM df_orders o JOIN df_customers c ON c.id = o.customer
"""
        + _pg_write("load", "joined", "joined")
    )
    report = _run(_project(tmp_path, mysql_db, pg_db, steps), tmp_path / "out", pg_db)
    assert [(s["id"], s["rows_in"], s["rows_out"]) for s in report["steps"]] == [
        ("orders", 0, ROWS),
        ("customers", 0, 10),
        ("joined", ROWS + 10, ROWS),
        ("load", ROWS, ROWS),
    ]
    got = pg_execute(
        pg_db, "SELECT id, amount, note, day, name, same_customer FROM joined ORDER BY id LIMIT 3"
    )
    first = got[0]
    assert first[0] == 9007199254740994  # past 2^53, exact
    assert first[1] == Decimal("1000000000000000000.0000000001")
    assert first[2] == "naïve ☃ 1" and got[2][2] is None
    assert str(first[3]) == "2024-01-02" and first[4] == "customer 1" and first[5] == 105


def test_one_extract_read_by_two_writers_is_spilled_once(tmp_path, mysql_db, pg_db):
    _seed(mysql_db)
    steps = (
        _extract("orders", "orders")
        + _pg_write("to_pg", "orders", "orders_copy")
        + """  - id: to_mysql
    component: mysql.writer
    mode: write
    needs: [orders]
    config:
      connection: "@mysql.src"
      table: orders_copy
      mode: replace
      create_table: true
      upsert_keys: [id]
"""
    )
    report = _run(_project(tmp_path, mysql_db, pg_db, steps), tmp_path / "out", pg_db)
    steps_by_id = {s["id"]: s for s in report["steps"]}
    assert steps_by_id["to_pg"]["rows_out"] == steps_by_id["to_mysql"]["rows_out"] == ROWS
    assert steps_by_id["to_pg"]["fingerprint"] == steps_by_id["orders"]["fingerprint"]
    assert steps_by_id["to_mysql"]["fingerprint"] == steps_by_id["orders"]["fingerprint"]
    total = "SELECT count(*), sum(amount), count(note) FROM orders_copy"
    expected = mysql_execute(mysql_db, "SELECT count(*), sum(amount), count(note) FROM orders")[0]
    assert tuple(pg_execute(pg_db, total)[0]) == tuple(mysql_execute(mysql_db, total)[0]) == tuple(expected)
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert not any(e["event"] == "step_failed" for e in events)


# --- a write whose last batch fails ----------------------------------------------------------------------


def _failing_stream(batches: int, fail: str):
    """`batches` batches of 100 rows; the last one raises (upstream failure) or repeats a key (server)."""
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])

    def generate():
        for index in range(batches):
            ids = list(range(index * 100, index * 100 + 100))
            if index == batches - 1:
                if fail == "upstream":
                    raise StepError("the source broke", "test")
                ids[-1] = 0  # a key the first batch already sent
            yield pa.record_batch([pa.array(ids, pa.int64()), pa.array(["new"] * 100)], schema=schema)

    return pa.RecordBatchReader.from_batches(schema, generate())


def _ctx(tmp_path: Path, connection: dict) -> StepContext:
    return StepContext(step_id="load", connection=connection, artifacts_dir=tmp_path, base_dir=tmp_path)


@pytest.mark.parametrize("fail", ["upstream", "duplicate"])
@pytest.mark.parametrize("mode", ["replace", "append", "upsert"])
def test_postgres_write_failing_at_its_last_batch_changes_nothing(tmp_path, pg_db, fail, mode):
    pg_execute(
        pg_db,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)",
        "INSERT INTO t SELECT g, 'old' FROM generate_series(5000, 5009) g",
    )
    step = {
        "id": "load",
        "component": "postgres.writer",
        "mode": "write",
        "config": {"table": "t", "write_mode": mode, "primary_key": ["id"], "create_if_missing": True},
    }
    connection = {"pg_dsn": f"{pg_db.pg_dsn}?sslmode=disable"}
    with pytest.raises(StepError):
        supabase_writer.run(step, {"x": _failing_stream(5, fail)}, _ctx(tmp_path, connection))
    assert pg_execute(pg_db, "SELECT count(*), min(id), max(id), min(v) FROM t") == [(10, 5000, 5009, "old")]


@pytest.mark.parametrize("method", ["load_data", "insert"])
@pytest.mark.parametrize("fail", ["upstream", "duplicate"])
@pytest.mark.parametrize("mode", ["replace", "append", "upsert"])
def test_mysql_write_failing_at_its_last_batch_changes_nothing(tmp_path, mysql_db, fail, mode, method):
    mysql_execute(
        mysql_db,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO t SELECT seq, 'old' FROM seq_5000_to_5009",
    )
    step = {
        "id": "load",
        "component": "mysql.writer",
        "mode": "write",
        "config": {"table": "t", "mode": mode, "upsert_keys": ["id"], "batch_size": 1000},
    }
    connection = {**mysql_db.connection, "local_infile": method == "load_data"}
    if fail == "duplicate" and mode == "upsert":
        pytest.skip("an upsert takes a repeated key as an update: nothing fails")
    with pytest.raises(StepError):
        mysql_writer.run(step, {"x": _failing_stream(5, fail)}, _ctx(tmp_path, connection))
    assert mysql_execute(mysql_db, "SELECT count(*), min(id), max(id), min(v) FROM t") == [
        (10, 5000, 5009, "old")
    ]


@pytest.mark.parametrize("method", ["load_data", "insert"])
def test_mysql_writer_paths_write_the_same_exact_values(tmp_path, mysql_db, method):
    """The INSERT path (a connection with local_infile: false, as on servers that refuse LOAD DATA LOCAL)
    and the LOAD DATA path store the same values, binaries and quotes included, and say which ran."""
    mysql_execute(
        mysql_db,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, s TEXT, b BLOB, d DECIMAL(38,10), f DOUBLE, at DATETIME(6))",
    )
    data = pa.table(
        {
            "id": pa.array([2**53 + 1, 2, 3], pa.int64()),
            "s": ["it's a \\ back'slash", None, 'nul\x00 ☃ "q" , \n'],
            "b": pa.array([b"\x00'\\\xff", None, b""], pa.binary()),
            "d": pa.array(
                [Decimal("1234567890123456789012345678.0123456789"), None, Decimal("-0.5")],
                pa.decimal128(38, 10),
            ),
            "f": [0.1, None, -1.5e300],
            "at": pa.array([1_700_000_000_123_456, None, 0], pa.timestamp("us")),
        }
    )
    events: list = []
    ctx = _ctx(tmp_path, {**mysql_db.connection, "local_infile": method == "load_data"})
    ctx.emit = lambda event, **fields: events.append((event, fields))
    step = {
        "id": "load",
        "component": "mysql.writer",
        "mode": "write",
        "config": {"table": "t", "batch_size": 1000},
    }
    mysql_writer.run(step, {"x": data}, ctx)
    complete = next(fields for event, fields in events if event == "write.complete")
    assert complete["method"] == method and complete["rows_written"] == 3
    got = mysql_execute(mysql_db, "SELECT id, s, b, d, f, at FROM t ORDER BY id")
    assert [tuple(row) for row in got] == [
        (2, None, None, None, None, None),
        (3, 'nul\x00 ☃ "q" , \n', b"", Decimal("-0.5000000000"), -1.5e300, got[1][5]),
        (
            2**53 + 1,
            "it's a \\ back'slash",
            b"\x00'\\\xff",
            Decimal("1234567890123456789012345678.0123456789"),
            0.1,
            got[2][5],
        ),
    ]
    assert str(got[2][5]) == "2023-11-14 22:13:20.123456"
