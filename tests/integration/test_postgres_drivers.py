"""supabase.writer / postgres.writer and supabase.extractor against the real local Postgres.

The SQL channel runs on throwaway databases (`pg_db`). The REST channel runs against
`postgrest_server.PostgrestServer`, a PostgREST stand-in that executes every call as SQL on the same
database. Wrong-password tests need password authentication, which the shared server (trust on
127.0.0.1) never asks for, so they start a private throwaway cluster with scram-sha-256 (`scram_pg`).
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote as urlquote

import psycopg
import pyarrow as pa
import pytest
from osiris_drivers import _postgres, supabase_extractor, supabase_writer
from osiris_drivers._common import StepContext, StepError, reader

from tests.conftest import pg_execute
from tests.integration.postgrest_server import PostgrestServer

pytestmark = pytest.mark.db

KEY = "service-role-key-for-tests-0123456789"


# --- helpers ----------------------------------------------------------------------------------------------


def _defaults(spec: dict) -> dict:
    props = spec["config"]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v and k not in spec["connection"]}


class Run:
    """One driver call: its context, the events it emitted, and the artifacts folder."""

    def __init__(self, tmp_path: Path, connection: dict | None):
        self.events: list[tuple[str, dict]] = []
        self.artifacts = tmp_path / f"artifacts_{len(list(tmp_path.iterdir()))}"
        self.artifacts.mkdir()
        self.ctx = StepContext(
            step_id="step",
            connection=connection,
            artifacts_dir=self.artifacts,
            base_dir=tmp_path,
            emit=lambda event, **fields: self.events.append((event, fields)),
        )

    def event(self, name: str) -> dict:
        found = [f for e, f in self.events if e == name]
        assert found, f"no {name} event in {[e for e, _ in self.events]}"
        return found[-1]

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


def write(tmp_path, connection, data: pa.Table, **config) -> Run:
    run = Run(tmp_path, connection)
    step = {
        "id": "write",
        "component": "supabase.writer",
        "mode": "write",
        "config": {**_defaults(supabase_writer.SPEC), **config},
    }
    assert supabase_writer.run(step, {"upstream": data}, run.ctx) is None
    return run


def plan(tmp_path, connection, data: pa.Table, create_schema=False, **config) -> dict:
    """Plan mode: the writer inspects the target and reports `plan.target`; it returns nothing."""
    run = Run(tmp_path, connection)
    run.ctx.plan_only, run.ctx.create_schema = True, create_schema
    step = {"id": "write", "component": "supabase.writer", "mode": "write"}
    step["config"] = {**_defaults(supabase_writer.SPEC), **config}
    assert supabase_writer.plan(step, {"upstream": data.slice(0, 0)}, run.ctx) is None
    return run.event("plan.target")


def read(tmp_path, connection, **config) -> tuple[pa.Table, Run]:
    run = Run(tmp_path, connection)
    step = {
        "id": "read",
        "component": "supabase.extractor",
        "mode": "extract",
        "config": {**_defaults(supabase_extractor.SPEC), **config},
    }
    return reader(supabase_extractor.run(step, {}, run.ctx)).read_all(), run


def dsn(db) -> dict:
    return {"pg_dsn": f"{db.pg_dsn}?sslmode=disable"}


def rows(db, sql: str) -> list:
    return pg_execute(db, sql)


def people(ids, amount=Decimal("1.50"), name="n") -> pa.Table:
    ids = list(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"{name}{i}" for i in ids]),
            "amount": pa.array([amount] * len(ids), pa.decimal128(12, 2)),
        }
    )


def json_field(name: str) -> pa.Field:
    return pa.field(name, pa.string(), metadata={b"osiris.type": b"json"})


def spy_staging(monkeypatch) -> list[str]:
    """The staging tables the writer makes; none means it copied straight into the target. Needed where a
    write fails, since write.complete (which says `method`) is never reported then."""
    made: list[str] = []

    def stage(cur, table, name):
        made.append(name)
        return _postgres.stage(cur, table, name)

    monkeypatch.setattr(supabase_writer, "stage", stage)
    return made


PEOPLE_DDL = "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))"
AUDIT = [
    "CREATE TABLE audit (op text, n int)",
    "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN INSERT INTO audit VALUES (TG_OP, 1); RETURN coalesce(NEW, OLD); END $$",
]


# --- SQL channel: create, types, modes ---------------------------------------------------------------------


def test_missing_table_is_created_with_faithful_types_in_the_load_transaction(pg_db, tmp_path):
    tz = dt.UTC
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            ("i32", pa.int32()),
            ("i16", pa.int16()),
            ("u64", pa.uint64()),
            ("amount", pa.decimal128(12, 2)),
            ("f64", pa.float64()),
            ("f32", pa.float32()),
            ("ts", pa.timestamp("us")),
            ("tstz", pa.timestamp("us", tz="UTC")),
            ("day", pa.date32()),
            ("at", pa.time64("us")),
            ("flag", pa.bool_()),
            json_field("doc"),
            ("raw", pa.binary()),
            ("Mixed Case", pa.string()),
        ]
    )
    data = pa.table(
        [
            [1, 2],
            [7, None],
            [3, 4],
            [2**64 - 1, 0],
            [Decimal("12345678.91"), None],
            [1.5, float("nan")],
            [2.5, None],
            [dt.datetime(2024, 5, 1, 12, 30, 1, 5), None],
            [dt.datetime(2024, 5, 1, 12, 0, tzinfo=tz), None],
            [dt.date(2024, 5, 1), None],
            [dt.time(23, 59, 58, 7), None],
            [True, None],
            ['{"a": [1, 2], "b": null}', None],
            [b"\x00\xff", None],
            ["x", None],
        ],
        schema=schema,
    )
    run = write(tmp_path, dsn(pg_db), data, table="typed", primary_key=["id"])

    types = dict(
        rows(
            pg_db,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = 'public.typed'::regclass AND a.attnum > 0",
        )
    )
    assert types == {
        "id": "bigint",
        "i32": "integer",
        "i16": "smallint",
        "u64": "numeric(20,0)",
        "amount": "numeric(12,2)",
        "f64": "double precision",
        "f32": "real",
        "ts": "timestamp without time zone",
        "tstz": "timestamp with time zone",
        "day": "date",
        "at": "time without time zone",
        "flag": "boolean",
        "doc": "jsonb",
        "raw": "bytea",
        "Mixed Case": "text",
    }
    assert rows(
        pg_db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'typed'::regclass"
    ) == [("PRIMARY KEY (id)",)]
    first = rows(pg_db, 'SELECT u64, amount, ts, tstz, at, doc, raw, "Mixed Case" FROM typed WHERE id = 1')[0]
    assert first == (
        Decimal(2**64 - 1),
        Decimal("12345678.91"),
        dt.datetime(2024, 5, 1, 12, 30, 1, 5),
        dt.datetime(2024, 5, 1, 12, 0, tzinfo=tz),
        dt.time(23, 59, 58, 7),
        {"a": [1, 2], "b": None},
        b"\x00\xff",
        "x",
    )
    assert rows(pg_db, "SELECT f64::text FROM typed WHERE id = 2") == [("NaN",)]

    planned, executed = run.event("table.ddl_planned"), run.event("table.ddl_executed")
    assert planned["executed"] is False and executed["executed"] is True
    assert planned["channel"] == executed["channel"] == "sql_copy"
    assert planned["table"] == "typed" and planned["schema"] == "public"
    sql = (run.artifacts / "ddl.sql").read_text()
    assert sql == planned["sql"] == executed["sql"]
    assert sql.startswith('CREATE TABLE "public"."typed" (') and '"Mixed Case" TEXT' in sql
    assert 'PRIMARY KEY ("id")' in sql
    assert run.names().index("table.ddl_planned") < run.names().index("table.ddl_executed")
    complete = run.event("write.complete")
    assert complete == {
        "table": "typed",
        "schema": "public",
        "mode": "append",
        "rows_in": 2,
        "rows_written": 2,
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
        "channel_used": "sql_copy",
        "atomic": True,
        "method": "staged",
        "staged_because": "casts needed: doc (string into jsonb)",
    }
    # the staging table lived only in the transaction's session
    assert rows(pg_db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'osiris_stage%'") == [(0,)]


def test_append_adds_rows_and_counts_them_from_the_server(pg_db, tmp_path):
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    write(tmp_path, dsn(pg_db), people(range(1, 4)), table="people")
    run = write(tmp_path, dsn(pg_db), people(range(4, 6)), table="people", write_mode="append")
    assert run.event("write.complete")["rows_written"] == 2
    assert run.event("write.complete")["mode"] == "append"
    assert run.event("write.complete")["method"] == "direct_copy"
    assert rows(pg_db, "SELECT count(*), sum(amount) FROM people") == [(5, Decimal("7.50"))]
    assert "table.ddl_planned" not in run.names()


def test_empty_input_appends_nothing_and_replace_empties_the_table(pg_db, tmp_path):
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    write(tmp_path, dsn(pg_db), people(range(1, 4)), table="people")
    run = write(tmp_path, dsn(pg_db), people([]), table="people")
    assert run.event("write.complete")["rows_written"] == 0
    run = write(tmp_path, dsn(pg_db), people([]), table="people", write_mode="replace", primary_key="id")
    assert run.event("write.complete")["rows_deleted"] == 3
    assert rows(pg_db, "SELECT count(*) FROM people") == [(0,)]


def test_replace_keeps_the_table_with_its_view_trigger_grant_and_policy(pg_db, tmp_path):
    role = f"reader_{pg_db.database[-10:]}"
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))",
        "INSERT INTO people SELECT g, 'old' || g, 9 FROM generate_series(1, 10) g",
        "CREATE VIEW rich AS SELECT id, name FROM people WHERE amount > 1",
        "CREATE TABLE audit (op text, n int)",
        "CREATE FUNCTION log_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO audit VALUES (TG_OP, 1); RETURN NEW; END $$",
        "CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION log_insert()",
        f"DROP ROLE IF EXISTS {role}",
        f"CREATE ROLE {role}",
        f"GRANT SELECT ON people TO {role}",
        "ALTER TABLE people ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY only_rich ON people FOR SELECT USING (amount > 0)",
    )
    oid = rows(pg_db, "SELECT 'people'::regclass::oid")
    try:
        run = write(
            tmp_path, dsn(pg_db), people([2, 20, 30]), table="people", write_mode="replace", primary_key="id"
        )
        assert run.event("write.complete")["rows_written"] == 3
        assert run.event("write.complete")["rows_deleted"] == 10
        assert run.event("write.complete")["method"] == "direct_copy"  # TRUNCATE + COPY into the table
        assert rows(pg_db, "SELECT id, name FROM people ORDER BY id") == [(2, "n2"), (20, "n20"), (30, "n30")]
        assert rows(pg_db, "SELECT 'people'::regclass::oid") == oid
        assert rows(pg_db, "SELECT count(*) FROM rich") == [(3,)]
        assert rows(pg_db, "SELECT count(*) FROM audit") == [(3,)]
        assert rows(pg_db, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'people'::regclass") == [
            ("people_audit",)
        ]
        assert rows(pg_db, f"SELECT has_table_privilege('{role}', 'people', 'SELECT')") == [(True,)]
        assert rows(pg_db, "SELECT polname FROM pg_policy") == [("only_rich",)]
        assert rows(pg_db, "SELECT relrowsecurity FROM pg_class WHERE relname = 'people'") == [(True,)]
    finally:
        pg_execute(pg_db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_upsert_counts_inserted_and_changed_rows_and_skips_unchanged_ones(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2), "
        "note text DEFAULT 'keep')",
        "INSERT INTO people (id, name, amount) VALUES (1, 'n1', 1.50), (2, 'n2', 1.50), (3, 'old', 1.50)",
    )
    xmin = rows(pg_db, "SELECT xmin::text FROM people WHERE id = 1")
    run = write(
        tmp_path, dsn(pg_db), people([1, 2, 3, 4]), table="people", write_mode="upsert", primary_key="id"
    )
    assert run.event("write.complete")["rows_written"] == 2  # id 3 changed, id 4 new; 1 and 2 unchanged
    assert rows(pg_db, "SELECT id, name, note FROM people ORDER BY id") == [
        (1, "n1", "keep"),
        (2, "n2", "keep"),
        (3, "n3", "keep"),
        (4, "n4", "keep"),
    ]
    assert rows(pg_db, "SELECT xmin::text FROM people WHERE id = 1") == xmin  # not rewritten


def test_upsert_into_a_json_column_which_has_no_equality_operator(pg_db, tmp_path):
    pg_execute(
        pg_db, "CREATE TABLE docs (id int PRIMARY KEY, body json)", "INSERT INTO docs VALUES (1, '[1]')"
    )
    data = pa.table(
        [pa.array([1, 2], pa.int32()), ["[1]", '{"b": 2}']],
        schema=pa.schema([("id", pa.int32()), json_field("body")]),
    )
    run = write(tmp_path, dsn(pg_db), data, table="docs", write_mode="upsert", primary_key="id")
    assert run.event("write.complete")["rows_written"] == 1
    assert rows(pg_db, "SELECT id, body FROM docs ORDER BY id") == [(1, [1]), (2, {"b": 2})]


def test_upsert_with_a_composite_key(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE scores (team text, day date, points int, PRIMARY KEY (team, day))",
        "INSERT INTO scores VALUES ('a', '2024-01-01', 1), ('a', '2024-01-02', 2), ('b', '2024-01-01', 3)",
    )
    data = pa.table(
        {
            "team": ["a", "b", "b"],
            "day": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 1), dt.date(2024, 1, 2)]),
            "points": pa.array([20, 3, 40], pa.int64()),
        }
    )
    run = write(tmp_path, dsn(pg_db), data, table="scores", write_mode="upsert", primary_key=["team", "day"])
    assert run.event("write.complete")["rows_written"] == 2
    assert rows(pg_db, "SELECT team, day::text, points FROM scores ORDER BY 1, 2") == [
        ("a", "2024-01-01", 1),
        ("a", "2024-01-02", 20),
        ("b", "2024-01-01", 3),
        ("b", "2024-01-02", 40),
    ]


def test_upsert_creates_a_missing_table_with_a_composite_primary_key(pg_db, tmp_path):
    data = pa.table({"a": [1, 1], "b": ["x", "y"], "v": [1.0, 2.0]})
    write(tmp_path, dsn(pg_db), data, table="pairs", write_mode="upsert", primary_key=["a", "b"])
    run = write(
        tmp_path,
        dsn(pg_db),
        data.set_column(2, "v", pa.array([1.0, 3.0])),
        table="pairs",
        write_mode="upsert",
        primary_key=["a", "b"],
    )
    assert run.event("write.complete")["rows_written"] == 1
    assert rows(pg_db, "SELECT b, v FROM pairs ORDER BY b") == [("x", 1.0), ("y", 3.0)]
    assert 'PRIMARY KEY ("a", "b")' in (run.artifacts.parent / "artifacts_0" / "ddl.sql").read_text()


def test_writer_in_a_non_public_schema_and_text_into_jsonb_and_uuid(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.docs (id uuid PRIMARY KEY, body jsonb, label varchar(3))",
    )
    data = pa.table({"id": ["8f5b7a56-8a3b-4c7e-9d3c-0e1f2a3b4c5d"], "body": ['{"k": 1}'], "label": ["abc"]})
    write(tmp_path, dsn(pg_db), data, table="docs", schema="sales")
    assert rows(pg_db, "SELECT id::text, body, label FROM sales.docs") == [
        ("8f5b7a56-8a3b-4c7e-9d3c-0e1f2a3b4c5d", {"k": 1}, "abc")
    ]
    # too long for varchar(3): the server refuses (an explicit cast would have truncated silently)
    with pytest.raises(StepError, match="too long"):
        write(
            tmp_path,
            dsn(pg_db),
            data.set_column(2, "label", pa.array(["abcd"])),
            table="docs",
            schema="sales",
        )


# --- SQL channel: COPY straight into the target, or through a staging table ---------------------------------


def test_append_and_replace_copy_straight_into_the_table_when_nothing_would_differ(pg_db, tmp_path):
    pg_execute(
        pg_db,
        *AUDIT,
        "CREATE TABLE teams (id int PRIMARY KEY)",
        "INSERT INTO teams VALUES (1)",
        # an outgoing foreign key, a CHECK, a default, INSERT triggers and varchar/char columns change nothing
        "CREATE TABLE people (id bigint PRIMARY KEY, name varchar(8), amount numeric(12,2) "
        "CHECK (amount > 0), team int DEFAULT 1 REFERENCES teams, code char(3), note text)",
        "CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION audit()",
        "INSERT INTO people (id, name, amount) SELECT g, 'old', 1 FROM generate_series(1, 5) g",
    )
    data = people([1, 2, 3]).append_column("code", pa.array(["ab", None, "xyz"]))
    data = data.append_column("note", pa.nulls(3))  # a column of nulls fits any type
    run = write(tmp_path, dsn(pg_db), data, table="people", write_mode="replace", primary_key="id")
    complete = run.event("write.complete")
    assert (complete["method"], complete["rows_deleted"], complete["rows_written"]) == ("direct_copy", 5, 3)
    assert "staged_because" not in complete
    assert rows(pg_db, "SELECT id, name, code, team FROM people ORDER BY id") == [
        (1, "n1", "ab ", 1),
        (2, "n2", None, 1),
        (3, "n3", "xyz", 1),
    ]
    assert rows(pg_db, "SELECT count(*) FROM audit") == [(8,)]

    run = write(tmp_path, dsn(pg_db), people([4, 5]), table="people", write_mode="append")
    complete = run.event("write.complete")
    assert (complete["method"], complete["rows_written"]) == ("direct_copy", 2)
    assert rows(pg_db, "SELECT count(*) FROM people") == [(5,)]

    # a table created by this write is as good a target, whatever the names hold
    pg_execute(pg_db, 'CREATE SCHEMA "Sales Q"')
    run = write(tmp_path, dsn(pg_db), data, table='New "People"', schema="Sales Q", write_mode="replace")
    complete = run.event("write.complete")
    assert (complete["method"], complete["rows_written"]) == ("direct_copy", 3)
    assert "rows_deleted" not in complete and "table.ddl_executed" in run.names()
    assert rows(pg_db, 'SELECT count(*) FROM "Sales Q"."New ""People"""') == [(3,)]


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_rows_written_by_a_direct_copy_is_the_servers_count(pg_db, tmp_path, mode):
    """adbc_ingest returns the rows it sent; a BEFORE trigger that skips rows shows the difference."""
    pg_execute(
        pg_db,
        PEOPLE_DDL,
        "CREATE FUNCTION skip_odd() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.id % 2 = 1 THEN RETURN NULL; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER people_skip BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION skip_odd()",
    )
    run = write(tmp_path, dsn(pg_db), people(range(1, 11)), table="people", write_mode=mode, primary_key="id")
    complete = run.event("write.complete")
    assert (complete["method"], complete["rows_written"]) == ("direct_copy", 5)
    assert rows(pg_db, "SELECT count(*) FROM people") == [(5,)]


@pytest.mark.parametrize(
    ("mode", "setup", "because", "audit"),
    [
        (
            "replace",
            ["CREATE TABLE orders (person bigint REFERENCES people (id))"],
            "a foreign key references the table",
            0,
        ),
        (  # TRUNCATE would not fire it: one row per deleted row proves the DELETE ran
            "replace",
            ["CREATE TRIGGER people_gone AFTER DELETE ON people FOR EACH ROW EXECUTE FUNCTION audit()"],
            "ON DELETE or ON TRUNCATE triggers",
            4,
        ),
        (
            "replace",
            ["CREATE TRIGGER people_gone BEFORE DELETE ON people EXECUTE FUNCTION audit()"],  # per statement
            "ON DELETE or ON TRUNCATE triggers",
            1,
        ),
        (  # TRUNCATE would fire it where the write never did before
            "replace",
            ["CREATE TRIGGER people_cut BEFORE TRUNCATE ON people EXECUTE FUNCTION audit()"],
            "ON DELETE or ON TRUNCATE triggers",
            0,
        ),
        ("replace", ["CREATE TABLE vip () INHERITS (people)"], "inheritance children", 0),
        (
            "replace",
            ["CREATE PUBLICATION people_changes FOR TABLE people"],
            "publication publishes its deletes",
            0,
        ),
        (  # COPY ignores rules: the rule's row per inserted row proves the INSERT ran
            "append",
            ["CREATE RULE people_log AS ON INSERT TO people DO ALSO INSERT INTO audit VALUES ('rule', 1)"],
            "the table has rules",
            3,
        ),
        ("append", ["ALTER TABLE people ALTER id TYPE integer"], "casts needed: id (int64 into integer)", 0),
        (
            "replace",
            ["ALTER TABLE people ALTER amount TYPE double precision"],
            "casts needed: amount (decimal128(12, 2) into double precision)",
            0,
        ),
        ("upsert", [], "upsert reads its rows from a staging table", 0),
    ],
    ids=[
        "foreign key",
        "row delete trigger",
        "statement delete trigger",
        "truncate trigger",
        "inheritance",
        "publication",
        "rule",
        "cast to integer",
        "cast to double",
        "upsert",
    ],
)
def test_the_staging_table_stays_where_a_direct_copy_would_differ(
    pg_db, tmp_path, mode, setup, because, audit
):
    pg_execute(
        pg_db,
        PEOPLE_DDL,
        *AUDIT,
        "INSERT INTO people SELECT g, 'old', 5 FROM generate_series(1, 4) g",
        *setup,
    )
    run = write(tmp_path, dsn(pg_db), people([5, 6, 7]), table="people", write_mode=mode, primary_key="id")
    complete = run.event("write.complete")
    assert complete["method"] == "staged" and because in complete["staged_because"]
    assert complete["rows_written"] == 3
    assert complete.get("rows_deleted") == (4 if mode == "replace" else None)
    ids = [5, 6, 7] if mode == "replace" else [1, 2, 3, 4, 5, 6, 7]
    assert rows(pg_db, "SELECT id FROM people ORDER BY id") == [(i,) for i in ids]
    assert rows(pg_db, "SELECT count(*) FROM audit") == [(audit,)]


def test_row_level_security_for_the_writer_keeps_delete_and_insert(pg_db, tmp_path):
    """TRUNCATE ignores policies and COPY refuses them: replace by a role the policy applies to stays
    staged, and deletes only the rows the policy lets it see."""
    role = f"writer_{pg_db.database[-10:]}"
    pg_execute(
        pg_db,
        PEOPLE_DDL,
        "INSERT INTO people VALUES (1, 'mine', 1), (2, 'theirs', 1)",
        f"DROP ROLE IF EXISTS {role}",
        f"CREATE ROLE {role} LOGIN",
        f"GRANT ALL ON people TO {role}",  # TRUNCATE included
        "ALTER TABLE people ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY own_rows ON people TO {role} USING (name <> 'theirs')",
    )
    try:
        connection = {
            "pg_dsn": f"postgresql://{role}@{pg_db.host}:{pg_db.port}/{pg_db.database}?sslmode=disable"
        }
        run = write(tmp_path, connection, people([3]), table="people", write_mode="replace", primary_key="id")
        complete = run.event("write.complete")
        assert complete["method"] == "staged"
        assert complete["staged_because"] == "row-level security applies to this user"
        assert complete["rows_deleted"] == 1
        assert rows(pg_db, "SELECT id, name FROM people ORDER BY id") == [(2, "theirs"), (3, "n3")]
    finally:
        pg_execute(pg_db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_an_always_generated_identity_in_the_data_is_refused_as_insert_refuses_it(pg_db, tmp_path):
    """COPY would store the given ids; INSERT refuses them, so the staging path keeps that error."""
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, amount numeric)",
    )
    with pytest.raises(StepError, match='cannot insert a non-DEFAULT value into column "id"'):
        write(tmp_path, dsn(pg_db), people([1]), table="people")
    assert rows(pg_db, "SELECT count(*) FROM people") == [(0,)]


# --- SQL channel: failures leave the target exactly as before ---------------------------------------------


@pytest.mark.parametrize("mode", ["append", "replace", "upsert"])
def test_a_check_violation_in_the_last_row_leaves_the_target_unchanged(pg_db, tmp_path, mode, monkeypatch):
    """append and replace COPY straight into the table (replace after a TRUNCATE, which the rollback
    undoes); upsert goes through the staging table."""
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2) CHECK (amount >= 0))",
        "INSERT INTO people SELECT g, 'old', 5 FROM generate_series(1, 100) g",
    )
    before = rows(pg_db, "SELECT * FROM people ORDER BY id")
    relfilenode = rows(pg_db, "SELECT relfilenode FROM pg_class WHERE relname = 'people'")
    data = people(range(101, 5101) if mode == "append" else range(50, 5050))
    amounts = [Decimal("1.00")] * (data.num_rows - 1) + [Decimal("-1.00")]
    data = data.set_column(2, "amount", pa.array(amounts, pa.decimal128(12, 2)))
    staged = spy_staging(monkeypatch)
    with pytest.raises(StepError) as err:
        write(tmp_path, dsn(pg_db), data, table="people", write_mode=mode, primary_key="id")
    assert bool(staged) == (mode == "upsert")
    assert "nothing was changed: new row for relation" in err.value.message  # the server's words, as is
    assert "people_amount_check" in err.value.message
    assert "CHECK" in err.value.hint
    assert rows(pg_db, "SELECT * FROM people ORDER BY id") == before
    # the TRUNCATE gave the table a new file, and the rollback went back to the old one
    assert rows(pg_db, "SELECT relfilenode FROM pg_class WHERE relname = 'people'") == relfilenode


def test_a_null_in_the_last_row_of_a_new_table_leaves_no_table_behind(pg_db, tmp_path):
    data = pa.table({"id": pa.array([1, 2, None], pa.int64()), "v": ["a", "b", "c"]})  # the key is NOT NULL
    with pytest.raises(StepError, match="null value"):
        write(tmp_path, dsn(pg_db), data, table="fresh", primary_key="id")
    assert rows(pg_db, "SELECT to_regclass('public.fresh')") == [(None,)]


@pytest.mark.parametrize(
    ("mode", "setup", "stalled_in"),
    [
        ("replace", [], "COPY"),  # after the TRUNCATE
        ("append", [], "COPY"),
        (
            "replace",
            [*AUDIT, "CREATE TRIGGER gone AFTER DELETE ON people EXECUTE FUNCTION audit()"],
            "INSERT",
        ),
    ],
    ids=["replace direct copy", "append direct copy", "replace staged"],
)
def test_connection_killed_during_the_load_leaves_the_target_unchanged(
    pg_db, tmp_path, mode, setup, stalled_in
):
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))",
        "INSERT INTO people SELECT g, 'old' || g, 5 FROM generate_series(1, 1000) g",
        # the load stalls on one row in the middle, long enough for another session to kill it
        "CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.id = 20000 THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END $$",
        "CREATE TRIGGER people_stall BEFORE INSERT ON people FOR EACH ROW EXECUTE FUNCTION stall()",
        *setup,
    )
    before = rows(pg_db, "SELECT * FROM people ORDER BY id")
    killed: list = []

    def killer():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            found = rows(
                pg_db,
                "SELECT pid, query, pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{pg_db.database}' AND wait_event = 'PgSleep'",
            )
            killed.extend(found)
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with pytest.raises(StepError) as err:
            write(tmp_path, dsn(pg_db), people(range(1001, 41001)), table="people", write_mode=mode)
    finally:
        thread.join()
    assert killed, "the load never reached the stalled row"
    assert killed[0][1].startswith(stalled_in)  # the statement the server was running when killed
    assert "nothing was changed" in err.value.message
    assert "terminating connection due to administrator command" in err.value.message
    assert "nothing was committed" in err.value.hint
    assert rows(pg_db, "SELECT * FROM people ORDER BY id") == before


# --- SQL channel: errors before any row moves --------------------------------------------------------------


def test_missing_table_without_create_if_missing(pg_db, tmp_path):
    with pytest.raises(StepError) as err:
        write(tmp_path, dsn(pg_db), people([1]), table="nope", create_if_missing=False)
    assert '"public"."nope" does not exist and create_if_missing is false' in err.value.message
    assert rows(pg_db, "SELECT to_regclass('public.nope')") == [(None,)]


def test_missing_schema_is_named(pg_db, tmp_path):
    with pytest.raises(StepError, match='schema "ghost" does not exist'):
        write(tmp_path, dsn(pg_db), people([1]), table="t", schema="ghost")


def test_incompatible_target_columns_are_listed_before_any_row_is_written(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name integer, amount numeric, must text NOT NULL)",
        "INSERT INTO people VALUES (1, 1, 1, 'x')",
    )
    with pytest.raises(StepError) as err:
        write(tmp_path, dsn(pg_db), people([2, 3]).append_column("extra", pa.array([1, 2])), table="people")
    message = err.value.message
    assert "nothing was written" in message
    assert "not in the table: extra;" in message
    assert "name (string into integer)" in message
    assert "NOT NULL columns without a default missing from the data: must" in message
    assert "name integer" in err.value.hint
    assert rows(pg_db, "SELECT count(*) FROM people") == [(1,)]


def test_case_mismatch_is_pointed_out(pg_db, tmp_path):
    pg_execute(pg_db, 'CREATE TABLE t ("Id" bigint)')
    with pytest.raises(StepError, match=r"not in the table: id; case differs: id \(the table has Id\)"):
        write(tmp_path, dsn(pg_db), pa.table({"id": [1]}), table="t")


def test_a_sql_error_carries_the_server_message_and_a_hint(pg_db, tmp_path):
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    with pytest.raises(StepError) as err:
        write(tmp_path, dsn(pg_db), people([1, 2, 1]), table="people")
    assert 'duplicate key value violates unique constraint "people_pkey"' in err.value.message
    assert "Key (id)=(1) already exists" in err.value.message
    assert "upsert" in err.value.hint
    with pytest.raises(StepError) as err:
        write(tmp_path, dsn(pg_db), people([1, 1]), table="people", write_mode="upsert", primary_key="id")
    assert "cannot affect row a second time" in err.value.message and "deduplicate" in err.value.hint
    pg_execute(pg_db, "CREATE TABLE nokey (id bigint, v text)")
    with pytest.raises(StepError) as err:
        write(
            tmp_path,
            dsn(pg_db),
            pa.table({"id": [1], "v": ["a"]}),
            table="nokey",
            write_mode="upsert",
            primary_key="id",
        )
    assert "ON CONFLICT" in err.value.message and "unique index" in err.value.hint


def test_upsert_needs_a_primary_key_that_is_in_the_data(pg_db, tmp_path):
    with pytest.raises(StepError, match="upsert needs primary_key"):
        write(tmp_path, dsn(pg_db), people([1]), table="people", write_mode="upsert")
    with pytest.raises(StepError, match=r"primary_key column\(s\) code are not in the data"):
        write(
            tmp_path, dsn(pg_db), people([1]), table="people", write_mode="upsert", primary_key=["id", "code"]
        )


# --- connecting ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scram_pg():
    """A private Postgres cluster that really checks passwords (scram-sha-256), on a free port."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if not found:
        pytest.skip("initdb not found: install postgresql to run the password tests")
    bindir = Path(found).parent
    root = Path(tempfile.mkdtemp(prefix="osiris_scram_"))
    (root / "pw").write_text("Sup3r-secret\n")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in (root, root / "pw"):
            shutil.chown(path, "postgres")
    port = _free_port()
    data = root / "data"
    subprocess.run(
        [
            *as_user,
            bindir / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={root / 'pw'}",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            bindir / "pg_ctl",
            "-D",
            data,
            "-w",
            "-l",
            root / "log",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    admin = f"postgresql://postgres:Sup3r-secret@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE ROLE app LOGIN PASSWORD 'p@ss:w/rd %x'")
        conn.execute("CREATE DATABASE appdb OWNER app")
    try:
        yield port
    finally:
        subprocess.run(
            [*as_user, bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_wrong_password_is_reported_without_the_password(scram_pg, tmp_path):
    connection = {
        "host": "127.0.0.1",
        "port": scram_pg,
        "user": "app",
        "password": "wrong-Pa55",
        "database": "appdb",
    }
    with pytest.raises(StepError) as err:
        write(tmp_path, connection, people([1]), table="people")
    message = err.value.message
    assert "rejected the login" in message and 'password authentication failed for user "app"' in message
    assert "wrong-Pa55" not in message and "wrong-Pa55" not in err.value.hint
    assert "password" in err.value.hint
    assert err.value.error_type == "ConnectionError"


def test_dsn_password_is_percent_decoded_and_localhost_goes_through_its_ipv4_address(scram_pg, tmp_path):
    pw = urlquote("p@ss:w/rd %x", safe="")
    connection = {"pg_dsn": f"postgresql://app:{pw}@localhost:{scram_pg}/appdb?sslmode=disable"}
    run = write(tmp_path, connection, people([1, 2]), table="people")
    assert run.event("write.complete")["rows_written"] == 2
    table, _ = read(tmp_path, connection, table="people")
    assert table.num_rows == 2


def test_sqlalchemy_style_dsn_is_accepted(pg_db, tmp_path):
    connection = {"dsn": pg_db.pg_dsn.replace("postgresql://", "postgresql+psycopg2://")}
    assert (
        write(tmp_path, connection, people([1]), table="people").event("write.complete")["rows_written"] == 1
    )


def test_unknown_host(tmp_path):
    connection = {
        "host": "no-such-host.invalid",
        "user": "postgres",
        "database": "test",
        "password": "pw-123",
    }
    with pytest.raises(StepError) as err:
        write(tmp_path, connection, people([1]), table="people")
    assert "does not resolve" in err.value.message and "no-such-host.invalid" in err.value.message
    assert "pooler" in err.value.hint


def test_unknown_database(tmp_path):
    connection = {"pg_dsn": "postgresql://postgres@127.0.0.1:5432/no_such_db_here?sslmode=disable"}
    with pytest.raises(StepError) as err:
        write(tmp_path, connection, people([1]), table="people")
    assert "the database does not exist" in err.value.message
    assert 'database "no_such_db_here" does not exist' in err.value.message


def test_connection_refused_lists_every_address_tried(tmp_path):
    port = _free_port()
    connection = {"pg_dsn": f"postgresql://postgres:s3cret-pw@localhost:{port}/test"}
    with pytest.raises(StepError) as err:
        write(tmp_path, connection, people([1]), table="people")
    message = err.value.message
    assert "connection was refused" in message
    assert "addresses tried: 127.0.0.1, localhost" in message
    assert "s3cret-pw" not in message


def test_sslmode_from_the_dsn_is_honoured(pg_db, tmp_path):
    connection = {"pg_dsn": f"{pg_db.pg_dsn}?sslmode=require"}
    with pytest.raises(StepError) as err:
        write(tmp_path, connection, people([1]), table="people")
    assert "SSL" in err.value.message and "sslmode" in err.value.hint
    connection = {**pg_db.connection, "sslmode": "require"}
    with pytest.raises(StepError, match="SSL"):
        write(tmp_path, connection, people([1]), table="people")
    # the default (prefer) falls back to plain TCP on a server without SSL
    write(tmp_path, pg_db.connection, people([1]), table="people")


def test_sql_channel_wins_when_the_connection_also_has_url_and_key(pg_db, tmp_path):
    connection = {**dsn(pg_db), "url": "http://127.0.0.1:9", "service_role_key": KEY}
    run = write(tmp_path, connection, people([1]), table="people")
    assert run.event("write.complete")["channel_used"] == "sql_copy"


def test_no_channel_at_all(tmp_path):
    with pytest.raises(StepError, match="neither pg_dsn"):
        write(tmp_path, {"host": "db.example.com"}, people([1]), table="people")


def test_postgres_writer_is_the_same_component():
    from osiris_action import components

    assert components.get("postgres.writer").module == "supabase_writer"
    assert components.get("supabase.writer").module == "supabase_writer"


# --- plan mode and per-PR schemas ---------------------------------------------------------------------------


def test_plan_reports_missing_compatible_and_incompatible_targets_and_writes_nothing(pg_db, tmp_path):
    target = plan(tmp_path, dsn(pg_db), people([1]), table="people", write_mode="upsert", primary_key="id")
    assert target["state"] == "missing" and target["differences"] == []
    assert target["ddl"].startswith('CREATE TABLE "public"."people"')
    assert (
        target["effect"]
        == "create the table, then insert new rows and update changed ones on (id) in one transaction"
    )
    assert rows(pg_db, "SELECT to_regclass('public.people')") == [(None,)]

    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    target = plan(tmp_path, dsn(pg_db), people([1]), table="people", write_mode="replace")
    assert (target["state"], target["ddl"], target["channel"]) == ("compatible", None, "sql_copy")
    assert target["effect"].startswith("delete every row, then insert")

    target = plan(tmp_path, dsn(pg_db), people([1]).append_column("x", pa.array([1])), table="people")
    assert target["state"] == "incompatible" and target["differences"] == ["not in the table: x"]
    target = plan(tmp_path, dsn(pg_db), people([1]), table="people", schema="ghost")
    assert target["state"] == "incompatible" and target["differences"] == ['schema "ghost" does not exist']
    assert rows(pg_db, "SELECT count(*) FROM people") == [(0,)]


def test_per_pr_schema_is_created_with_the_table_in_the_load_transaction(pg_db, tmp_path):
    target = plan(tmp_path, dsn(pg_db), people([1]), create_schema=True, table="people", schema="osiris_pr_7")
    assert target["state"] == "missing"
    assert target["ddl"].startswith(
        'CREATE SCHEMA IF NOT EXISTS "osiris_pr_7";\nCREATE TABLE "osiris_pr_7"."people"'
    )
    assert rows(pg_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'osiris_pr_7'") == [(0,)]

    run = Run(tmp_path, dsn(pg_db))
    run.ctx.create_schema = True
    step = {"id": "w", "component": "supabase.writer", "mode": "write"}
    step["config"] = {
        **_defaults(supabase_writer.SPEC),
        "table": "people",
        "schema": "osiris_pr_7",
        "primary_key": "id",
    }
    bad = people([1, 1])  # duplicate key: the whole transaction, schema included, rolls back
    with pytest.raises(StepError, match="duplicate key"):
        supabase_writer.run(step, {"x": bad}, run.ctx)
    assert rows(pg_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'osiris_pr_7'") == [(0,)]
    supabase_writer.run(step, {"x": people([1, 2])}, run.ctx)
    supabase_writer.run(step, {"x": people([3])}, run.ctx)  # the schema exists now: IF NOT EXISTS
    assert rows(pg_db, "SELECT count(*) FROM osiris_pr_7.people") == [(3,)]


def test_plan_over_rest(pg_db, rest, tmp_path):
    target = plan(tmp_path, rest_conn(rest), people([1]), table="people", primary_key="id")
    assert target["state"] == "incompatible" and "add pg_dsn" in target["differences"][0]
    assert target["ddl"].startswith('CREATE TABLE "public"."people"')
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text)")
    target = plan(
        tmp_path, rest_conn(rest), people([1]), table="people", write_mode="upsert", primary_key="id"
    )
    assert target["state"] == "incompatible" and target["differences"] == ["not in the table: amount"]
    assert target["effect"].endswith("over REST in batches, not atomic")
    assert {r[0] for r in rest.requests} == {"GET"}


def test_extractor_plan_reads_only_the_columns(pg_db, rest, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE src (id int, amount numeric(10,3))",
        "INSERT INTO src SELECT g, g FROM generate_series(1, 10) g",
    )
    for connection in (dsn(pg_db), rest_conn(rest)):
        run = Run(tmp_path, connection)
        step = {"id": "r", "component": "supabase.extractor", "mode": "extract"}
        step["config"] = {**_defaults(supabase_extractor.SPEC), "table": "src", "select": "id, amount"}
        table = supabase_extractor.plan(step, {}, run.ctx)
        assert table.num_rows == 0 and table.column_names == ["id", "amount"]
    assert table.schema.field("id").type == pa.string()  # REST knows no types without rows
    table = supabase_extractor.plan(step, {}, Run(tmp_path, dsn(pg_db)).ctx)
    assert table.schema.field("amount").type == pa.decimal128(10, 3)


# --- extractor over SQL -------------------------------------------------------------------------------------


def test_extractor_reads_exact_types_and_all_rows_without_limit(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE src (id int PRIMARY KEY, amount numeric(12,2), big numeric, doc jsonb, u uuid, "
        "at timestamptz, day date, flag boolean, tags text[], label varchar(5))",
        "INSERT INTO src SELECT g, g / 100.0, g * 1000000000000, jsonb_build_object('g', g), "
        "md5(g::text)::uuid, '2024-01-01 00:00+00'::timestamptz + g * interval '1 hour', "
        "DATE '2024-01-01' + g, g % 2 = 0, ARRAY['a', g::text], 'l' || (g % 10) "
        "FROM generate_series(1, 2500) g",
    )
    table, run = read(tmp_path, dsn(pg_db), table="src")
    assert table.num_rows == 2500  # the SPEC's old default of 1000 does not cap a SQL read
    assert run.event("extract.complete") == {
        "table": "src",
        "schema": "public",
        "rows_read": 2500,
        "channel_used": "sql_copy",
    }
    types = {f.name: f.type for f in table.schema}
    assert types["id"] == pa.int32()
    assert types["amount"] == pa.decimal128(12, 2)
    assert types["big"] == pa.string() and table.schema.field("big").metadata == {b"osiris.type": b"numeric"}
    assert table.schema.field("doc").metadata == {b"osiris.type": b"json"}
    assert table.schema.field("u").metadata == {b"osiris.type": b"uuid"}
    assert types["at"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32() and types["flag"] == pa.bool_()
    assert pa.types.is_list(types["tags"])
    row = table.filter(pa.compute.equal(table["id"], 7)).to_pylist()[0]
    assert row["amount"] == Decimal("0.07") and row["big"] == "7000000000000"
    assert row["tags"] == ["a", "7"] and row["label"] == "l7"


def test_extractor_select_filter_order_limit_offset(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE src (id int, grp text, day date, note text)",
        "INSERT INTO src SELECT g, CASE WHEN g % 3 = 0 THEN 'x' ELSE 'y' END, DATE '2024-01-01' + g % 2, "
        "CASE WHEN g > 25 THEN NULL ELSE 'n' END FROM generate_series(1, 30) g",
    )
    table, _ = read(
        tmp_path,
        dsn(pg_db),
        table="src",
        select="id, grp",
        filter={"grp": "x", "day": "2024-01-01"},
        order="id.desc",
        limit=3,
        offset=1,
    )
    assert table.column_names == ["id", "grp"]
    assert table.to_pylist() == [{"id": 24, "grp": "x"}, {"id": 18, "grp": "x"}, {"id": 12, "grp": "x"}]
    table, _ = read(tmp_path, dsn(pg_db), table="src", select="id", filter={"note": None}, order="id ASC")
    assert table["id"].to_pylist() == [26, 27, 28, 29, 30]
    with pytest.raises(StepError, match=r"column\(s\) nope not in table"):
        read(tmp_path, dsn(pg_db), table="src", select="id, nope")
    with pytest.raises(StepError, match=r'table "public"\."ghost" does not exist'):
        read(tmp_path, dsn(pg_db), table="ghost")
    with pytest.raises(StepError, match="invalid input syntax for type integer"):
        read(tmp_path, dsn(pg_db), table="src", filter={"id": "abc"})


def test_round_trip_keeps_json_uuid_numeric_and_decimals(pg_db, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE src (id bigint PRIMARY KEY, amount numeric(12,2), big numeric, doc jsonb, u uuid)",
        "INSERT INTO src VALUES (1, 1.10, 123456789012345678901234567890.5, '{\"a\": [1]}', "
        "'8f5b7a56-8a3b-4c7e-9d3c-0e1f2a3b4c5d')",
    )
    table, _ = read(tmp_path, dsn(pg_db), table="src")
    run = write(tmp_path, dsn(pg_db), table, table="copy", primary_key="id")
    assert "NUMERIC(12,2)" in run.event("table.ddl_planned")["sql"]
    assert rows(
        pg_db,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'copy'::regclass "
        "AND attnum > 0 ORDER BY attnum",
    ) == [("bigint",), ("numeric(12,2)",), ("numeric",), ("jsonb",), ("uuid",)]
    assert rows(pg_db, "SELECT * FROM copy") == rows(pg_db, "SELECT * FROM src")


# --- REST channel (PostgREST stand-in on the same database) -------------------------------------------------


@pytest.fixture
def rest(pg_db):
    server = PostgrestServer(pg_db.pg_dsn, KEY, schemas=("public", "sales")).start()
    try:
        yield server
    finally:
        server.stop()


def test_rest_without_a_count_says_rows_written_was_not_measured(pg_db, rest, tmp_path):
    """Without a Content-Range total the server never said how many rows it wrote: no number is made up
    from the input's count."""
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    rest.exact_counts = False
    run = write(tmp_path, rest_conn(rest), people(range(1, 6)), table="people", batch_size=2)
    done = run.event("write.complete")
    assert (done["rows_in"], done["rows_written"], done["rows_written_measured"]) == (5, None, False)
    assert rows(pg_db, "SELECT count(*) FROM people") == [(5,)]


def rest_conn(server, key=KEY) -> dict:
    return {"url": server.url, "service_role_key": key}


def test_rest_append_in_batches_counts_rows_and_says_it_is_not_atomic(pg_db, rest, tmp_path):
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    run = write(tmp_path, rest_conn(rest), people(range(1, 6)), table="people", batch_size=2)
    assert run.event("write.complete") == {
        "table": "people",
        "schema": "public",
        "mode": "append",
        "rows_in": 5,
        "rows_written": 5,
        "rows_written_measured": True,
        "channel_used": "rest",
        "atomic": False,
    }
    posts = [r for r in rest.requests if r[0] == "POST"]
    assert len(posts) == 3
    assert all("return=minimal" in r[2]["Prefer"] for r in posts)
    assert all("Content-Profile" not in r[2] for r in posts)
    assert rows(pg_db, "SELECT count(*), sum(amount) FROM people") == [(5, Decimal("7.50"))]


def test_rest_upsert_with_merge_duplicates_and_a_composite_key(pg_db, rest, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE scores (team text, day date, points int, PRIMARY KEY (team, day))",
        "INSERT INTO scores VALUES ('a', '2024-01-01', 1), ('b', '2024-01-01', 3)",
    )
    data = pa.table(
        {"team": ["a", "b"], "day": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)]), "points": [10, 4]}
    )
    run = write(
        tmp_path, rest_conn(rest), data, table="scores", write_mode="upsert", primary_key=["team", "day"]
    )
    assert run.event("write.complete")["rows_written"] == 2
    post = next(r for r in rest.requests if r[0] == "POST")
    assert "on_conflict=team%2Cday" in post[1] or "on_conflict=team,day" in post[1]
    assert "resolution=merge-duplicates" in post[2]["Prefer"]
    assert rows(pg_db, "SELECT team, day::text, points FROM scores ORDER BY 1, 2") == [
        ("a", "2024-01-01", 10),
        ("b", "2024-01-01", 3),
        ("b", "2024-01-02", 4),
    ]


def test_rest_replace_deletes_then_inserts(pg_db, rest, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))",
        "INSERT INTO people SELECT g, 'old', 1 FROM generate_series(1, 10) g",
    )
    run = write(
        tmp_path, rest_conn(rest), people([3, 40]), table="people", write_mode="replace", primary_key="id"
    )
    complete = run.event("write.complete")
    assert complete["rows_written"] == 2 and complete["rows_deleted"] == 10 and complete["atomic"] is False
    assert rows(pg_db, "SELECT id, name FROM people ORDER BY id") == [(3, "n3"), (40, "n40")]
    delete = next(r for r in rest.requests if r[0] == "DELETE")
    assert "id=not.is.null" in delete[1]
    with pytest.raises(StepError, match="needs primary_key"):
        write(tmp_path, rest_conn(rest), people([1]), table="people", write_mode="replace")


def test_rest_retries_after_a_503_and_gives_up_after_retries(pg_db, rest, tmp_path):
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY, name text, amount numeric(12,2))")
    rest.fail_next(1, 503)
    run = write(tmp_path, rest_conn(rest), people([1, 2]), table="people")
    assert run.event("rest.retry")["reason"] == "503"
    assert run.event("write.complete")["rows_written"] == 2
    assert run.event("rest.retry")["delay_s"] == 0.5  # exponential backoff starts at 0.5 s
    rest.fail_next(3, 429, retry_after="0")
    run = write(tmp_path, rest_conn(rest), people([3]), table="people", retries=3)
    retries = [f for e, f in run.events if e == "rest.retry"]
    assert [(r["attempt"], r["reason"], r["delay_s"]) for r in retries] == [
        (1, "429", 0),
        (2, "429", 0),
        (3, "429", 0),
    ]
    assert rows(pg_db, "SELECT count(*) FROM people") == [(3,)]
    rest.fail_next(2, 503)
    with pytest.raises(StepError, match="HTTP 503"):
        write(tmp_path, rest_conn(rest), people([4]), table="people", retries=1)


def test_rest_missing_table_fails_naming_pg_dsn_and_plans_the_ddl(pg_db, rest, tmp_path):
    with pytest.raises(StepError) as err:
        write(tmp_path, rest_conn(rest), people([1]), table="new_people", primary_key="id")
    assert "does not exist" in err.value.message and "no rows were written" in err.value.message
    assert "pg_dsn" in err.value.hint
    artifacts = sorted(tmp_path.glob("artifacts_*"))[-1]
    assert 'CREATE TABLE "public"."new_people"' in (artifacts / "ddl.sql").read_text()
    assert rows(pg_db, "SELECT to_regclass('public.new_people')") == [(None,)]
    with pytest.raises(StepError, match="create_if_missing is false"):
        write(tmp_path, rest_conn(rest), people([1]), table="new_people", create_if_missing=False)


def test_rest_missing_table_emits_ddl_planned_not_executed(pg_db, rest, tmp_path):
    run = Run(tmp_path, rest_conn(rest))
    step = {
        "id": "w",
        "component": "supabase.writer",
        "mode": "write",
        "config": {**_defaults(supabase_writer.SPEC), "table": "t2"},
    }
    with pytest.raises(StepError):
        supabase_writer.run(step, {"x": people([1])}, run.ctx)
    planned = run.event("table.ddl_planned")
    assert (
        planned["executed"] is False and planned["channel"] is None and planned["reason"] == "no SQL channel"
    )
    assert "table.ddl_executed" not in run.names() and "write.complete" not in run.names()


def test_rest_bad_key_is_an_auth_error_not_a_missing_table(pg_db, rest, tmp_path):
    with pytest.raises(StepError) as err:
        write(tmp_path, rest_conn(rest, key="wrong-key-0123456789abcdef"), people([1]), table="people")
    assert "HTTP 401" in err.value.message and "API key" in err.value.hint
    assert "ddl" not in " ".join(p.name for p in tmp_path.rglob("*"))


def test_rest_missing_columns_are_listed_before_writing(pg_db, rest, tmp_path):
    pg_execute(pg_db, "CREATE TABLE people (id bigint PRIMARY KEY)")
    with pytest.raises(StepError) as err:
        write(tmp_path, rest_conn(rest), people([1]), table="people")
    assert "not in the table: name, amount" in err.value.message
    assert rows(pg_db, "SELECT count(*) FROM people") == [(0,)]


def test_rest_non_public_schema_and_json_safe_values(pg_db, rest, tmp_path):
    pg_execute(
        pg_db,
        "CREATE SCHEMA sales",
        "CREATE TABLE sales.things (id bigint PRIMARY KEY, amount numeric(30,10), raw bytea, at timestamptz, "
        "ts timestamp, doc jsonb, f float8, tags text[])",
    )
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("amount", pa.decimal128(30, 10)),
            ("raw", pa.binary()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("ts", pa.timestamp("ns")),
            json_field("doc"),
            ("f", pa.float64()),
            ("tags", pa.list_(pa.string())),
        ]
    )
    data = pa.table(
        [
            [1, 2],
            [Decimal("12345678901234567890.0123456789"), None],
            [b"\x00\x01\xfe", None],
            [dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), None],
            [dt.datetime(2024, 1, 2, 3, 4, 5, 6), None],
            ['{"k": [1, "two"]}', None],
            [float("inf"), float("nan")],
            [["a", "b"], None],
        ],
        schema=schema,
    )
    run = write(tmp_path, rest_conn(rest), data, table="things", schema="sales")
    assert run.event("write.complete")["schema"] == "sales"
    assert all(r[2].get("Content-Profile") == "sales" for r in rest.requests if r[0] == "POST")
    assert all(r[2].get("Accept-Profile") == "sales" for r in rest.requests if r[0] == "GET")
    assert rows(pg_db, "SELECT amount, raw, at, ts, doc, f::text, tags FROM sales.things WHERE id = 1") == [
        (
            Decimal("12345678901234567890.0123456789"),
            b"\x00\x01\xfe",
            dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 2, 3, 4, 5, 6),
            {"k": [1, "two"]},
            "Infinity",
            ["a", "b"],
        )
    ]
    assert rows(pg_db, "SELECT f::text FROM sales.things WHERE id = 2") == [("NaN",)]
    with pytest.raises(StepError, match="PGRST106"):
        write(tmp_path, rest_conn(rest), data, table="things", schema="hidden")


def test_rest_extractor_pages_through_every_row(pg_db, rest, tmp_path):
    pg_execute(
        pg_db,
        "CREATE TABLE src (id int PRIMARY KEY, grp text, doc jsonb)",
        "INSERT INTO src SELECT g, CASE WHEN g % 2 = 0 THEN 'even' ELSE 'odd' END, "
        "jsonb_build_object('g', g) "
        "FROM generate_series(1, 2500) g",
    )
    table, run = read(tmp_path, rest_conn(rest), table="src", order="id")
    assert table.num_rows == 2500 and table["id"].to_pylist() == list(range(1, 2501))
    assert run.event("extract.complete")["channel_used"] == "rest"
    gets = [r[1] for r in rest.requests if r[0] == "GET"]
    assert len(gets) == 4 and all("limit=1000" in g for g in gets)  # 3 pages + the empty one
    assert table.schema.field("doc").metadata == {b"osiris.type": b"json"}

    rest.max_rows = 300  # a server cap below the page size loses nothing
    table, _ = read(tmp_path, rest_conn(rest), table="src", order="id.desc", filter={"grp": "even"})
    assert table.num_rows == 1250 and table["id"][0].as_py() == 2500

    table, _ = read(tmp_path, rest_conn(rest), table="src", select="id", order="id", limit=5, offset=10)
    assert table.to_pylist() == [{"id": i} for i in range(11, 16)]

    with pytest.raises(StepError, match=r'"public"\."ghost" does not exist'):
        read(tmp_path, rest_conn(rest), table="ghost")
