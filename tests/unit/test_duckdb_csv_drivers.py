"""duckdb.processor, filesystem.csv_extractor and filesystem.csv_writer, run for real on files in tmp_path.

The writer's tests compare exact bytes; the reader's compare the Arrow table it returns, types included.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import lzma
import zipfile
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osiris_drivers import csv_extractor, csv_writer, duckdb_processor
from osiris_drivers._common import StepContext, StepError, reader


def _defaults(module) -> dict:
    return {k: v["default"] for k, v in module.SPEC["config"]["properties"].items() if "default" in v}


def _ctx(base: Path, connection: dict | None = None, events: list | None = None) -> StepContext:
    artifacts = base / "_artifacts"
    artifacts.mkdir(exist_ok=True)
    sink = events if events is not None else []
    return StepContext(
        step_id="s",
        connection=connection,
        artifacts_dir=artifacts,
        base_dir=base,
        emit=lambda event, **fields: sink.append((event, fields)),
    )


def sql(query: str, inputs: dict, tmp_path: Path) -> pa.Table:
    step = {
        "id": "transform",
        "component": "duckdb.processor",
        "mode": "transform",
        "config": {"query": query},
    }
    return duckdb_processor.run(step, streams(inputs), _ctx(tmp_path)).read_all()


def streams(inputs: dict) -> dict:
    """The inputs as the worker hands them over: one reader per upstream table, under each of its names."""
    readers = {id(table): reader(table) for table in inputs.values()}
    return {name: readers[id(table)] for name, table in inputs.items()}


def read(tmp_path: Path, connection: dict | None = None, **config) -> pa.Table:
    step = {
        "id": "extract",
        "component": "filesystem.csv_extractor",
        "mode": "extract",
        "config": {**_defaults(csv_extractor), **config},
    }
    return reader(csv_extractor.run(step, {}, _ctx(tmp_path, connection))).read_all()


def write(tmp_path: Path, table: pa.Table, events: list | None = None, connection=None, **config) -> None:
    step = {
        "id": "write",
        "component": "filesystem.csv_writer",
        "mode": "write",
        "config": {**_defaults(csv_writer), **config},
    }
    assert (
        csv_writer.run(
            step, streams({"df_transform": table, "transform": table}), _ctx(tmp_path, connection, events)
        )
        is None
    )


# --- duckdb.processor ---------------------------------------------------------------------------------


def test_query_joins_several_inputs_by_their_df_names(tmp_path):
    users = pa.table({"id": [1, 2], "name": ["ann", "bob"]})
    orders = pa.table({"user_id": [1, 1, 2], "amount": [10, 20, 5]})
    out = sql(
        "SELECT u.name, sum(o.amount) AS total FROM df_users u JOIN df_orders o ON o.user_id = u.id "
        "GROUP BY u.name ORDER BY u.name",
        {"df_users": users, "users": users, "df_orders": orders, "orders": orders},
        tmp_path,
    )
    assert out.to_pylist() == [{"name": "ann", "total": 30}, {"name": "bob", "total": 5}]


def test_single_input_is_visible_as_input_df_and_under_a_quoted_hyphenated_id(tmp_path):
    table = pa.table({"x": [1, 2, 3]})
    inputs = {"df_extract_users": table, "extract-users": table, "input_df": table}
    assert sql("SELECT sum(x) AS s FROM input_df", inputs, tmp_path).to_pylist() == [{"s": 6}]
    assert sql('SELECT count(*) AS n FROM "extract-users"', inputs, tmp_path).to_pylist() == [{"n": 3}]


def test_decimals_and_timestamps_stay_exact(tmp_path):
    money = [Decimal("12345678901234567890.1234567891"), Decimal("0.0000000001"), None]
    moment = dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=dt.UTC)
    table = pa.table(
        {
            "amount": pa.array(money, pa.decimal128(38, 10)),
            "ts": pa.array([moment] * 3, pa.timestamp("us", tz="UTC")),
            "day": pa.array([dt.date(2024, 2, 29)] * 3),
        }
    )
    out = sql("SELECT amount, amount * 2 AS doubled, ts, day FROM input_df", {"input_df": table}, tmp_path)
    assert out.schema.field("amount").type == pa.decimal128(38, 10)
    assert pa.types.is_decimal(out.schema.field("doubled").type)
    assert out.column("amount").to_pylist() == money
    assert out.column("doubled").to_pylist() == [
        Decimal("24691357802469135780.2469135782"),
        Decimal("0.0000000002"),
        None,
    ]
    assert out.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert out.column("ts").to_pylist()[0] == moment
    assert out.schema.field("day").type == pa.date32()


def test_json_and_uuid_columns_leave_marked_for_the_writers(tmp_path):
    marked = pa.field("doc", pa.large_string(), metadata={"osiris.type": "json"})
    table = pa.table([pa.array(['{"a": [1, 2]}', None], pa.large_string()), pa.array([1, 2])],
                     schema=pa.schema([marked, ("n", pa.int64())]))  # fmt: skip
    out = sql(
        "SELECT doc, doc->>'$.a[0]' AS first, to_json({n: n}) AS built, uuid() AS id, n FROM input_df",
        {"input_df": table},
        tmp_path,
    )
    marks = {f.name: (f.metadata or {}).get(b"osiris.type") for f in out.schema}
    assert marks == {"doc": b"json", "first": None, "built": b"json", "id": b"uuid", "n": None}
    # The JSON text is passed on as it was, not re-serialised.
    assert out.column("doc").to_pylist() == ['{"a": [1, 2]}', None]
    assert out.column("first").to_pylist() == ["1", None]


def test_missing_table_names_the_tables_that_exist(tmp_path):
    table = pa.table({"x": [1]})
    with pytest.raises(StepError) as error:
        sql("SELECT * FROM df_extract_user", {"df_extract_users": table, "extract_users": table}, tmp_path)
    assert "Table with name df_extract_user does not exist" in error.value.message
    assert "df_extract_users, extract_users" in error.value.message
    assert "df_<step id>" in error.value.hint and "input_df" in error.value.hint


def test_missing_table_without_inputs_says_so(tmp_path):
    with pytest.raises(StepError) as error:
        sql("SELECT * FROM input_df", {}, tmp_path)
    assert "no inputs" in error.value.message and "needs" in error.value.hint


def test_query_without_inputs_and_with_setup_statements(tmp_path):
    assert sql("SELECT 42 AS answer", {}, tmp_path).to_pylist() == [{"answer": 42}]
    out = sql(
        "CREATE TEMP TABLE t AS SELECT range AS i FROM range(3); SELECT sum(i) AS s FROM t", {}, tmp_path
    )
    assert out.to_pylist() == [{"s": 3}]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("CREATE TABLE t (a INT)", "ends with a CREATE statement"),
        ("  ;  -- nothing", "holds no SQL statement"),
        ("SELEC 1", "Parser Error"),
        ("SELECT nope FROM input_df", "Binder Error"),
    ],
)
def test_query_errors_carry_duckdbs_message(tmp_path, query, expected):
    with pytest.raises(StepError) as error:
        sql(query, {"input_df": pa.table({"x": [1]})}, tmp_path)
    assert expected in error.value.message
    assert error.value.hint


# --- filesystem.csv_writer -----------------------------------------------------------------------------

SAMPLE = pa.table(
    {
        "zeta": ["plain", "a,b", 'say "hi"', None, "", "two\nlines"],
        "alpha": [1, 2, None, 4, 5, 6],
        "flag": [True, False, None, True, True, True],
        "price": pa.array([Decimal("1.10")] * 6, pa.decimal128(10, 2)),
    }
)


def test_write_minimal_keeps_column_order_and_quotes_only_when_needed(tmp_path):
    events: list = []
    write(tmp_path, SAMPLE, events, path="out/data.csv")
    assert (tmp_path / "out/data.csv").read_bytes() == (
        b"zeta,alpha,flag,price\n"
        b"plain,1,true,1.10\n"
        b'"a,b",2,false,1.10\n'
        b'"say ""hi""",,,1.10\n'
        b",4,true,1.10\n"
        b'"",5,true,1.10\n'
        b'"two\nlines",6,true,1.10\n'
    )
    assert events == [
        (
            "write.complete",
            {
                "table": "out/data.csv",
                "schema": None,
                "mode": "replace",
                "rows_written": 6,
                "channel_used": "file",
                "path": "out/data.csv",
            },
        )
    ]


def test_write_quoting_all_and_nonnumeric(tmp_path):
    table = SAMPLE.slice(0, 4)
    write(tmp_path, table, path="all.csv", quoting="all")
    assert (tmp_path / "all.csv").read_bytes() == (
        b'"zeta","alpha","flag","price"\n'
        b'"plain","1","true","1.10"\n'
        b'"a,b","2","false","1.10"\n'
        b'"say ""hi""",,,"1.10"\n'
        b',"4","true","1.10"\n'
    )
    write(tmp_path, table, path="nonnumeric.csv", quoting="nonnumeric")
    assert (tmp_path / "nonnumeric.csv").read_bytes() == (
        b'"zeta","alpha","flag","price"\n'
        b'"plain",1,"true",1.10\n'
        b'"a,b",2,"false",1.10\n'
        b'"say ""hi""",,,1.10\n'
        b',4,"true",1.10\n'
    )


def test_write_crlf_latin1_semicolon_without_header(tmp_path):
    table = pa.table({"name": ["José", "a;b", "x\ny"], "n": [1, 2, 3]})
    write(tmp_path, table, path="x.csv", newline="crlf", encoding="latin-1", delimiter=";", header=False)
    # Line ends become CRLF; a line break inside a value stays as it is.
    assert (tmp_path / "x.csv").read_bytes() == 'José;1\r\n"a;b";2\r\n"x\ny";3\r\n'.encode("latin-1")


def test_write_utf16_has_one_byte_order_mark(tmp_path):
    table = pa.table({"a": ["é" * 10] * 30_000})
    write(tmp_path, table, path="x.csv", encoding="utf-16", chunk_size=10)
    data = (tmp_path / "x.csv").read_bytes()
    assert data.decode("utf-16") == "a\n" + ("é" * 10 + "\n") * 30_000
    assert data.count("\ufeff".encode("utf-16-le")) == 1


def test_write_tab_delimited_and_a_delimiter_that_numbers_contain(tmp_path):
    table = pa.table({"a": ["x\ty", "z"], "b": [1.5, 2.0]})
    write(tmp_path, table, path="t.tsv", delimiter="\t")
    assert (tmp_path / "t.tsv").read_bytes() == b'a\tb\n"x\ty"\t1.5\nz\t2\n'
    write(tmp_path, table, path="dot.csv", delimiter=".")
    assert (tmp_path / "dot.csv").read_bytes() == b'a.b\nx\ty."1.5"\nz.2\n'


def test_failed_write_leaves_the_previous_file_untouched(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(b"old,content\n")
    with pytest.raises(StepError) as error:
        write(tmp_path, pa.table({"a": ["fine"] * 50_000 + ["café"]}), path="out.csv", encoding="ascii")
    assert "ascii" in error.value.message and "utf-8" in error.value.hint
    assert target.read_bytes() == b"old,content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_artifacts", "out.csv"]


def test_write_replaces_an_existing_file_keeping_its_permissions(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(b"old\n")
    target.chmod(0o640)
    write(tmp_path, pa.table({"a": [1]}), path="out.csv")
    assert target.read_bytes() == b"a\n1\n"
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_dictionary_columns_and_refuse_a_folder_as_target(tmp_path):
    table = pa.table({"c": pa.array(["x", "y,z", "x"]).dictionary_encode()})
    write(tmp_path, table, path="d.csv")
    assert (tmp_path / "d.csv").read_bytes() == b'c\nx\n"y,z"\nx\n'
    (tmp_path / "folder").mkdir()
    with pytest.raises(StepError, match="is a folder"):
        write(tmp_path, table, path="folder")


def test_create_dirs(tmp_path):
    with pytest.raises(StepError) as error:
        write(tmp_path, SAMPLE, path="missing/dir/x.csv", create_dirs=False)
    assert "missing/dir/x.csv" in error.value.message and "create_dirs" in error.value.hint
    write(tmp_path, SAMPLE, path="missing/dir/x.csv", create_dirs=True)
    assert (tmp_path / "missing/dir/x.csv").is_file()


def test_writer_needs_exactly_one_input(tmp_path):
    step = {"id": "write", "config": {**_defaults(csv_writer), "path": "x.csv"}}
    with pytest.raises(StepError, match="received 2"):
        csv_writer.run(step, {"df_a": pa.table({"a": [1]}), "df_b": pa.table({"b": [1]})}, _ctx(tmp_path))
    with pytest.raises(StepError, match="received 0"):
        csv_writer.run(step, {}, _ctx(tmp_path))


def test_write_refuses_columns_csv_cannot_hold(tmp_path):
    with pytest.raises(StepError) as error:
        write(tmp_path, pa.table({"tags": [["a", "b"]]}), path="x.csv")
    assert "Column 'tags' (list<item: string>)" in error.value.message and "CAST" in error.value.hint
    assert not (tmp_path / "x.csv").exists()


# --- filesystem.csv_extractor --------------------------------------------------------------------------


def test_round_trip_keeps_values_types_and_order(tmp_path):
    write(tmp_path, SAMPLE, path="data.csv")
    table = read(tmp_path, path="data.csv", dtype={"price": "string"})
    assert table.schema.names == ["zeta", "alpha", "flag", "price"]
    assert table.schema.field("alpha").type == pa.int64()
    assert table.schema.field("flag").type == pa.bool_()
    # An empty string reads back as null, as pandas reads it.
    assert table.column("zeta").to_pylist() == ["plain", "a,b", 'say "hi"', None, None, "two\nlines"]
    assert table.column("price").to_pylist() == ["1.10"] * 6


@pytest.mark.parametrize(
    ("options", "lines"),
    [
        ({"delimiter": ";"}, ["id;name", "1;a,b"]),
        ({"delimiter": "\t"}, ["id\tname", "1\ta,b"]),
        ({"newline": "crlf"}, ["id,name", '1,"a,b"']),
        ({"quoting": "all"}, ['"id","name"', '"1","a,b"']),
        ({"quoting": "nonnumeric"}, ['"id","name"', '1,"a,b"']),
    ],
)
def test_round_trip_with_writer_options(tmp_path, options, lines):
    table = pa.table({"id": [1, 2], "name": ["a,b", "é"]})
    write(tmp_path, table, path="x.csv", **options)
    eol = "\r\n" if options.get("newline") == "crlf" else "\n"
    assert (tmp_path / "x.csv").read_bytes().decode().startswith(eol.join(lines) + eol)
    assert read(tmp_path, path="x.csv", delimiter=options.get("delimiter", ",")).equals(table)


def test_read_latin1_utf16_and_refuse_a_wrong_encoding(tmp_path):
    (tmp_path / "latin.csv").write_bytes("name,n\nJosé,1\n".encode("latin-1"))
    (tmp_path / "wide.csv").write_bytes("name,n\nJosé,1\n".encode("utf-16"))
    expected = pa.table({"name": ["José"], "n": [1]})
    assert read(tmp_path, path="latin.csv", encoding="latin-1").equals(expected)
    assert read(tmp_path, path="wide.csv", encoding="utf-16").equals(expected)
    with pytest.raises(StepError) as error:
        read(tmp_path, path="latin.csv")
    assert "'name' of 'latin.csv' is not valid utf-8" in error.value.message
    assert "latin-1" in error.value.hint
    with pytest.raises(StepError, match="not valid ascii"):
        read(tmp_path, path="latin.csv", encoding="ascii")


def test_read_header_false_and_header_row_index(tmp_path):
    (tmp_path / "x.csv").write_text("title line\na,b\n1,2\n")
    assert read(tmp_path, path="x.csv", header=1).to_pylist() == [{"a": 1, "b": 2}]
    assert read(tmp_path, path="x.csv", header=False, skip_rows=2).to_pylist() == [{"0": 1, "1": 2}]
    assert read(tmp_path, path="x.csv", header=False, skip_rows=1, columns=["1"]).column("1").to_pylist() == [
        "b",
        "2",
    ]


def test_read_blank_and_repeated_header_names_like_pandas(tmp_path):
    (tmp_path / "x.csv").write_text("a,a,,b\n1,2,3,4\n")
    assert read(tmp_path, path="x.csv").schema.names == ["a", "a.1", "Unnamed: 2", "b"]


def test_read_columns_subset_in_given_order(tmp_path):
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    assert read(tmp_path, path="x.csv", columns=["c", "a"]).to_pylist() == [{"c": 3, "a": 1}]
    with pytest.raises(StepError) as error:
        read(tmp_path, path="x.csv", columns=["a", "nope"])
    assert "'nope'" in error.value.message and "a, b, c" in error.value.hint


def test_read_skip_rows_limit_na_values_and_blank_lines(tmp_path):
    (tmp_path / "x.csv").write_text("generated by a tool\nid,v\n1,x\n\n2,MISSING\n3,NA\n4,y\n")
    table = read(tmp_path, path="x.csv", skip_rows=1, na_values=["MISSING"], limit=3)
    assert table.to_pylist() == [{"id": 1, "v": "x"}, {"id": 2, "v": None}, {"id": 3, "v": None}]
    kept = read(tmp_path, path="x.csv", skip_rows=1, skip_blank_lines=False)
    assert kept.column("id").to_pylist() == [1, None, 2, 3, 4]


def test_read_dtype(tmp_path):
    (tmp_path / "x.csv").write_text("zip,n,ok,day,when\n01234,1,yes,2024-01-31,2024-01-31 10:00:00\n")
    table = read(
        tmp_path,
        path="x.csv",
        dtype={"zip": "str", "n": "float32", "ok": "category", "day": "date", "when": "datetime64[ns]"},
    )
    assert table.schema == pa.schema(
        [("zip", pa.string()), ("n", pa.float32()), ("ok", pa.string()), ("day", pa.date32()),
         ("when", pa.timestamp("ns"))]
    )  # fmt: skip
    assert table.column("zip").to_pylist() == ["01234"]
    with pytest.raises(StepError) as error:
        read(tmp_path, path="x.csv", dtype={"n": "complex128"})
    assert "complex128" in error.value.message and "int64" in error.value.hint


def test_value_that_does_not_fit_its_dtype(tmp_path):
    (tmp_path / "x.csv").write_text("id,v\n1,2\n2,two\n")
    with pytest.raises(StepError) as error:
        read(tmp_path, path="x.csv", dtype={"v": "int64"})
    assert "CSV conversion error to int64: invalid value 'two'" in error.value.message
    assert "dtype" in error.value.hint


def test_limit_larger_than_the_file(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n2\n")
    assert read(tmp_path, path="x.csv", limit=100).column("a").to_pylist() == [1, 2]


def test_read_parse_dates(tmp_path):
    (tmp_path / "x.csv").write_text("day,at,note\n2024-01-31,2024-01-31T10:00:00Z,x\n2024-02-01,,y\n")
    text = read(tmp_path, path="x.csv")
    assert text.column("day").to_pylist() == ["2024-01-31", "2024-02-01"]
    assert text.schema.field("at").type == pa.string()
    inferred = read(tmp_path, path="x.csv", parse_dates=True)
    assert inferred.schema.field("day").type == pa.date32()
    assert inferred.schema.field("at").type == pa.timestamp("s", tz="UTC")
    listed = read(tmp_path, path="x.csv", parse_dates=["day"])
    assert listed.schema.field("day").type == pa.timestamp("us")
    assert listed.column("day").to_pylist()[0] == dt.datetime(2024, 1, 31)
    assert listed.schema.field("at").type == pa.string()
    with pytest.raises(StepError, match="parse_dates names 'nope'"):
        read(tmp_path, path="x.csv", parse_dates=["nope"])


def test_read_comment_lines(tmp_path):
    (tmp_path / "x.csv").write_bytes("# exported\nname;n\n# note\nJosé;1\n".encode("latin-1"))
    table = read(tmp_path, path="x.csv", comment="#", delimiter=";", encoding="latin-1")
    assert table.to_pylist() == [{"name": "José", "n": 1}]


@pytest.mark.parametrize(
    ("name", "opener"),
    [
        ("x.csv.gz", gzip.open),
        ("x.csv.bz2", bz2.open),
        ("x.csv.xz", lzma.open),
    ],
)
def test_read_compressed_by_extension_and_explicitly(tmp_path, name, opener):
    with opener(tmp_path / name, "wb") as f:
        f.write(b"a,b\n1,2\n")
    assert read(tmp_path, path=name).to_pylist() == [{"a": 1, "b": 2}]
    codec = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}[Path(name).suffix]
    (tmp_path / name).rename(tmp_path / "data.bin")
    assert read(tmp_path, path="data.bin", compression=codec).to_pylist() == [{"a": 1, "b": 2}]


def test_read_zip_with_one_member_and_refuse_several(tmp_path):
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("data.csv", "a\n1\n")
    assert read(tmp_path, path="one.zip").to_pylist() == [{"a": 1}]
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.csv", "a\n1\n")
        archive.writestr("b.csv", "a\n2\n")
    with pytest.raises(StepError, match="holds 2 files"):
        read(tmp_path, path="two.zip")


def test_read_wrong_compression_is_a_step_error(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(StepError, match=r"Could not read CSV file 'x\.csv'"):
        read(tmp_path, path="x.csv", compression="gzip")


def test_parse_error_names_the_row(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n3,4\n5,6,7\n")
    with pytest.raises(StepError) as error:
        read(tmp_path, path="x.csv")
    assert "Row #4: Expected 2 columns, got 3" in error.value.message
    assert "delimiter" in error.value.hint


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(StepError) as error:
        read(tmp_path, connection={"base_dir": "data"}, path="in/missing.csv")
    assert error.value.message == "CSV file 'in/missing.csv' not found in base_dir 'data'."
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StepError, match="Empty CSV file"):
        read(tmp_path, path="empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    assert read(tmp_path, path="header.csv").schema == pa.schema([("a", pa.string()), ("b", pa.string())])


def test_types_come_from_the_whole_file_even_past_the_first_block(tmp_path):
    rows = "".join(f"{i},\n" for i in range(300_000))  # about 2 MB: several blocks
    (tmp_path / "x.csv").write_text("n,late\n" + rows + "not a number,2024-01-31\n")
    table = read(tmp_path, path="x.csv", chunk_size=100)
    assert table.schema == pa.schema([("n", pa.string()), ("late", pa.string())])
    assert table.num_rows == 300_001
    limited = read(tmp_path, path="x.csv", chunk_size=100, limit=300_001)
    assert limited.column("n")[-1].as_py() == "not a number"


def test_quoted_line_breaks_across_blocks(tmp_path):
    table = pa.table({"text": ["line one\nline two, with comma"] * 60_000, "n": list(range(60_000))})
    write(tmp_path, table, path="x.csv")
    assert read(tmp_path, path="x.csv", chunk_size=100).equals(table)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(alphabet=st.sampled_from([*'ab ,;"\n\r\té€', "\U0001f600"]), min_size=1).filter(
            lambda s: s.strip() not in {"", "NA", "nan", "null"}
        ),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from(["minimal", "all", "nonnumeric"]),
    st.sampled_from(["lf", "crlf"]),
)
def test_any_text_survives_a_round_trip(tmp_path, values, delimiter, quoting, newline):
    table = pa.table({"text": values, "n": list(range(len(values)))})
    write(tmp_path, table, path="p.csv", delimiter=delimiter, quoting=quoting, newline=newline)
    assert read(tmp_path, path="p.csv", delimiter=delimiter, dtype={"text": "string"}).equals(table)


# --- paths ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../x.csv", "data/../../x.csv", "/etc/passwd", "link/passwd"])
def test_paths_outside_the_base_directory_are_refused(tmp_path, path):
    base = tmp_path / "project"
    base.mkdir()
    (base / "link").symlink_to("/etc")
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(StepError) as error:
        read(base, path=path)
    assert "outside the pipeline's folder" in error.value.message
    with pytest.raises(StepError, match="outside"):
        write(base, SAMPLE, path=path)
    assert (tmp_path / "x.csv").read_text() == "a\n1\n"


def test_symlinked_file_pointing_out_is_refused_and_one_pointing_in_is_fine(tmp_path):
    base = tmp_path / "project"
    (base / "data").mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("a\n1\n")
    (base / "data/real.csv").write_text("a\n2\n")
    (base / "out.csv").symlink_to(tmp_path / "secret.csv")
    (base / "in.csv").symlink_to(base / "data/real.csv")
    with pytest.raises(StepError, match="outside"):
        read(base, path="out.csv")
    with pytest.raises(StepError, match="outside"):
        write(base, SAMPLE, path="out.csv")
    assert (tmp_path / "secret.csv").read_text() == "a\n1\n"
    assert read(base, path="in.csv").to_pylist() == [{"a": 2}]


def test_connection_base_dir_confines_paths(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/x.csv").write_text("a\n1\n")
    (tmp_path / "top.csv").write_text("a\n1\n")
    connection = {"base_dir": "data"}
    assert read(tmp_path, connection=connection, path="x.csv").to_pylist() == [{"a": 1}]
    with pytest.raises(StepError, match="outside base_dir 'data'"):
        read(tmp_path, connection=connection, path="../top.csv")
    events: list = []
    write(tmp_path, SAMPLE, events, connection=connection, path="out/y.csv")
    assert (tmp_path / "data/out/y.csv").is_file()
    assert events[0][1]["path"] == "out/y.csv"


def test_absolute_path_inside_the_base_directory_is_allowed(tmp_path):
    (tmp_path / "x.csv").write_text("a\n1\n")
    assert read(tmp_path, path=str(tmp_path / "x.csv")).to_pylist() == [{"a": 1}]


def test_drivers_import_no_heavy_module():
    import subprocess
    import sys

    code = (
        "import sys, osiris_drivers.duckdb_processor, osiris_drivers.csv_extractor, "
        "osiris_drivers.csv_writer;"
        "print(sorted(m for m in ('duckdb', 'pyarrow', 'pandas', 'tempfile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_large_file_streams_in_blocks_with_the_whole_files_types(tmp_path):
    """Block by block, never whole in memory; a type only a later block reveals still wins (the file is
    then read whole, as before)."""
    lines = ["id,x,name"] + [f"{i},{i},n{i}" for i in range(200_000)]
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    step = {"id": "e", "component": "filesystem.csv_extractor", "mode": "extract"}
    step["config"] = {**_defaults(csv_extractor), "path": "big.csv"}
    stream = csv_extractor.run(step, {}, _ctx(tmp_path))
    assert isinstance(stream, pa.RecordBatchReader)
    batches = list(stream)
    assert len(batches) > 1 and sum(b.num_rows for b in batches) == 200_000
    assert stream.schema == pa.schema([("id", pa.int64()), ("x", pa.int64()), ("name", pa.string())])

    lines[-1] = "199999,2.5,"  # the last block holds a float: the column becomes float64, as pandas reads it
    lines[1:150_000] = [f"{i},{i}," for i in range(149_999)]  # and a column empty in the first block
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    table = read(tmp_path, path="big.csv")
    assert table.schema.field("x").type == pa.float64() and table.column("x")[-1].as_py() == 2.5
    assert (
        table.schema.field("name").type == pa.string() and table.column("name")[150_000].as_py() == "n150000"
    )
