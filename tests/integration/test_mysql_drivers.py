"""mysql.extractor and mysql.writer against the real local MariaDB: exact types, errors, write modes."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pymysql
import pytest
from osiris_drivers._common import StepContext, StepError, reader
from osiris_drivers._mysql_send import Sender
from osiris_drivers.mysql_extractor import run as extract
from osiris_drivers.mysql_writer import run as write

from tests.conftest import MYSQL, mysql_execute

pytestmark = pytest.mark.db

EVERY_TYPE = """
CREATE TABLE every_type (
  id INT PRIMARY KEY,
  big BIGINT, big_u BIGINT UNSIGNED, int_u INT UNSIGNED, small_u SMALLINT UNSIGNED, tiny_u TINYINT UNSIGNED,
  medium MEDIUMINT, tiny TINYINT,
  money DECIMAL(12,2), wide DECIMAL(38,10),
  happened DATETIME(6), stamped TIMESTAMP(6) NULL, day DATE, clock TIME(6),
  flag TINYINT(1), yes BOOLEAN,
  doc JSON, blob_col BLOB, bin4 BINARY(4), varbin VARBINARY(16),
  note TEXT, label VARCHAR(40), ratio DOUBLE, ratio32 FLOAT
)"""
EVERY_ROW = (
    "INSERT INTO every_type VALUES (1, 9007199254740993, 18446744073709551615, 4294967295, 65535, 255, "
    "-8388608, -128, 1234567890.12, 1234567890123456789012345678.0123456789, "
    "'2024-02-29 23:59:58.123456', '2024-06-01 12:00:00.654321', '2024-02-29', '23:59:58.999999', "
    "1, 0, '{\"a\": [1, 2.5, \"é😀\"], \"b\": null}', X'00FF80FEC328', X'DEADBEEF', X'C0AF', "
    "'emoji 😀🎉 and ünïcödé', 'héllo', 2.25, 1.5)"
)
EVERY_TYPE_SCHEMA = {
    "id": pa.int32(),
    "big": pa.int64(),
    "big_u": pa.uint64(),
    "int_u": pa.uint32(),
    "small_u": pa.uint16(),
    "tiny_u": pa.uint8(),
    "medium": pa.int32(),
    "tiny": pa.int8(),
    "money": pa.decimal128(12, 2),
    "wide": pa.decimal128(38, 10),
    "happened": pa.timestamp("us"),
    "stamped": pa.timestamp("us", tz="UTC"),
    "day": pa.date32(),
    "clock": pa.time64("us"),
    "flag": pa.bool_(),
    "yes": pa.bool_(),
    "doc": pa.json_(pa.string()),
    "blob_col": pa.binary(),
    "bin4": pa.binary(),
    "varbin": pa.binary(),
    "note": pa.string(),
    "label": pa.string(),
    "ratio": pa.float64(),
    "ratio32": pa.float32(),
}
EVERY_VALUES = {
    "id": 1,
    "big": 9007199254740993,
    "big_u": 18446744073709551615,
    "int_u": 4294967295,
    "small_u": 65535,
    "tiny_u": 255,
    "medium": -8388608,
    "tiny": -128,
    "money": Decimal("1234567890.12"),
    "wide": Decimal("1234567890123456789012345678.0123456789"),
    "happened": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
    "stamped": dt.datetime(2024, 6, 1, 12, 0, 0, 654321, tzinfo=dt.UTC),
    "day": dt.date(2024, 2, 29),
    "clock": dt.time(23, 59, 58, 999999),
    "flag": True,
    "yes": False,
    "doc": '{"a": [1, 2.5, "é😀"], "b": null}',
    "blob_col": b"\x00\xff\x80\xfe\xc3\x28",
    "bin4": b"\xde\xad\xbe\xef",
    "varbin": b"\xc0\xaf",
    "note": "emoji 😀🎉 and ünïcödé",
    "label": "héllo",
    "ratio": 2.25,
    "ratio32": 1.5,
}
# Strings and bytes that break naive CSV or LOAD DATA handling.
AWKWARD_TEXT = ["plain", "", None, "NULL", "\\N", "q\"uo'te", "back\\slash", "new\nline\r\n", "a,b;\t", "😀"]
AWKWARD_BYTES = [bytes(range(256)), b"", None, b"NULL", b"\\N", b'"', b",\n", b"\\", b"\x00", b"\xff\xfe"]


def _ctx(connection: dict, tmp_path: Path, plan_only: bool = False) -> tuple[StepContext, list]:
    events: list = []
    ctx = StepContext(
        step_id="step",
        connection=connection,
        artifacts_dir=tmp_path,
        base_dir=tmp_path,
        emit=lambda event, **fields: events.append((event, fields)),
        plan_only=plan_only,
    )
    return ctx, events


def _extract(connection: dict, tmp_path: Path, **config) -> tuple[pa.Table, list]:
    ctx, events = _ctx(connection, tmp_path)
    config = {"offset": 0, "batch_size": 10000, **config}
    step = {"id": "extract", "component": "mysql.extractor", "mode": "extract", "config": config}
    return reader(extract(step, {}, ctx)).read_all(), events


def _write(connection: dict, tmp_path: Path, data: pa.Table, plan_only=False, **config) -> list:
    ctx, events = _ctx(connection, tmp_path, plan_only)
    defaults = {"mode": "append", "batch_size": 1000, "create_table": False, "truncate_before": False}
    step = {"id": "load", "component": "mysql.writer", "mode": "write", "config": {**defaults, **config}}
    assert write(step, {"df_extract": data}, ctx) is None
    return events


def _complete(events: list) -> dict:
    return [fields for event, fields in events if event == "write.complete"][-1]


def _rows(db, sql: str) -> list:
    return [tuple(row) for row in mysql_execute(db, sql)]


# ---------------------------------------------------------------------------------------------------------
# extractor: types


def test_every_type_is_read_exactly_with_nulls(mysql_db, tmp_path):
    mysql_execute(mysql_db, EVERY_TYPE, EVERY_ROW, "INSERT INTO every_type (id) VALUES (2)")

    table, events = _extract(mysql_db.connection, tmp_path, table="every_type")

    assert {field.name: field.type for field in table.schema} == EVERY_TYPE_SCHEMA
    assert table.schema.field("doc").metadata == {b"osiris.type": b"json"}
    assert table.schema.field("note").metadata is None
    first, nulls = table.to_pylist()
    assert first == EVERY_VALUES
    assert nulls == {name: (2 if name == "id" else None) for name in EVERY_TYPE_SCHEMA}
    assert events == [
        ("extract.complete", {"rows": 2, "columns": 24, "reader": "connectorx", "read_as_text": ["wide"]})
    ]


def test_query_keeps_its_order_and_reads_wide_decimals_exactly(mysql_db, tmp_path):
    mysql_execute(
        mysql_db,
        "CREATE TABLE d (id INT PRIMARY KEY, wide DECIMAL(38,10), fine DECIMAL(20,15), huge DECIMAL(65,30), "
        "doc JSON)",
        "INSERT INTO d VALUES (1, 1234567890123456789012345678.0123456789, 12345.123456789012345, "
        "-12345678901234567890123456789012345.123456789012345678901234567891, '[1]'), "
        "(2, -0.0000000001, 0.000000000000001, 0, NULL), (3, NULL, NULL, NULL, '{}')",
    )

    table, events = _extract(mysql_db.connection, tmp_path, query="SELECT * FROM d ORDER BY id DESC;")

    assert table.schema.field("wide").type == pa.decimal128(38, 10)
    assert table.schema.field("fine").type == pa.decimal128(20, 15)
    assert table.schema.field("huge").type == pa.decimal256(65, 30)
    assert table.schema.field("doc").metadata == {b"osiris.type": b"json"}
    assert table.column("id").to_pylist() == [3, 2, 1]
    assert table.column("wide").to_pylist() == [
        None,
        Decimal("-0.0000000001"),
        Decimal("1234567890123456789012345678.0123456789"),
    ]
    assert table.column("fine").to_pylist()[1:] == [Decimal("1E-15"), Decimal("12345.123456789012345")]
    assert table.column("huge").to_pylist()[2] == Decimal(
        "-12345678901234567890123456789012345.123456789012345678901234567891"
    )
    # connectorx would round these (scale 15) or fail (38 digits): they travel as text, cast exactly
    assert events[-1][1]["reader"] == "connectorx"
    assert events[-1][1]["read_as_text"] == ["wide", "fine", "huge"]

    table, events = _extract(mysql_db.connection, tmp_path, table="d")
    assert table.column("wide").to_pylist()[0] == Decimal("1234567890123456789012345678.0123456789")
    assert events[-1][1]["reader"] == "connectorx"


def test_query_types_match_table_types(mysql_db, tmp_path):
    mysql_execute(mysql_db, EVERY_TYPE, EVERY_ROW, "INSERT INTO every_type (id) VALUES (2)")

    by_query, events = _extract(
        mysql_db.connection, tmp_path, query="SELECT * FROM every_type WHERE id >= 1 ORDER BY id"
    )
    by_table, _ = _extract(mysql_db.connection, tmp_path, table="every_type")

    assert by_query.equals(by_table, check_metadata=True)
    assert events[-1][1]["read_as_text"] == ["wide"]  # the DECIMAL(38,10) column travels as text
    narrow, events = _extract(mysql_db.connection, tmp_path, query="SELECT id, money, doc FROM every_type")
    assert events[-1][1]["reader"] == "connectorx"
    assert narrow.schema.field("doc").metadata == {b"osiris.type": b"json"}
    assert narrow.column("money").to_pylist() == [Decimal("1234567890.12"), None]


def test_columns_connectorx_cannot_read(mysql_db, tmp_path):
    mysql_execute(mysql_db, "CREATE TABLE g (id INT, pt POINT)", "INSERT INTO g VALUES (1, POINT(1, 2))")

    table, events = _extract(mysql_db.connection, tmp_path, query="SELECT NULL AS nothing, id FROM g")
    assert table.schema.field("nothing").type == pa.null() and events[-1][1]["read_as_text"] == ["nothing"]
    assert table.to_pylist() == [{"nothing": None, "id": 1}]

    table, _ = _extract(mysql_db.connection, tmp_path, table="g")
    point_1_2 = bytes.fromhex("0101000000000000000000f03f0000000000000040")  # WKB, little-endian
    assert table.column("pt").to_pylist() == [point_1_2]


def test_empty_result_keeps_the_column_types(mysql_db, tmp_path):
    mysql_execute(mysql_db, EVERY_TYPE)
    table, _ = _extract(mysql_db.connection, tmp_path, query="SELECT * FROM every_type WHERE id < 0")
    assert table.num_rows == 0
    assert {field.name: field.type for field in table.schema} == EVERY_TYPE_SCHEMA


def test_table_columns_limit_and_offset(mysql_db, tmp_path):
    mysql_execute(
        mysql_db,
        "CREATE TABLE `odd name` (id INT PRIMARY KEY, `the value` VARCHAR(10), other INT, KEY (`the value`))",
        "INSERT INTO `odd name` SELECT seq, CHAR(ASCII('z') - seq), seq * 10 FROM seq_1_to_10",
    )
    config = {"table": "odd name", "columns": ["id", "the value"], "schema": mysql_db.database}

    page, _ = _extract(mysql_db.connection, tmp_path, **config, limit=3, offset=2)
    assert page.column_names == ["id", "the value"]
    assert page.column("id").to_pylist() == [3, 4, 5]  # primary-key order, not the secondary index's
    rest, _ = _extract(mysql_db.connection, tmp_path, **config, offset=8)
    assert rest.column("id").to_pylist() == [9, 10]
    first, _ = _extract(mysql_db.connection, tmp_path, table="odd name", limit=1)
    assert first.to_pylist() == [{"id": 1, "the value": "y", "other": 10}]


def test_query_and_table_options_together_are_refused(mysql_db, tmp_path):
    with pytest.raises(StepError, match="got both `query` and `limit`"):
        _extract(mysql_db.connection, tmp_path, query="SELECT 1 AS x", limit=5)


def test_duplicate_column_names_are_refused(mysql_db, tmp_path):
    mysql_execute(mysql_db, "CREATE TABLE a (id INT)", "CREATE TABLE b (id INT)")
    with pytest.raises(StepError, match="more than one column named 'id'") as caught:
        _extract(mysql_db.connection, tmp_path, query="SELECT a.id, b.id FROM a JOIN b")
    assert "AS" in caught.value.hint


def test_values_arrow_cannot_hold_are_clear_errors(mysql_db, tmp_path):
    mysql_execute(
        mysql_db,
        "CREATE TABLE odd (id INT, span TIME, flag TINYINT(1))",
        "INSERT INTO odd VALUES (1, '838:59:59', 1)",
    )
    with pytest.raises(StepError, match="TIME value 838:59:59") as caught:
        _extract(mysql_db.connection, tmp_path, table="odd")
    assert "TIME_TO_SEC" in caught.value.hint
    mysql_execute(mysql_db, "UPDATE odd SET span = '01:00:00', flag = 2")
    with pytest.raises(StepError, match=r"'flag' is TINYINT\(1\).*other than 0 and 1"):
        _extract(mysql_db.connection, tmp_path, table="odd")


# ---------------------------------------------------------------------------------------------------------
# connection and errors


@pytest.fixture
def special_user(mysql_db):
    """A user whose password holds every character that breaks an unescaped URL."""
    user, password = f"osiris_{uuid.uuid4().hex[:8]}", "p@ss:w/rd%#?x&=+ é"
    admin = pymysql.connect(**MYSQL, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cursor.execute(f"GRANT ALL ON `{mysql_db.database}`.* TO %s@'%%'", (user,))
    try:
        yield {**mysql_db.connection, "user": user, "password": password}
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        admin.close()


def test_password_with_url_special_characters(mysql_db, special_user, tmp_path):
    data = pa.table({"id": [1, 2], "name": ["a", "b"]})
    events = _write(special_user, tmp_path, data, table="people", create_table=True, upsert_keys=["id"])
    assert _complete(events)["rows_written"] == 2

    table, _ = _extract(special_user, tmp_path, query="SELECT id, name, CURRENT_USER() AS who FROM people")
    assert table.column("name").to_pylist() == ["a", "b"]
    assert table.column("who")[0].as_py().startswith(special_user["user"] + "@")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"port": 1}, r"Cannot connect to MySQL at 127\.0\.0\.1:1: connection refused"),
        (
            {"host": "no-such-host.invalid"},
            r"Cannot connect to MySQL at no-such-host\.invalid:3306: the host name cannot be resolved",
        ),
        ({"password": "Wr0ng-S3cret@pw"}, r"MySQL at 127\.0\.0\.1:3306 denied access to user 'root'"),
        ({"database": "osiris_no_such_db"}, r"Database 'osiris_no_such_db' does not exist on MySQL at 127"),
    ],
    ids=["port-closed", "unresolvable-host", "wrong-password", "unknown-database"],
)
def test_connection_errors_are_clear_and_quick(mysql_db, tmp_path, change, expected):
    connection = {**mysql_db.connection, **change}
    started = time.monotonic()
    with pytest.raises(StepError, match=expected) as caught:
        _extract(connection, tmp_path, table="anything")
    assert time.monotonic() - started < 5  # connectorx alone would retry for 30 s
    assert caught.value.hint
    assert "Wr0ng-S3cret" not in f"{caught.value.message} {caught.value.hint} {caught.value!r}"

    with pytest.raises(StepError, match=expected) as caught:
        _write(connection, tmp_path, pa.table({"id": [1]}), table="anything")
    assert "Wr0ng-S3cret" not in f"{caught.value.message} {caught.value.hint}"


def test_a_silent_server_times_out_with_the_host_named(mysql_db, tmp_path):
    """A port that accepts connections but never speaks: read_timeout bounds the wait."""
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        connection = {**mysql_db.connection, "port": port, "read_timeout": 1, "connect_timeout": 1}
        started = time.monotonic()
        with pytest.raises(StepError, match=rf"Cannot connect to MySQL at 127\.0\.0\.1:{port}: .*timed out"):
            _extract(connection, tmp_path, table="anything")
        assert time.monotonic() - started < 5
    finally:
        silent.close()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"table": "missing"},
            r"reading table `osiris_t_\w+`\.`missing`: Table '\w+\.missing' doesn't exist",
        ),
        ({"query": "SELECT nope FROM t"}, r"running the query: Unknown column 'nope'"),
        ({"query": "SELECT * FROM missing"}, r"Table '\w+\.missing' doesn't exist \(error 1146\)"),
        ({"query": "SELEC 1"}, r"error in your SQL syntax.*near 'SELEC 1' at line 1 \(error 1064\)"),
        ({"query": "SHOW TABLES"}, r"valid SQL for MySQL at 127.0.0.1:3306 but does not return a table"),
        ({"table": "t", "columns": ["id", "nope"]}, r"Unknown column 'nope'"),
    ],
    ids=[
        "unknown-table",
        "unknown-column",
        "unknown-table-in-query",
        "syntax",
        "show",
        "unknown-column-in-columns",
    ],
)
def test_sql_errors_carry_the_servers_message(mysql_db, tmp_path, config, expected):
    mysql_execute(mysql_db, "CREATE TABLE t (id INT)")
    with pytest.raises(StepError, match=expected) as caught:
        _extract(mysql_db.connection, tmp_path, **config)
    assert "127.0.0.1:3306" in caught.value.message
    assert "osiris_probe" not in caught.value.message


def test_modules_import_without_heavy_libraries():
    code = "import osiris_drivers.mysql_extractor, osiris_drivers.mysql_writer"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()[1:]}
    assert not imported & {"pyarrow", "pymysql", "connectorx", "duckdb", "psycopg", "adbc_driver_postgresql"}


# ---------------------------------------------------------------------------------------------------------
# writer


def test_create_table_maps_every_type_and_round_trips(mysql_db, tmp_path):
    mysql_execute(mysql_db, EVERY_TYPE, EVERY_ROW, "INSERT INTO every_type (id) VALUES (2)")
    source, _ = _extract(mysql_db.connection, tmp_path, table="every_type")

    events = _write(
        mysql_db.connection, tmp_path, source, table="copy", create_table=True, upsert_keys=["id"]
    )

    planned, executed = (fields for event, fields in events if event.startswith("table.ddl"))
    assert [event for event, _ in events] == ["table.ddl_planned", "table.ddl_executed", "write.complete"]
    assert planned["sql"] == executed["sql"] and executed["executed"] is True and planned["executed"] is False
    assert (tmp_path / "ddl.sql").read_text() == planned["sql"] + ";\n"
    assert planned["sql"].startswith(f"CREATE TABLE `{mysql_db.database}`.`copy` (\n  `id` INT NOT NULL,")
    assert "PRIMARY KEY (`id`)" in planned["sql"]
    columns = dict(
        _rows(
            mysql_db,
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = '{mysql_db.database}' AND TABLE_NAME = 'copy'",
        )
    )
    assert columns == {
        **columns,
        "big": "bigint(20)",
        "big_u": "bigint(20) unsigned",
        "money": "decimal(12,2)",
        "wide": "decimal(38,10)",
        "happened": "datetime(6)",
        "stamped": "datetime(6)",
        "day": "date",
        "clock": "time(6)",
        "flag": "tinyint(1)",
        "doc": "longtext",  # MariaDB's JSON is LONGTEXT with a json_valid() check
        "blob_col": "longblob",
        "note": "longtext",
    }
    assert _complete(events) == {
        "table": "copy",
        "schema": mysql_db.database,
        "mode": "append",
        "rows_in": 2,
        "rows_written": 2,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "channel_used": "pymysql_load_data",
        "method": "load_data",
    }
    back, _ = _extract(mysql_db.connection, tmp_path, table="copy")
    # TIMESTAMP comes back from DATETIME(6) as the same UTC wall time, without the zone
    assert back.column("stamped").to_pylist()[0] == EVERY_VALUES["stamped"].replace(tzinfo=None)
    assert back.drop_columns(["stamped"]).equals(source.drop_columns(["stamped"]), check_metadata=True)


def test_awkward_text_and_bytes_survive_the_bulk_path(mysql_db, tmp_path):
    data = pa.table(
        {"id": range(10), "text": AWKWARD_TEXT, "raw": pa.array(AWKWARD_BYTES, pa.binary())},
        schema=pa.schema([("id", pa.int64()), ("text", pa.string()), ("raw", pa.binary())]),
    )
    _write(mysql_db.connection, tmp_path, data, table="awkward", create_table=True, upsert_keys=["id"])
    back, _ = _extract(mysql_db.connection, tmp_path, query="SELECT * FROM awkward ORDER BY id")
    assert back.to_pylist() == data.to_pylist()
    assert _rows(mysql_db, "SELECT COUNT(*) FROM awkward WHERE text IS NULL AND raw IS NULL") == [(1,)]


def test_missing_table_without_create_table_is_a_clear_error(mysql_db, tmp_path):
    with pytest.raises(StepError, match=r"Table `osiris_t_\w+`\.`nowhere` does not exist") as caught:
        _write(mysql_db.connection, tmp_path, pa.table({"id": [1]}), table="nowhere")
    assert "create_table: true" in caught.value.hint


def test_unknown_input_columns_are_named(mysql_db, tmp_path):
    mysql_execute(mysql_db, "CREATE TABLE t (id INT)")
    with pytest.raises(StepError, match=r"has no column 'extra'; its columns are id"):
        _write(mysql_db.connection, tmp_path, pa.table({"id": [1], "extra": [2]}), table="t")


def test_append_and_truncate_before(mysql_db, tmp_path):
    mysql_execute(
        mysql_db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO t VALUES (1,'a')"
    )
    events = _write(mysql_db.connection, tmp_path, pa.table({"id": [2, 3], "v": ["b", None]}), table="t")
    assert _complete(events)["rows_written"] == 2
    assert _rows(mysql_db, "SELECT * FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, None)]

    events = _write(mysql_db.connection, tmp_path, pa.table({"id": [9]}), table="t", truncate_before=True)
    assert _complete(events)["rows_deleted"] == 3
    assert _rows(mysql_db, "SELECT * FROM t") == [(9, None)]


def test_failed_append_leaves_the_table_as_it_was(mysql_db, tmp_path):
    mysql_execute(
        mysql_db,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO t SELECT seq, 'old' FROM seq_1_to_3",
    )
    ids = [*range(4, 5004), 2]  # the duplicate key comes last
    data = pa.table({"id": pa.array(ids, pa.int32()), "v": ["new"] * len(ids)})
    with pytest.raises(StepError, match=r"Duplicate entry '2' for key 'PRIMARY'") as caught:
        _write(mysql_db.connection, tmp_path, data, table="t")
    assert "Nothing was written" in caught.value.hint
    assert _rows(mysql_db, "SELECT COUNT(*), MAX(id), MIN(v) FROM t") == [(3, 3, "old")]

    with pytest.raises(StepError, match=r"Data truncated for column 'v'|Data too long"):
        _write(
            mysql_db.connection, tmp_path, pa.table({"id": [7, 8], "v": ["ok", "far too long"]}), table="t"
        )
    assert _rows(mysql_db, "SELECT COUNT(*) FROM t") == [(3,)]


def test_insert_fallback_writes_in_batches_and_rolls_back(mysql_db):
    """The path for servers with local_infile off: multi-row INSERTs inside the caller's transaction."""
    mysql_execute(mysql_db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40), raw BLOB, at DATETIME(6))")
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    data = pa.table(
        {
            "id": pa.array(range(1, 2501), pa.int32()),
            "v": ["x%s😀"] * 2500,
            "raw": [b"\x00\xff"] * 2500,
            "at": pa.array([moment] * 2500, pa.timestamp("us", tz="UTC")),
        }
    )
    target = f"`{mysql_db.database}`.`t`"
    conn = pymysql.connect(**mysql_db.connection, charset="utf8mb4", init_command="SET time_zone='+00:00'")
    try:
        with conn.cursor() as cursor:
            sender = Sender(cursor, "insert", no_backslash_escapes=False)
            assert sender.send(target, reader(data)) == 2500
            conn.commit()
            failing = pa.table(
                {"id": pa.array([*range(3000, 4999), 7], pa.int32())}
            )  # duplicate in last batch
            with pytest.raises(pymysql.IntegrityError):
                sender.send(target, reader(failing))
            conn.rollback()
    finally:
        conn.close()
    assert _rows(mysql_db, "SELECT COUNT(*), MIN(v), MIN(raw), MIN(at) FROM t") == [
        (2500, "x%s😀", b"\x00\xff", moment.replace(tzinfo=None))
    ]


def test_replace_is_atomic(mysql_db, tmp_path):
    mysql_execute(
        mysql_db,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO t VALUES (1, 'old'), (2, 'old')",
    )
    events = _write(
        mysql_db.connection,
        tmp_path,
        pa.table({"id": [2, 5], "v": ["new", "new"]}),
        table="t",
        mode="replace",
    )
    assert _complete(events)["rows_written"] == 2 and _complete(events)["rows_deleted"] == 2
    assert _rows(mysql_db, "SELECT * FROM t ORDER BY id") == [(2, "new"), (5, "new")]

    broken = pa.table({"id": [7, 8, 7], "v": ["x", "y", "z"]})  # a repeated key fails after the DELETE
    with pytest.raises(StepError, match="Duplicate entry '7'"):
        _write(mysql_db.connection, tmp_path, broken, table="t", mode="replace")
    assert _rows(mysql_db, "SELECT * FROM t ORDER BY id") == [(2, "new"), (5, "new")]


def test_upsert_on_composite_keys(mysql_db, tmp_path):
    mysql_execute(
        mysql_db,
        "CREATE TABLE t (region CHAR(2), id INT, amount DECIMAL(12,2), note VARCHAR(20), "
        "PRIMARY KEY (region, id))",
        "INSERT INTO t VALUES ('eu', 1, 1.00, 'keep'), ('us', 1, 2.00, 'keep'), ('eu', 2, 3.00, 'keep')",
    )
    data = pa.table(
        {
            "region": ["eu", "us", "us"],
            "id": [1, 1, 2],
            "amount": pa.array(
                [Decimal("10.50"), Decimal("2.00"), Decimal("99999999.99")], pa.decimal128(12, 2)
            ),
        }
    )
    events = _write(
        mysql_db.connection, tmp_path, data, table="t", mode="upsert", upsert_keys=["region", "id"]
    )

    done = _complete(events)
    # measured by the server: ('us', 1) arrives as it is, so it is neither written nor updated
    counts = [done[k] for k in ("rows_in", "rows_written", "inserted", "updated", "unchanged")]
    assert counts == [3, 2, 1, 1, 1]
    assert _rows(mysql_db, "SELECT region, id, amount, note FROM t ORDER BY region, id") == [
        ("eu", 1, Decimal("10.50"), "keep"),
        ("eu", 2, Decimal("3.00"), "keep"),
        ("us", 1, Decimal("2.00"), "keep"),
        ("us", 2, Decimal("99999999.99"), None),
    ]

    repeated = pa.table({"region": ["eu", "eu"], "id": [1, 1], "amount": [1, 2]})
    with pytest.raises(StepError, match="Duplicate entry"):
        _write(
            mysql_db.connection, tmp_path, repeated, table="t", mode="upsert", upsert_keys=["region", "id"]
        )
    assert _rows(mysql_db, "SELECT amount FROM t WHERE region = 'eu' AND id = 1") == [(Decimal("10.50"),)]


def test_upsert_needs_a_unique_key_on_exactly_those_columns(mysql_db, tmp_path):
    mysql_execute(mysql_db, "CREATE TABLE t (id INT PRIMARY KEY, code INT)")
    with pytest.raises(StepError, match=r"no PRIMARY KEY or UNIQUE index on exactly \(code\)") as caught:
        _write(
            mysql_db.connection,
            tmp_path,
            pa.table({"id": [1], "code": [2]}),
            table="t",
            mode="upsert",
            upsert_keys=["code"],
        )
    assert "ADD UNIQUE (`code`)" in caught.value.hint


def test_a_failed_write_drops_the_table_it_created(mysql_db, tmp_path):
    data = pa.table({"id": [1, 1]})
    with pytest.raises(StepError, match="Duplicate entry '1'"):
        _write(mysql_db.connection, tmp_path, data, table="fresh", create_table=True, upsert_keys=["id"])
    assert _rows(mysql_db, f"SHOW TABLES FROM `{mysql_db.database}` LIKE 'fresh'") == []


def test_plan_only_plans_the_ddl_and_writes_nothing(mysql_db, tmp_path):
    data = pa.table({"k": ["a"], "doc": pa.array(['{"x": 1}'])}).cast(
        pa.schema([("k", pa.string()), pa.field("doc", pa.string(), metadata={"osiris.type": "json"})])
    )
    events = _write(
        mysql_db.connection,
        tmp_path,
        data,
        plan_only=True,
        table="later",
        create_table=True,
        upsert_keys=["k"],
    )
    assert [event for event, _ in events] == ["table.ddl_planned", "write.complete"]
    assert "`k` VARCHAR(255) NOT NULL,\n  `doc` JSON,\n  PRIMARY KEY (`k`)" in events[0][1]["sql"]
    assert _complete(events)["rows_written"] == 0
    assert _rows(mysql_db, f"SHOW TABLES FROM `{mysql_db.database}`") == []


def test_sums_and_products_of_decimals_stay_on_connectorx_and_exact(mysql_db, tmp_path):
    """SUM(decimal), decimal * int and bare NULLs were once read row by row; they travel as text now."""
    mysql_execute(
        mysql_db,
        "CREATE TABLE m (id INT PRIMARY KEY, grp INT, amount DECIMAL(12,2), pt POINT)",
        "INSERT INTO m SELECT seq, seq % 3, seq + 0.01, POINT(seq, 2) FROM seq_1_to_2500",
    )
    query = (
        "SELECT grp, SUM(amount) AS total, MAX(amount) * 1000000000000 AS scaled, NULL AS nothing "
        "FROM m GROUP BY grp ORDER BY grp DESC"
    )
    table, events = _extract(mysql_db.connection, tmp_path, query=query)
    assert events[-1][1]["reader"] == "connectorx"
    assert set(events[-1][1]["read_as_text"]) == {"total", "scaled", "nothing"}
    expected = mysql_execute(mysql_db, query)
    assert [(r["grp"], r["total"], r["scaled"], r["nothing"]) for r in table.to_pylist()] == [
        tuple(row) for row in expected
    ]
    assert table.schema.field("nothing").type == pa.null()
    geometry, _ = _extract(mysql_db.connection, tmp_path, query="SELECT pt FROM m WHERE id = 1")
    assert geometry.column("pt").to_pylist() == [
        mysql_execute(mysql_db, "SELECT pt FROM m WHERE id = 1")[0][0]
    ]
