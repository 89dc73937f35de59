"""Every validation rule: a failing case asserting code, line and column, and the passing case beside it.

Cases mutate one valid pipeline in the shape of the Osiris demo (MySQL → DuckDB → Supabase) by plain
text replacement, and the expected position is where the offending text sits in the mutated file, so a
case reads as "this change makes that code appear exactly there".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from osiris_action import components
from osiris_action.diagnostics import format_text
from osiris_action.pipelines import Checker

PIPELINE = """\
oml_version: "0.1.0"
name: movies-demo
description: Director statistics
steps:
  - id: extract-movies
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.db_movies"
      query: SELECT id, director, rating FROM movies
  - id: stats
    component: duckdb.processor
    mode: transform
    needs: [extract-movies]
    config:
      query: |
        SELECT director, count(*) AS n, avg(rating) AS r
        FROM df_extract_movies
        GROUP BY director
  - id: write-stats
    component: supabase.writer
    mode: write
    needs: [stats]
    config:
      connection: "@supabase.main"
      table: director_stats
      write_mode: replace
      primary_key: [director]
"""

CONNECTIONS = """\
connections:
  mysql:
    db_movies:
      default: true
      host: db
      database: movies
      user: ${MYSQL_USER}
      password: ${MYSQL_PASSWORD}
  supabase:
    main:
      default: true
      url: https://abc.supabase.co
      service_role_key: ${SUPABASE_SERVICE_ROLE_KEY}
  filesystem:
    local: {base_dir: ./data}
"""

CSV_WRITER = """\
  - id: to-csv
    component: filesystem.csv_writer
    mode: write
    needs: [stats]
    config:
      connection: "@filesystem.local"
      path: out.csv
      delimiter: ","
"""


def at(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based line and column of the nth occurrence of `needle` in `text`."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def check(tmp_path: Path, text: str, connections: str | None = CONNECTIONS):
    folder = tmp_path / "repo"
    folder.mkdir(exist_ok=True)
    pipeline = folder / "p.yaml"
    pipeline.write_text(text)
    conns = None
    if connections is not None:
        conns = folder / "osiris_connections.yaml"
        conns.write_text(connections)
    checker = Checker(str(conns) if conns else None)
    return checker.check(pipeline).diagnostics + checker.connection_diagnostics


def found(diags, code: str) -> list[tuple[int, int]]:
    return [(d.line, d.column) for d in diags if d.code == code]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)


def test_the_base_pipeline_is_clean(tmp_path):
    assert check(tmp_path, PIPELINE) == []
    assert check(tmp_path, PIPELINE + CSV_WRITER) == []


@dataclass
class Case:
    code: str
    old: str  # replaced in PIPELINE ...
    new: str  # ... by this
    needle: str  # where the finding must be: the first occurrence in the mutated text ...
    nth: int = 0  # ... or a later one
    severity: str = "error"
    connections: str | None = CONNECTIONS

    @property
    def text(self) -> str:
        assert self.old in PIPELINE + CSV_WRITER, self.old
        return (PIPELINE + CSV_WRITER).replace(self.old, self.new, 1)


S1 = "  - id: extract-movies\n"  # the first step, for inserting lines after it
W = "      table: director_stats\n"  # a line inside the writer's config

CASES = {
    # -- YAML ------------------------------------------------------------------------------------
    "yaml-syntax": Case("OML001", "mode: read", "mode: read: x", ": x"),
    "yaml-unclosed-flow": Case(
        "OML001", "needs: [stats]", "needs: [stats", ':\n      connection: "@supabase'
    ),
    "duplicate-key": Case("OML002", "    mode: read\n", "    mode: read\n    mode: read\n", "mode", nth=1),
    "duplicate-key-flow": Case("OML002", "[director]", "[director]\n      table: other", "table: other"),
    "two-documents": Case("OML003", 'oml_version: "0.1.0"', 'x: 1\n---\noml_version: "0.1.0"', "---"),
    "unknown-alias": Case("OML003", "table: director_stats", "table: *nope", "*nope"),
    "complex-key": Case("OML003", "table: director_stats", "? [a]\n      : b", "[a]"),
    # -- top level -------------------------------------------------------------------------------
    "missing-name": Case("OML011", "name: movies-demo\n", "", "oml_version"),
    "missing-version": Case("OML011", 'oml_version: "0.1.0"\n', "# about\n", "name"),
    "forbidden-key": Case("OML012", "description:", "version: 1\ndescription:", "version: 1"),
    "tasks-key": Case("OML012", "description:", "tasks: []\ndescription:", "tasks"),
    "version-not-string": Case("OML013", '"0.1.0"', "0.1", "0.1"),
    "version-newer-minor": Case("OML014", '"0.1.0"', '"0.2.0"', '"0.2.0"', severity="warning"),
    "version-major": Case("OML014", '"0.1.0"', '"1.0"', '"1.0"'),
    "name-not-string": Case("OML015", "name: movies-demo", "name: 42", "42"),
    "name-empty": Case("OML015", "name: movies-demo", 'name: ""', '""'),
    "name-convention": Case("OML016", "name: movies-demo", "name: Movies Demo", "Movies", severity="warning"),
    "steps-not-list": Case("OML017", PIPELINE[PIPELINE.index("steps:") :] + CSV_WRITER, "steps: {}\n", "{}"),
    "steps-empty": Case("OML017", PIPELINE[PIPELINE.index("steps:") :] + CSV_WRITER, "steps: []\n", "[]"),
    "unknown-top-key": Case(
        "OML018", "description:", "schedul: daily\ndescription:", "schedul", severity="warning"
    ),
    # -- steps -----------------------------------------------------------------------------------
    "step-not-mapping": Case("OML020", S1, "  - just-a-string\n" + S1, "just-a-string"),
    "step-missing-mode": Case("OML021", "    mode: read\n", "", "id: extract-movies"),
    "step-missing-id": Case("OML021", "  - id: stats\n    component:", "  - component:", "component: duckdb"),
    "step-missing-component": Case("OML021", "    component: mysql.extractor\n", "", "id: extract-movies"),
    "id-not-string": Case("OML022", "id: stats", "id: [stats]", "[stats]"),
    "id-empty": Case("OML022", "id: write-stats", 'id: ""', '""'),
    "duplicate-id": Case("OML023", "id: write-stats", "id: stats", "stats\n    component: supabase"),
    "component-not-string": Case("OML024", "component: duckdb.processor", "component: 7", "7"),
    "unknown-component": Case(
        "OML025", "component: mysql.extractor", "component: mysql.extractr", "mysql.extractr"
    ),
    "mode-not-string": Case("OML026", "mode: transform", "mode: {a: 1}", "{a: 1}"),
    "invalid-mode": Case("OML027", "mode: read", "mode: extract", "extract\n"),
    "incompatible-mode": Case("OML028", "mode: read", "mode: write", "write"),
    "unknown-step-key": Case(
        "OML029", "    mode: read\n", "    mode: read\n    retry: 3\n", "retry", severity="warning"
    ),
    # -- needs -----------------------------------------------------------------------------------
    "needs-not-list": Case("OML030", "needs: [stats]", "needs: stats", "stats\n    config:"),
    "dependency-not-string": Case("OML031", "needs: [stats]", "needs: [stats, 3]", "3]"),
    "unknown-dependency": Case("OML032", "needs: [stats]", "needs: [stat]", "stat]"),
    "self-dependency": Case("OML033", "needs: [extract-movies]", "needs: [stats]", "stats]"),
    "cycle": Case(
        "OML034", "    mode: read\n", "    mode: read\n    needs: [write-stats]\n", "[write-stats]"
    ),
    # -- config ----------------------------------------------------------------------------------
    "config-not-mapping": Case(
        "OML040",
        '    config:\n      connection: "@supabase',
        '    config: [x]\n    c:\n      connection: "@supabase',
        "[x]",
    ),
    "unknown-config-key": Case("OML041", "table: director_stats", "tabel: director_stats", "tabel"),
    "wrong-type": Case("OML042", W, W + '      batch_size: "100"\n', '"100"'),
    "out-of-range": Case("OML042", W, W + "      timeout: 1\n", "1\n"),
    "not-in-enum": Case("OML042", "write_mode: replace", "write_mode: replac", "replac"),
    "pattern": Case("OML042", W, W + "      url: http://x\n", "http://x"),
    "empty-string": Case("OML042", "table: director_stats", 'table: ""', '""'),
    "nested-item-type": Case("OML042", "primary_key: [director]", "primary_key: [director, 5]", "5]"),
    "missing-required": Case("OML043", W, "", "config", nth=2),
    "missing-required-no-config": Case(
        "OML043",
        PIPELINE[PIPELINE.index('    config:\n      connection: "@supabase') :],
        "",
        "id: write-stats",
    ),
    "table-and-query": Case(
        "OML044", "      query: SELECT id", "      table: movies\n      query: SELECT id", "query: SELECT"
    ),
    "neither-table-nor-query": Case(
        "OML044", "      query: SELECT id, director, rating FROM movies\n", "", "config"
    ),
    "primary-key-for-replace": Case("OML045", "      primary_key: [director]\n", "", "replace"),
    "forbidden-override": Case(
        "OML046", "      query: SELECT id", "      user: bob\n      query: SELECT id", "user"
    ),
    "inline-secret": Case(
        "OML048", "      query: SELECT id", "      password: hunter22\n      query: SELECT id", "hunter22"
    ),
    "env-secret-in-pipeline": Case("OML048", W, W + "      key: ${SUPABASE_KEY}\n", "${SUPABASE_KEY}"),
    "secret-in-metadata": Case(
        "OML048", "description:", "metadata: {api_key: abc123}\ndescription:", "abc123"
    ),
    "tab-needs-minimal-quoting": Case(
        "OML049", 'delimiter: ","', 'delimiter: "\\t"\n      quoting: all', "all\n"
    ),
    # -- connections -----------------------------------------------------------------------------
    "bad-connection-ref": Case("OML050", '"@mysql.db_movies"', '"mysql.db_movies"', '"mysql.db'),
    "ref-without-alias": Case("OML050", '"@mysql.db_movies"', '"@mysql"', '"@mysql"'),
    "family-mismatch": Case("OML051", '"@mysql.db_movies"', '"@supabase.main"', '"@supabase.main"'),
    "alias-not-defined": Case("OML052", '"@mysql.db_movies"', '"@mysql.db_movie"', '"@mysql.db_movie"'),
    "no-connections-file": Case("OML053", "", "", '"@mysql.db_movies"', connections=None),
    "no-default-connection": Case(
        "OML053",
        '      connection: "@mysql.db_movies"\n',
        "",
        "config",
        connections=CONNECTIONS.replace("      default: true\n      host", "      host"),
    ),
    # -- SQL -------------------------------------------------------------------------------------
    "sql-syntax-in-block": Case("OML060", "GROUP BY director", "GROUP BY director HAVING", "HAVING"),
    "sql-syntax-plain": Case(
        "OML060",
        "FROM df_extract_movies\n        GROUP BY director",
        "FROM df_extract_movies\n        GROUP BY BY director",
        "director\n",
    ),
    "sql-syntax-plain-multiline": Case(
        "OML060",
        "query: |\n        SELECT director, count(*) AS n, avg(rating) AS r\n        FROM df_extract_movies\n"
        "        GROUP BY director\n",
        "query: SELECT director, count(*) AS n, avg(rating) AS r\n        FROM df_extract_movies\n"
        "        GROUP BY BY director\n",
        "director\n",
    ),
    "sql-unknown-table": Case(
        "OML061", "FROM df_extract_movies", "FROM movies_raw", "movies_raw", severity="warning"
    ),
    "sql-not-select": Case(
        "OML062",
        "query: |\n        SELECT director",
        "query: |\n        CREATE TABLE t AS SELECT director",
        "CREATE",
        severity="warning",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_fires_at_the_exact_position(tmp_path, name):
    case = CASES[name]
    text = case.text
    diags = check(tmp_path, text, case.connections)
    hits = [d for d in diags if d.code == case.code]
    assert hits, f"{case.code} not reported; got {[(d.code, d.line, d.column, d.message) for d in diags]}"
    assert (hits[0].line, hits[0].column) == at(text, case.needle, case.nth), hits[0]
    assert hits[0].severity == case.severity
    assert hits[0].message and hits[0].hint


@pytest.mark.parametrize("code", sorted({c.code for c in CASES.values()} - {"OML053"}))
def test_rule_is_quiet_on_the_valid_pipeline(tmp_path, code):
    assert found(check(tmp_path, PIPELINE + CSV_WRITER), code) == []


VALID_VARIANTS = {
    "single-quoted-version": [('"0.1.0"', "'0.1.0'")],
    "known-top-keys": [
        (
            "description: Director statistics",
            "description: x\nmetadata: {owner: data}\nprofiles: {}\nschedule: daily",
        )
    ],
    "legacy-uses-and-with": [
        ("component: mysql.extractor", "uses: mysql.extractor"),
        (
            '    config:\n      connection: "@mysql.db_movies"',
            '    with:\n      connection: "@mysql.db_movies"',
        ),
    ],
    "table-instead-of-query": [
        ("      query: SELECT id, director, rating FROM movies", "      table: movies")
    ],
    "append-needs-no-key": [
        ("write_mode: replace", "write_mode: append"),
        ("      primary_key: [director]\n", ""),
    ],
    "primary-key-as-string": [("primary_key: [director]", "primary_key: director")],
    "default-connection": [('      connection: "@mysql.db_movies"\n', "")],
    "allowed-override": [("      query: SELECT id", "      host: replica\n      query: SELECT id")],
    "step-description": [("    mode: read\n", "    mode: read\n    description: reads movies\n")],
    "inferred-needs": [("    needs: [extract-movies]\n", "")],
    "sql-input-df": [("FROM df_extract_movies", "FROM input_df")],
    "sql-step-id": [("FROM df_extract_movies", 'FROM "extract-movies"')],
    "sql-cte": [("SELECT director, count(*)", "WITH m AS (SELECT 1 AS one) SELECT director, count(*)")],
    "sql-non-ascii": [("AS r\n", 'AS "note é"\n')],
    "param-with-default": [
        ("description: Director statistics", "description: x\nparams: {size: {default: 500}}"),
        (W, W + "      batch_size: ${params.size}\n"),
    ],
    "param-without-default": [(W, W + "      batch_size: ${params.size}\n")],
    "same-key-in-two-mappings": [("mode: transform", "mode: transform\n    description: mode")],
    "anchors-and-merge": [
        ('      connection: "@supabase.main"\n', '      <<: &sink {connection: "@supabase.main"}\n'),
    ],
}


@pytest.mark.parametrize("name", sorted(VALID_VARIANTS))
def test_valid_variants_are_clean(tmp_path, name):
    text = PIPELINE + CSV_WRITER
    for old, new in VALID_VARIANTS[name]:
        assert old in text, old
        text = text.replace(old, new, 1)
    assert [(d.code, d.line, d.column, d.message) for d in check(tmp_path, text)] == []


def test_positions_and_end_positions_as_numbers(tmp_path):
    text = PIPELINE.replace("mode: read", "mode: reed").replace(
        "table: director_stats", "tabel: director_stats"
    )
    diags = check(tmp_path, text)
    got = [(d.code, d.line, d.column, d.span.end_line, d.span.end_col) for d in diags]
    assert got == [("OML027", 7, 11, 7, 15), ("OML041", 26, 7, 26, 12), ("OML043", 24, 5, 24, 11)]


def test_override_warning_policy(tmp_path, monkeypatch):
    """No shipped spec uses the `warning` policy yet; the rule is there for Osiris specs that do."""
    monkeypatch.setitem(components.get("mysql.extractor").spec["connection"], "host", "warning")
    text = PIPELINE.replace("      query: SELECT id", "      host: replica\n      query: SELECT id")
    diags = check(tmp_path, text)
    assert [(d.code, d.severity, d.line, d.column) for d in diags] == [("OML047", "warning", 10, 7)]
    assert check(tmp_path, PIPELINE) == []


def test_sql_in_a_param_is_checked_only_at_compile(tmp_path):
    text = PIPELINE.replace("GROUP BY director", "GROUP BY ${params.col}")
    assert check(tmp_path, text) == []


@pytest.mark.parametrize(
    ("connections", "needle", "code"),
    [
        ("connections: []\n", "[]", "CON001"),
        ("version: 1\n", "version", "CON001"),
        ("connections:\n  mysql: [a]\n", "[a]", "CON001"),
        ("connections:\n  mysql:\n    db_movies: 5\n", "5", "CON001"),
        ("connections:\n  mysql:\n    db_movies:\n      password: s3cret!\n", "s3cret!", "CON002"),
        ("connections:\n  pg:\n    x:\n      dsn: postgresql://u:pw@h/db\n", "postgresql", "CON002"),
    ],
)
def test_connections_file_rules(tmp_path, connections, needle, code):
    diags = [d for d in check(tmp_path, PIPELINE, connections) if d.file.endswith("osiris_connections.yaml")]
    assert [(d.code, d.line, d.column) for d in diags] == [(code, *at(connections, needle))]


@pytest.mark.parametrize(
    "connections",
    [
        CONNECTIONS,
        "connections:\n  pg:\n    x:\n      dsn: postgresql://u@h/db\n      pg_dsn: ${PG_DSN}\n"
        "      password: ''\n",
    ],
)
def test_connections_file_without_literal_secrets_is_clean(tmp_path, connections):
    diags = [d for d in check(tmp_path, PIPELINE, connections) if d.file.endswith("osiris_connections.yaml")]
    assert diags == []


def test_a_file_with_duplicate_keys_is_still_checked(tmp_path):
    text = PIPELINE.replace("    mode: read\n", "    mode: read\n    mode: reed\n")
    assert [(d.code, d.line, d.column) for d in check(tmp_path, text)] == [
        ("OML002", 8, 5),
        ("OML027", 8, 11),
    ]


def test_findings_are_sorted_and_stable(tmp_path):
    text = PIPELINE.replace("mode: read", "mode: reed").replace("name: movies-demo", "name: Movies")
    text = text.replace("[stats]", "[stat]").replace("table: director_stats", "tabel: x")
    first = format_text(check(tmp_path, text))
    assert first == format_text(check(tmp_path, text))
    found = re.findall(r"^(.+?):(\d+):(\d+): \w+ (\w+) ", first, re.M)
    keys = [(f, int(line), int(col), code) for f, line, col, code in found]
    assert len(keys) == 5 and keys == sorted(keys)


def test_each_query_of_a_file_gets_its_own_findings(tmp_path):
    """All queries of a file go to DuckDB in one call; each answer must land on its own step."""
    steps = "".join(
        f"  - id: q{i}\n    component: duckdb.processor\n    mode: transform\n    needs: [stats]\n"
        f"    config:\n      query: SELECT {i} AS n FROM {'df_stats' if i % 3 else f'missing_{i}'}"
        f"{' WHERE' if i % 4 == 1 else ''}\n"
        for i in range(12)
    )
    text = PIPELINE + steps
    got = sorted((d.code, d.line, d.column) for d in check(tmp_path, text))
    want = sorted(
        [("OML061", *at(text, f"missing_{i}")) for i in range(12) if i % 3 == 0 and i % 4 != 1]
        + [("OML060", *at(text, "WHERE", i // 4)) for i in range(12) if i % 4 == 1]
    )  # fmt: skip
    assert got == want


@pytest.mark.parametrize(
    ("setting", "message", "hint"),
    [
        ('batch_size: "100"', "'batch_size' must be an integer, got string '100'", "without quotes"),
        ("batch_size: 0", "'batch_size' must be between 1 and 1000, got 0", "docs/components.md"),
        ("write_mode: upsrt", "'write_mode' must be one of: append, replace, upsert (got string", "'upsert'"),
        ("primary_key: 5", "'primary_key' must be a string or a list of strings, got integer 5", "list"),
        ("primary_key: [id, 7]", "'primary_key[1]' must be a string, got integer 7", ""),
        ("primary_key: []", "'primary_key' must not be empty", ""),
        ("create_if_missing: oui", "'create_if_missing' must be a boolean, got string 'oui'", ""),
        ("url: http://x", "'url' does not match the expected pattern", ""),
        ("schema: ''", "'schema' must not be empty", ""),
    ],
)
def test_schema_messages_read_well(tmp_path, setting, message, hint):
    key = setting.split(":")[0]
    existing = re.search(rf"^      {key}: .*\n", PIPELINE, re.M)
    old = existing.group(0) if existing else W
    text = PIPELINE.replace(old, f"      {setting}\n" + ("" if existing else W))
    hits = [d for d in check(tmp_path, text) if d.code == "OML042"]
    assert len(hits) == 1 and hits[0].message.startswith(message) and hint in hits[0].hint, hits


def test_keys_accepted_for_osiris_validate_with_a_warning_that_they_do_nothing(tmp_path):
    from osiris_action.pipelines import Checker

    (tmp_path / "osiris_connections.yaml").write_text(
        "connections:\n"
        '  mysql: {db: {host: h, database: d, user: u, password: "${MYSQL_PASSWORD}"}}\n'
        '  supabase: {main: {pg_dsn: "${PG_DSN}"}}\n'
    )
    (tmp_path / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: osiris-keys\nsteps:\n'
        "  - id: read\n    component: mysql.extractor\n    mode: read\n"
        '    config: {connection: "@mysql.db", table: t, pool_size: 10, pool_recycle: 600, echo: true}\n'
        "  - id: load\n    component: supabase.writer\n    mode: write\n    needs: [read]\n"
        '    config: {connection: "@supabase.main", table: t, returning: minimal, ddl_channel: psycopg2,\n'
        "             prefer: return=representation}\n"
        "  - id: copy\n    component: mysql.writer\n    mode: write\n    needs: [read]\n"
        '    config: {connection: "@mysql.db", table: t2, pool_size: 2, echo: false}\n'
    )
    found = Checker().compile(tmp_path / "p.yaml")
    assert found.compiled is not None  # still a valid, compilable pipeline
    warned = sorted((d.line, d.message.split("'")[1]) for d in found.diagnostics if d.code == "OML080")
    assert warned == [
        (7, "echo"), (7, "pool_recycle"), (7, "pool_size"),
        (12, "ddl_channel"), (12, "returning"), (13, "prefer: return=representation"),
        (18, "echo"), (18, "pool_size"),
    ]  # fmt: skip
    assert all(d.severity == "warning" for d in found.diagnostics if d.code == "OML080")
