"""The data diff engine (drivers/_diff.py) on the real Postgres and MariaDB.

Every case builds a base table and a new one by hand, with differences known exactly, and asserts the
exact numbers, the same on both servers.
"""

from __future__ import annotations

import json

import pytest
from osiris_drivers import _diff, _mysql, _postgres

from tests.conftest import mysql_execute, pg_execute

pytestmark = pytest.mark.db

TYPES = {
    "postgres": {"ts": "TIMESTAMP(0)", "text": "TEXT", "big": "BIGINT"},
    "mysql": {"ts": "DATETIME", "text": "VARCHAR(50)", "big": "BIGINT"},
}


class Server:
    """One cursor on a throwaway database, and the names the diff needs."""

    def __init__(self, dialect: str, db):
        self.dialect = dialect
        if dialect == "postgres":
            sql, _ = _postgres.channels({"pg_dsn": db.pg_dsn}, {})
            self.conn = _postgres.connect(sql)
            self.schema = "public"
            self.quote = _postgres.quote
        else:
            self.conn = _mysql.connect(_mysql.connection_params({}, db.connection), autocommit=True)
            self.schema = db.database
            self.quote = _mysql.quote_ident
        self.cur = self.conn.cursor()

    def run(self, *statements: str) -> None:
        for sql in statements:
            self.cur.execute(sql.format(**TYPES[self.dialect]))
        if self.dialect == "postgres":
            self.conn.commit()

    def table(self, name: str) -> str:
        return f"{self.quote(self.schema)}.{self.quote(name)}"

    def diff(self, base="base", new="new", key=None, mode="replace") -> dict:
        b = _diff.describe(self.cur, self.dialect, self.table(base), f"{self.schema}.{base}")
        n = _diff.describe(self.cur, self.dialect, self.table(new), f"{self.schema}.{new}")
        return _diff.compare(self.cur, self.dialect, b, n, key, mode)

    def close(self) -> None:
        self.cur.close()
        self.conn.close()


@pytest.fixture(params=["postgres", "mysql"])
def server(request):
    db = request.getfixturevalue("pg_db" if request.param == "postgres" else "mysql_db")
    s = Server(request.param, db)
    yield s
    s.close()


def counts(diff: dict) -> tuple:
    return tuple(diff[k] for k in ("rows_base", "rows_new", "added", "removed", "changed", "unchanged"))


KEYED = "CREATE TABLE {name} (id INT PRIMARY KEY, name {{text}}, amount DECIMAL(10,2), at {{ts}})"


def test_keyed_added_removed_changed_and_nulls(server):
    server.run(
        KEYED.format(name="base"),
        KEYED.format(name="new"),
        "INSERT INTO base VALUES (1, 'a', 1.50, '2024-01-01 10:00:00'), (2, 'b', 2.00, NULL), "
        "(3, NULL, 3.00, '2024-01-03 10:00:00'), (4, 'd', NULL, '2024-01-04 10:00:00'), "
        "(5, 'e', 5.00, '2024-01-05 10:00:00'), (7, 'g', 7.00, '2024-01-07 10:00:00')",
        # 1 the same; 2 NULL -> value (at); 3 NULL = NULL (name), the same; 4 value -> NULL (name);
        # 5 amount and at changed; 6 added; 7 removed
        "INSERT INTO new VALUES (1, 'a', 1.50, '2024-01-01 10:00:00'), "
        "(2, 'b', 2.00, '2024-01-02 10:00:00'), "
        "(3, NULL, 3.00, '2024-01-03 10:00:00'), (4, NULL, NULL, '2024-01-04 10:00:00'), "
        "(5, 'e', 5.25, '2024-01-05 11:00:00'), (6, 'f', 6.00, '2024-01-06 10:00:00')",
    )
    diff = server.diff()
    assert diff["key_columns"] == ["id"]
    assert counts(diff) == (6, 6, 1, 1, 3, 2)
    assert diff["columns"] == {"name": 1, "amount": 1, "at": 2}
    assert diff["schema_changes"] == []
    stats = diff["stats"]
    assert stats["amount"] == {
        "nulls": [1, 1],
        "sum": ["18.50", "17.75"],
        "min": ["1.50", "1.50"],
        "max": ["7.00", "6.00"],
    }
    assert stats["name"] == {"nulls": [1, 2]}
    assert stats["at"] == {"nulls": [1, 0]}
    kinds = [(s["kind"], s["row_key"]["id"]) for s in diff["sample"]]
    assert kinds == [("changed", "2"), ("changed", "4"), ("changed", "5"), ("added", "6"), ("removed", "7")]
    four = diff["sample"][1]
    assert four["changed"] == ["name"]
    assert four["before"]["name"] == "d" and four["after"]["name"] is None
    two = diff["sample"][0]
    assert two["changed"] == ["at"]
    assert two["before"]["at"] is None and two["after"]["at"] == "2024-01-02 10:00:00"
    assert diff["sample"][2]["changed"] == ["amount", "at"]
    assert diff["sample"][2]["after"]["amount"] == "5.25"
    assert diff["sample"][3]["before"] is None and diff["sample"][4]["after"] is None


def test_composite_key(server):
    ddl = "CREATE TABLE {} (region VARCHAR(10), id INT, v INT, PRIMARY KEY (region, id))"
    server.run(
        ddl.format("base"),
        ddl.format("new"),
        "INSERT INTO base VALUES ('eu', 1, 10), ('eu', 2, 20), ('us', 1, 30)",
        "INSERT INTO new VALUES ('eu', 1, 10), ('eu', 2, 25), ('us', 2, 40)",
    )
    diff = server.diff()
    assert diff["key_columns"] == ["region", "id"]
    assert counts(diff) == (3, 3, 1, 1, 1, 1)
    assert diff["columns"] == {"v": 1}
    assert [(s["kind"], s["row_key"]) for s in diff["sample"]] == [
        ("changed", {"region": "eu", "id": "2"}),
        ("added", {"region": "us", "id": "2"}),
        ("removed", {"region": "us", "id": "1"}),
    ]


def test_column_added_dropped_and_retyped(server):
    server.run(
        "CREATE TABLE base (id INT PRIMARY KEY, a INT, b {text}, c INT)",
        "CREATE TABLE new (id INT PRIMARY KEY, a {big}, b {text}, d {text})",
        "INSERT INTO base VALUES (1, 1, 'x', 9), (2, 2, 'y', 9)",
        "INSERT INTO new VALUES (1, 1, 'x', 'n'), (2, 3, 'y', 'n')",
    )
    diff = server.diff()
    changes = {c["column"]: c["change"] for c in diff["schema_changes"]}
    assert changes == {"d": "added", "c": "removed", "a": "retyped"}
    assert counts(diff) == (2, 2, 0, 0, 1, 1)
    assert diff["columns"] == {"a": 1, "b": 0}


def test_base_table_missing_is_all_added(server):
    server.run(
        "CREATE TABLE new (id INT PRIMARY KEY, v INT)",
        "INSERT INTO new VALUES (3, 30), (1, 10), (2, NULL)",
    )
    diff = server.diff(base="nowhere")
    assert counts(diff) == (0, 3, 3, 0, 0, 0)
    assert diff["key_columns"] == ["id"]
    assert "does not exist" in diff["note"]
    assert [s["row_key"]["id"] for s in diff["sample"]] == ["1", "2", "3"]
    assert diff["stats"]["v"] == {"nulls": [0, 1], "sum": [None, 40], "min": [None, 10], "max": [None, 30]}


def test_base_schema_missing_is_all_added(server):
    server.run("CREATE TABLE new (id INT PRIMARY KEY, v INT)", "INSERT INTO new VALUES (1, 10)")
    base = _diff.describe(
        server.cur, server.dialect, f"{server.quote('no_such_schema')}.{server.quote('t')}", "x"
    )
    assert base.exists is False
    new = _diff.describe(server.cur, server.dialect, server.table("new"), "new")
    assert counts(_diff.compare(server.cur, server.dialect, base, new)) == (0, 1, 1, 0, 0, 0)


def test_keyless_duplicates_compare_as_multisets(server):
    server.run(
        "CREATE TABLE base (n INT, s {text})",
        "CREATE TABLE new (n INT, s {text})",
        "INSERT INTO base VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, NULL)",
        "INSERT INTO new VALUES (1, 'a'), (1, 'a'), (1, 'a'), (3, NULL), (4, 'd')",
    )
    diff = server.diff()
    assert diff["key_columns"] == []
    assert "multiset" in diff["note"]
    assert counts(diff) == (4, 5, 2, 1, 0, 3)
    assert diff["stats"]["n"] == {"nulls": [0, 0], "sum": [7, 10], "min": [1, 1], "max": [3, 4]}
    assert diff["stats"]["s"] == {"nulls": [1, 1]}
    sample = [(s["kind"], s["copies"], (s["after"] or s["before"])["n"]) for s in diff["sample"]]
    assert sample == [("added", 1, "1"), ("added", 1, "4"), ("removed", 1, "2")]


def test_a_key_that_repeats_falls_back_to_whole_rows(server):
    server.run(
        "CREATE TABLE base (id INT, v INT)",
        "CREATE TABLE new (id INT, v INT)",
        "INSERT INTO base VALUES (1, 1), (1, 2)",
        "INSERT INTO new VALUES (1, 1)",
    )
    diff = server.diff(key=["id"])
    assert diff["key_columns"] == [] and "repeats" in diff["note"]
    assert counts(diff) == (2, 1, 0, 1, 0, 1)


def test_upsert_keeps_keys_the_incoming_rows_do_not_name(server):
    server.run(
        "CREATE TABLE base (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE new (id INT PRIMARY KEY, v INT)",
        "INSERT INTO base VALUES (1, 10), (2, 20), (3, 30)",
        "INSERT INTO new VALUES (2, 21), (4, 40)",
    )
    diff = server.diff(mode="upsert")
    assert counts(diff) == (3, 4, 1, 0, 1, 2)
    assert diff["columns"] == {"v": 1}


def test_append_adds_rows_on_top(server):
    server.run(
        "CREATE TABLE base (id INT, v INT)",
        "CREATE TABLE new (id INT, v INT)",
        "INSERT INTO base VALUES (1, 10), (2, 20)",
        "INSERT INTO new VALUES (2, 20), (3, 30)",
    )
    diff = server.diff(mode="append")
    assert counts(diff) == (2, 4, 2, 0, 0, 2)


def test_case_only_text_change_counts(server):
    server.run(
        "CREATE TABLE base (id INT PRIMARY KEY, s {text})",
        "CREATE TABLE new (id INT PRIMARY KEY, s {text})",
        "INSERT INTO base VALUES (1, 'abc')",
        "INSERT INTO new VALUES (1, 'ABC')",
    )
    assert counts(server.diff()) == (1, 1, 0, 0, 1, 0)


# --- through the writers ------------------------------------------------------------------------------------


def _write(server, tmp_path, data, isolate: str | None = None, diff: bool = False, **config):
    """One writer call as the worker makes it; returns {event: fields}."""
    import pyarrow as pa  # noqa: F401  (the writers take Arrow tables)
    from osiris_drivers import mysql_writer, supabase_writer
    from osiris_drivers._common import StepContext

    events: dict = {}
    ctx = StepContext(
        step_id="load",
        connection=server.connection,
        artifacts_dir=tmp_path,
        base_dir=tmp_path,
        emit=lambda event, **fields: events.__setitem__(event, fields),
        create_schema=isolate is not None,
        diff=diff,
    )
    if server.dialect == "postgres":
        driver, config = supabase_writer, {"schema": isolate or "public", **config}
        config["write_mode"] = config.pop("mode", "append")
        if "key" in config:
            config["primary_key"] = config.pop("key")
    else:
        driver, config = mysql_writer, {"schema": isolate or server.schema, "batch_size": 1000, **config}
        if "key" in config:
            config["upsert_keys"] = config.pop("key")
    driver.run({"id": "load", "config": config}, {"input": data}, ctx)
    return events


@pytest.fixture
def writer_server(server, request):
    db = request.getfixturevalue("pg_db" if server.dialect == "postgres" else "mysql_db")
    server.connection = {"pg_dsn": db.pg_dsn} if server.dialect == "postgres" else db.connection
    return server


def _people(ids, names):
    import pyarrow as pa

    return pa.table({"id": pa.array(ids, pa.int32()), "name": pa.array(names, pa.string())})


def test_upsert_counts_inserted_updated_unchanged_as_the_server_measures_them(writer_server, tmp_path):
    writer_server.run(
        "CREATE TABLE people (id INT PRIMARY KEY, name {text})",
        "INSERT INTO people VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    data = _people([2, 3, 4], ["B", "c", "d"])  # 2 changes, 3 is the same, 4 is new
    events = _write(writer_server, tmp_path, data, table="people", mode="upsert", key=["id"])
    done = events["write.complete"]
    counts = [done[k] for k in ("rows_in", "rows_written", "inserted", "updated", "unchanged")]
    assert counts == [3, 2, 1, 1, 1]


def test_diff_on_compares_incoming_rows_inside_the_write(writer_server, tmp_path):
    writer_server.run(
        "CREATE TABLE people (id INT PRIMARY KEY, name {text})",
        "INSERT INTO people VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    data = _people([2, 3, 4], ["B", "c", "d"])
    events = _write(writer_server, tmp_path, data, diff=True, table="people", mode="replace")
    diff = events["diff.complete"]
    assert counts(diff) == (3, 3, 1, 1, 1, 1)
    assert diff["key_columns"] == ["id"] and diff["columns"] == {"name": 1}
    assert diff["table"] == diff["base_table"] == f"{writer_server.schema}.people"
    writer_server.cur.execute("SELECT id, name FROM people ORDER BY id")
    assert [tuple(r) for r in writer_server.cur.fetchall()] == [(2, "B"), (3, "c"), (4, "d")]

    upsert = _write(
        writer_server,
        tmp_path,
        _people([4, 5], ["D", "e"]),
        diff=True,
        table="people",
        mode="upsert",
        key=["id"],
    )
    assert counts(upsert["diff.complete"]) == (3, 4, 1, 0, 1, 2)
    append = _write(
        writer_server,
        tmp_path,
        _people([9], ["z"]),
        diff=True,
        table="appended",
        create_table=True,
        create_if_missing=True,
    )
    assert counts(append["diff.complete"]) == (0, 1, 1, 0, 0, 0)


def test_isolated_write_is_compared_with_the_base_schema(writer_server, tmp_path):
    writer_server.run(
        "CREATE TABLE people (id INT PRIMARY KEY, name {text})",
        "INSERT INTO people VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    pr = "osiris_pr_7" if writer_server.dialect == "postgres" else writer_server.schema + "_pr7"
    data = _people([1, 2, 4], ["a", "B", "d"])
    try:
        events = _write(
            writer_server,
            tmp_path,
            data,
            isolate=pr,
            table="people",
            mode="replace",
            key=["id"],
            create_table=True,
        )
        diff = events["diff.complete"]
        assert diff["table"] == f"{pr}.people" and diff["base_table"] == f"{writer_server.schema}.people"
        assert counts(diff) == (3, 3, 1, 1, 1, 1)
        assert [(s["kind"], s["row_key"]["id"]) for s in diff["sample"]] == [
            ("changed", "2"),
            ("added", "4"),
            ("removed", "3"),
        ]
    finally:
        if writer_server.dialect == "mysql":
            writer_server.cur.execute(f"DROP DATABASE IF EXISTS `{pr}`")


def test_a_before_trigger_that_skips_rows_shows_in_the_counts(pg_db, tmp_path):
    server = Server("postgres", pg_db)
    server.connection = {"pg_dsn": pg_db.pg_dsn}
    server.run(
        "CREATE TABLE people (id INT PRIMARY KEY, name TEXT)",
        "CREATE FUNCTION skip_x() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.name = 'x' THEN RETURN NULL; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER skip BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION skip_x()",
    )
    events = _write(server, tmp_path, _people([1, 2, 3], ["a", "x", "c"]), table="people")
    done = events["write.complete"]
    assert (done["rows_in"], done["rows_written"], done["inserted"]) == (3, 2, 2)
    server.close()


def test_ignore_duplicates_upsert_reports_the_rows_it_kept_out(pg_db, tmp_path):
    server = Server("postgres", pg_db)
    server.connection = {"pg_dsn": pg_db.pg_dsn}
    server.run("CREATE TABLE people (id INT PRIMARY KEY, name TEXT)", "INSERT INTO people VALUES (1, 'a')")
    events = _write(
        server,
        tmp_path,
        _people([1, 2], ["A", "b"]),
        table="people",
        mode="upsert",
        key=["id"],
        prefer="resolution=ignore-duplicates",
    )
    done = events["write.complete"]
    counts_ = [done[k] for k in ("rows_in", "rows_written", "inserted", "updated", "unchanged")]
    assert counts_ == [2, 1, 1, 0, 0]
    # the diff of the same kind of write says what it does: key 1 keeps its row, key 3 is new
    again = _write(
        server,
        tmp_path,
        _people([1, 3], ["A", "c"]),
        diff=True,
        table="people",
        mode="upsert",
        key=["id"],
        prefer="resolution=ignore-duplicates",
    )
    assert counts(again["diff.complete"]) == (2, 3, 1, 0, 0, 2)
    server.close()


# --- through `osiris-action run` -----------------------------------------------------------------------


def _cli_run(tmp_path, pipeline, *flags) -> dict:
    from osiris_action import cli

    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    assert cli.main(["run", str(pipeline), "--out", str(out), *flags]) == 0
    return json.loads((out / "report.json").read_text())


def _counts(entry: dict) -> tuple:
    return tuple(entry[k] for k in ("rows_base", "rows_new", "added", "removed", "changed", "unchanged"))


BASE_REVENUE = "INSERT INTO revenue VALUES ('US', 100), ('JP', 2), ('DE', 9)"  # against ORDERS[2]:
# US the same, JP 2 -> 3, BR added, DE removed


def test_cli_isolate_schema_and_diff_on_postgres(tmp_path, pg_db, monkeypatch, capsys):
    from tests.integration.test_isolation import ORDERS, checkout

    pg_execute(pg_db, "CREATE TABLE public.revenue (country text PRIMARY KEY, revenue bigint)", BASE_REVENUE)
    monkeypatch.setenv("PG_DSN", pg_db.pg_dsn)
    pipeline = checkout(tmp_path / "pr", ORDERS[2])
    report = _cli_run(tmp_path, pipeline, "--isolate-schema", "osiris_pr_5")
    (entry,) = report["data_diff"]
    assert (entry["step"], entry["table"], entry["base_table"]) == (
        "write-revenue",
        "osiris_pr_5.revenue",
        "public.revenue",
    )
    assert entry["key"] == ["country"] and _counts(entry) == (3, 3, 1, 1, 1, 1)
    assert entry["columns"] == {"revenue": 1}
    assert entry["schema_changes"] == [
        {"column": "revenue", "change": "retyped", "from": "bigint", "to": "numeric(38,0)"}
    ]
    assert "diff osiris_pr_5.revenue against public.revenue: +1 added" in capsys.readouterr().out

    report = _cli_run(tmp_path, pipeline, "--diff")
    (entry,) = report["data_diff"]
    assert entry["table"] == entry["base_table"] == "public.revenue"
    assert _counts(entry) == (3, 3, 1, 1, 1, 1) and entry["schema_changes"] == []
    assert pg_execute(pg_db, "SELECT country FROM public.revenue ORDER BY 1") == [("BR",), ("JP",), ("US",)]


def test_cli_isolate_schema_and_diff_on_mysql(tmp_path, mysql_db, monkeypatch):
    from tests.integration.test_isolation import ORDERS, checkout

    mysql_execute(
        mysql_db, "CREATE TABLE revenue (country VARCHAR(10) PRIMARY KEY, revenue BIGINT)", BASE_REVENUE
    )
    pipeline = checkout(tmp_path / "pr", ORDERS[2], writer="mysql.writer")
    # written as it is, not through ${ENV}: every value read from the environment is masked in reports
    connections = pipeline.parent / "osiris_connections.yaml"
    connections.write_text(connections.read_text().replace("${MYSQL_DATABASE}", mysql_db.database))
    schema = f"{mysql_db.database}_pr"
    try:
        (entry,) = _cli_run(tmp_path, pipeline, "--isolate-schema", schema)["data_diff"]
        assert (entry["table"], entry["base_table"]) == (f"{schema}.revenue", f"{mysql_db.database}.revenue")
        assert entry["key"] == ["country"] and _counts(entry) == (3, 3, 1, 1, 1, 1)
    finally:
        mysql_execute(mysql_db, f"DROP DATABASE IF EXISTS `{schema}`")
    (entry,) = _cli_run(tmp_path, pipeline, "--diff")["data_diff"]
    assert _counts(entry) == (3, 3, 1, 1, 1, 1) and entry["columns"] == {"revenue": 1}
    assert mysql_execute(mysql_db, "SELECT country FROM revenue ORDER BY 1") == [("BR",), ("JP",), ("US",)]


def test_a_csv_writer_says_it_has_no_diff(tmp_path, monkeypatch):
    from tests.integration.test_isolation import ORDERS, checkout

    pipeline = checkout(tmp_path / "pr", ORDERS[1])
    text = pipeline.read_text().replace("component: supabase.writer", "component: filesystem.csv_writer")
    config = text.index('      connection: "@supabase.staging"')
    pipeline.write_text(text[:config] + "      path: out.csv\n")
    report = _cli_run(tmp_path, pipeline, "--diff")
    assert report["data_diff"] == []
    assert report["diff_unavailable"] == [
        {
            "step": "write-revenue",
            "table": None,
            "reason": "filesystem.csv_writer writes no table that can be compared",
        }
    ]


def test_a_table_wider_than_one_query_allows(pg_db):
    """300 numeric columns need 2,700 aggregates: more than Postgres's 1,664 output columns per query."""
    server = Server("postgres", pg_db)
    columns = ", ".join(f"c{i} INT" for i in range(300))
    server.run(
        f"CREATE TABLE base (id INT PRIMARY KEY, {columns})",
        f"CREATE TABLE new (id INT PRIMARY KEY, {columns})",
    )
    server.run("INSERT INTO base (id, c0, c299) VALUES (1, 1, 1), (2, 2, 2)")
    server.run("INSERT INTO new (id, c0, c299) VALUES (1, 1, 1), (2, 2, 3)")
    diff = server.diff()
    assert counts(diff) == (2, 2, 0, 0, 1, 1)
    assert diff["columns"]["c299"] == 1 and diff["stats"]["c299"]["sum"] == [3, 4]
    server.close()


def test_a_type_without_equality_is_compared_as_text(pg_db, tmp_path):
    """xml has no equality operator (IS DISTINCT FROM would fail): it is compared as text."""
    import pyarrow as pa

    server = Server("postgres", pg_db)
    server.connection = {"pg_dsn": pg_db.pg_dsn}
    server.run("CREATE TABLE docs (id INT PRIMARY KEY, tags xml)", "INSERT INTO docs VALUES (1, NULL)")
    tags = pa.array(["<a>1</a>", None], pa.string())
    data = pa.table({"id": pa.array([1, 2], pa.int32()), "tags": tags})
    events = _write(server, tmp_path, data, diff=True, table="docs", mode="replace", key=["id"])
    assert counts(events["diff.complete"]) == (1, 2, 1, 0, 1, 0)
    assert events["write.complete"]["rows_written"] == 2
    server.close()


def test_the_rest_channel_says_it_has_no_diff(pg_db, tmp_path):
    from tests.integration.postgrest_server import PostgrestServer

    key = "service-role-key-for-tests-0123456789"
    pg_execute(pg_db, "CREATE TABLE people (id INT PRIMARY KEY, name TEXT)")
    server = Server("postgres", pg_db)
    rest = PostgrestServer(pg_db.pg_dsn, key).start()
    try:
        server.connection = {"url": rest.url, "service_role_key": key}
        events = _write(server, tmp_path, _people([1], ["a"]), diff=True, table="people")
    finally:
        rest.stop()
        server.close()
    assert "diff.complete" not in events
    assert events["diff.unavailable"]["reason"].startswith("the REST channel cannot compare rows")
    assert events["write.complete"]["rows_written"] == 1
