"""graphql.extractor end to end: a GraphQL server speaking the protocol → `osiris-action run` → Postgres.

The server (`graphql_server.py`) pages with Relay cursors under a nested pageInfo, answers GraphQL errors
in a 200, throttles with 429 + Retry-After and refuses a wrong token with 401; it counts each page served.
Validation cases check each of the spec's constraints at its exact place in the file.
"""

from __future__ import annotations

import base64
import json
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from osiris_action.pipelines import Checker
from tests.conftest import pg_execute
from tests.integration.graphql_server import GraphqlServer
from tests.integration.test_pipeline_runs import _everything, _leaks, run_cli

QUERY = (
    "query Orders($first: Int, $after: String) { orders(first: $first, after: $after) { "
    "edges { node { id seq late big price name total { amount cur } customer { email address { city zip } } "
    "tags flag } } pageInfo { endCursor hasNextPage } } }"
)
PAGE = 4


def node(i: int) -> dict:
    return {
        "id": f"ord-{i:03d}",
        "seq": i,
        "late": None if i < 12 else i * 10**15,  # null on the first three pages, integer later
        "big": None if i == 3 else (-(2**63) if i == 0 else 9007199254740993 + i),
        "price": i if i < 8 else i + 0.25,  # whole numbers first, fractions later
        "name": None if i == 5 else f"Zoë 🦀 Kraków „{i}“",
        "total": {"amount": f"{i}.50", "cur": "EUR" if i % 2 else "PLN"},
        "customer": None
        if i % 5 == 0
        else {"email": f"c{i}@example.com", "address": {"city": "Łódź", "zip": None}},
        "tags": None if i == 7 else (["a", "ü"] if i % 2 else []),
        "flag": i % 3 == 0,
    }


NODES = [node(i) for i in range(25)]


def project(
    tmp: Path,
    pg_db,
    extra: str = "",
    auth: str = "auth_type: bearer",
    query: str = QUERY,
    literal: str = "x",
) -> Path:
    """The pipeline and its connections; a one-letter header value must not cut letters out of messages."""
    (tmp / "osiris_connections.yaml").write_text(f"""
connections:
  graphql:
    shop:
      endpoint: ${{GQL_URL}}
      auth_token: ${{GQL_TOKEN}}
      headers:
        X-Shop-Key: ${{GQL_SHOP_KEY}}
        X-Literal: {literal}
  supabase:
    staging:
      pg_dsn: ${{PG_DSN}}
""")
    pipeline = tmp / "orders.yaml"
    pipeline.write_text(f"""
oml_version: "0.1.0"
name: graphql-orders
steps:
  - id: orders
    component: graphql.extractor
    mode: read
    config:
      connection: "@graphql.shop"
      {auth}
      query: {json.dumps(query)}
      variables: {{first: {PAGE}}}
      pagination_enabled: true
      pagination_path: data.orders.pageInfo
      data_path: "data.orders.edges[*].node"
      retry_delay: 0.1{extra}
  - id: load
    component: supabase.writer
    mode: write
    needs: [orders]
    config:
      connection: "@supabase.staging"
      table: orders
      write_mode: replace
      primary_key: [id]
""")
    return pipeline


def env(server: GraphqlServer, pg_db, token: str, shop_key: str) -> dict[str, str]:
    return {"GQL_URL": server.url, "GQL_TOKEN": token, "GQL_SHOP_KEY": shop_key, "PG_DSN": pg_db.pg_dsn}


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.mark.db
def test_every_page_once_into_postgres_with_exact_types(tmp_path, pg_db):
    token, shop_key = f"gql-canary-{uuid.uuid4().hex}", f"shop-canary-{uuid.uuid4().hex}"
    literal = f"literal-canary-{uuid.uuid4().hex}"  # written in the connections file itself (CON002)
    with GraphqlServer(NODES, token=token) as server:
        server.throttle(1, retry_after="1")  # the first request is refused once: Retry-After is honoured
        pipeline = project(tmp_path, pg_db, literal=literal)
        proc = run_cli(pipeline, tmp_path / "out", env(server, pg_db, token, shop_key))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert dict(server.pages) == {offset: 1 for offset in range(0, 25, PAGE)}  # 7 pages, each once
        assert all(h["x-shop-key"] == shop_key and h["x-literal"] == literal for h in server.headers)
    got = {e["event"]: e for e in events(tmp_path / "out") if e.get("step_id") == "orders"}
    assert got["http.retry"]["reason"] == "HTTP 429" and got["http.retry"]["wait_s"] == 1.0
    assert got["extract.complete"]["rows"] == 25 and got["extract.complete"]["pages"] == 7
    assert got["extract.complete"]["requests"] == 8 and got["step_complete"]["rows_out"] == 25

    types = dict(
        pg_execute(
            pg_db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders'"
        )
    )
    assert types == {
        "id": "text",
        "seq": "bigint",
        "late": "bigint",
        "big": "bigint",
        "price": "double precision",
        "name": "text",
        "total.amount": "text",
        "total.cur": "text",
        "customer.email": "text",
        "customer.address.city": "text",
        "customer.address.zip": "text",
        "tags": "jsonb",
        "flag": "boolean",
    }  # no stray `customer` column: null customers only null their fields
    rows = pg_execute(
        pg_db,
        'SELECT seq, late, big, price, name, "total.amount", "customer.address.city", tags::text, flag '
        "FROM orders ORDER BY seq",
    )
    assert len(rows) == 25
    assert rows[0] == (0, None, -(2**63), 0.0, "Zoë 🦀 Kraków „0“", "0.50", None, "[]", True)
    assert rows[3][2] is None and rows[5][4] is None and rows[7][7] is None
    assert rows[13] == (
        13,
        13 * 10**15,
        9007199254741006,
        13.25,
        "Zoë 🦀 Kraków „13“",
        "13.50",
        "Łódź",
        '["a", "ü"]',
        False,
    )
    assert Decimal(rows[1][2]) == 9007199254740994  # past 2^53, exact

    assert _leaks(_everything(tmp_path / "out", proc), [token, shop_key, literal]) == []


@pytest.mark.db
def test_a_wrong_token_is_one_line_naming_the_step_and_never_retried(tmp_path, pg_db):
    token, wrong = f"gql-canary-{uuid.uuid4().hex}", f"wrong-canary-{uuid.uuid4().hex}"
    with GraphqlServer(NODES, token=token) as server:
        proc = run_cli(project(tmp_path, pg_db), tmp_path / "out", env(server, pg_db, wrong, "k" * 12))
        assert len(server.requests) == 1
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    failed = next(e for e in events(tmp_path / "out") if e["event"] == "step_failed")
    assert failed["error_type"] == "AuthenticationError"
    assert failed["message"].startswith("step 'orders': the GraphQL endpoint at ")
    assert "refused the credentials (HTTP 401): Bad credentials" in failed["message"]
    assert "\n" not in failed["message"] and "auth_type (bearer)" in failed["hint"]
    assert not pg_execute(pg_db, "SELECT 1 FROM information_schema.tables WHERE table_name = 'orders'")
    assert _leaks(_everything(tmp_path / "out", proc), [token, wrong]) == []


@pytest.mark.db
def test_graphql_errors_in_a_200_fail_the_step_with_the_servers_message(tmp_path, pg_db):
    broken = QUERY.replace("flag", "flag undefinedField")
    with GraphqlServer(NODES, token="t" * 20) as server:
        pipeline = project(tmp_path, pg_db, query=broken)
        proc = run_cli(pipeline, tmp_path / "out", env(server, pg_db, "t" * 20, "k" * 12))
        assert len(server.requests) == 1  # a query error is not retried
    failed = next(e for e in events(tmp_path / "out") if e["event"] == "step_failed")
    assert proc.returncode == 1 and failed["error_type"] == "GraphQLError"
    assert "Field 'undefinedField' doesn't exist on type 'Order'" in failed["message"]


@pytest.mark.db
def test_max_pages_and_flatten_off(tmp_path, pg_db):
    with GraphqlServer(NODES, token="t" * 20) as server:
        pipeline = project(tmp_path, pg_db, extra="\n      max_pages: 2\n      flatten_result: false")
        proc = run_cli(pipeline, tmp_path / "out", env(server, pg_db, "t" * 20, "k" * 12))
        assert proc.returncode == 0, proc.stderr
        assert dict(server.pages) == {0: 1, 4: 1}
    types = dict(
        pg_execute(
            pg_db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders'"
        )
    )
    assert types["total"] == "jsonb" and types["customer"] == "jsonb" and "total.amount" not in types
    city = pg_execute(pg_db, "SELECT customer->'address'->>'city' FROM orders WHERE seq = 1")
    assert city == [("Łódź",)]


@pytest.mark.db
def test_plan_sends_one_request_and_writes_nothing(tmp_path, pg_db):
    import subprocess
    import sys

    with GraphqlServer(NODES, token="t" * 20) as server:
        pipeline = project(tmp_path, pg_db)
        full = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)} | env(server, pg_db, "t" * 20, "k" * 12)
        proc = subprocess.run(
            [sys.executable, "-m", "osiris_action", "plan", str(pipeline), "--out", str(tmp_path / "out")],
            cwd=tmp_path,
            env=full,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len(server.requests) == 1 and server.requests[0]["variables"] == {"first": PAGE}
    planned = next(
        e for e in events(tmp_path / "out") if e["event"] == "step_planned" and e["step_id"] == "orders"
    )
    assert {"name": "late", "type": "null"} in planned["columns"]  # the first page's types, said as such
    assert {"name": "big", "type": "int64"} in planned["columns"]
    assert not pg_execute(pg_db, "SELECT 1 FROM information_schema.tables WHERE table_name = 'orders'")


@pytest.mark.db
def test_plain_http_is_refused_beyond_loopback(tmp_path, pg_db):
    pipeline = project(tmp_path, pg_db)
    proc = run_cli(
        pipeline,
        tmp_path / "out",
        {"GQL_URL": "http://api.example.com/graphql", "GQL_TOKEN": "t" * 20, "GQL_SHOP_KEY": "k" * 12}
        | {"PG_DSN": pg_db.pg_dsn},
    )
    failed = next(e for e in events(tmp_path / "out") if e["event"] == "step_failed")
    assert proc.returncode == 1 and "plain http to api.example.com" in failed["message"]


# -- validation: each constraint at its place ----------------------------------------------------------

VALID = """\
oml_version: "0.1.0"
name: gql
steps:
  - id: orders
    component: graphql.extractor
    mode: read
    config:
      connection: "@graphql.shop"
      auth_type: bearer
      query: "{ orders { nodes { id } } }"
      pagination_enabled: true
"""
CONNECTIONS = """\
connections:
  graphql:
    shop:
      endpoint: https://api.example.com/graphql
      auth_token: ${GQL_TOKEN}
      headers:
        Authorization-Extra: literal-header-value
"""


def check(tmp_path: Path, text: str, connections: str | None = CONNECTIONS):
    (tmp_path / "p.yaml").write_text(text)
    if connections is not None:
        (tmp_path / "osiris_connections.yaml").write_text(connections)
    checker = Checker(str(tmp_path / "osiris_connections.yaml") if connections is not None else None)
    checked = checker.check(tmp_path / "p.yaml")
    return [
        (d.code, d.line, d.column, d.message) for d in checked.diagnostics + checker.connection_diagnostics
    ]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)
    return tmp_path


def test_a_valid_step_and_a_literal_header_in_the_connections_file(isolated):
    assert check(isolated, VALID) == [
        ("CON002", 7, 30, "@graphql.shop: 'headers.Authorization-Extra' holds a literal secret")
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # bearer, but the connection has no token
            ("      auth_token: ${GQL_TOKEN}\n", ""),
            ("OML045", 9, 18, "'auth_token' is required when auth_type is 'bearer'"),
        ),
        (
            ("auth_type: bearer", "auth_type: basic"),
            ("OML045", 9, 18, "'auth_username' is required when auth_type is 'basic'"),
        ),
        (
            (
                "      pagination_enabled: true\n",
                '      pagination_enabled: true\n      pagination_cursor_field: ""\n',
            ),
            ("OML045", 11, 27, "'pagination_cursor_field' is required when pagination_enabled is true"),
        ),
        (
            (
                "      pagination_enabled: true\n",
                '      pagination_enabled: true\n      pagination_variable_name: ""\n',
            ),
            ("OML045", 11, 27, "'pagination_variable_name' is required when pagination_enabled is true"),
        ),
        (
            ("      endpoint: https://api.example.com/graphql\n", ""),
            ("OML045", 7, 5, "'endpoint' is required"),
        ),
        (
            ("      auth_type: bearer\n", "      auth_type: bearer\n      auth_token: hunter2hunter2\n"),
            ("OML048", 10, 19, "inline secret in 'auth_token'"),
        ),
        (  # a credential header in the pipeline file is a committed secret; other headers are fine
            (
                "      auth_type: bearer\n",
                "      auth_type: bearer\n      headers: {Accept: x, X-Api-Key: abc}\n",
            ),
            ("OML048", 10, 39, "inline secret in 'X-Api-Key'"),
        ),
        (
            ("      auth_type: bearer\n", "      auth_type: bearer\n      timeout: 1\n"),
            ("OML042", 10, 16, None),
        ),
        (
            ("      auth_type: bearer\n", "      auth_type: oauth\n"),
            ("OML042", 9, 18, None),
        ),
    ],
)
def test_each_constraint_at_its_place(isolated, change, expected):
    old, new = change
    text, connections = VALID, CONNECTIONS
    if old in VALID:
        text = VALID.replace(old, new)
    else:
        connections = CONNECTIONS.replace(old, new)
    found = [d for d in check(isolated, text, connections) if d[0] not in ("CON002", "OML047")]
    code, line, column, message = expected
    assert [(c, ln, col) for c, ln, col, _ in found] == [(code, line, column)], found
    if message:
        assert found[0][3] == message


def test_headers_on_the_step_warn_that_they_override_the_connection(isolated):
    text = VALID.replace("      auth_type: bearer\n", "      auth_type: bearer\n      headers: {Accept: x}\n")
    found = [d for d in check(isolated, text) if d[0] != "CON002"]
    assert found == [("OML047", 10, 7, "'headers' overrides the connection's value")]


def test_a_public_api_needs_no_connection(isolated):
    public = VALID.replace('      connection: "@graphql.shop"\n', "").replace(
        "auth_type: bearer", "auth_type: none"
    )
    public = public.replace(
        "      query:", "      endpoint: https://countries.trevorblades.com/\n      query:"
    )
    assert check(isolated, public, None) == []
    assert check(isolated, public, "connections:\n  mysql:\n    db: {host: h}\n") == []


@pytest.mark.db
def test_the_example_pipeline_runs_unchanged(tmp_path, pg_db):
    """examples/http-apis/github-issues.yaml as shipped, its connections pointed at local servers."""
    example = Path(__file__).parents[2] / "examples" / "http-apis" / "github-issues.yaml"
    (tmp_path / "github-issues.yaml").write_text(example.read_text())
    (tmp_path / "osiris_connections.yaml").write_text("""
connections:
  graphql:
    github: {default: true, endpoint: "${GQL_URL}", auth_token: "${GH_GRAPHQL_TOKEN}"}
  supabase:
    main: {default: true, pg_dsn: "${PG_DSN}"}
""")
    labels = [[], [{"name": "bug"}], [{"name": "bug"}, {"name": "ü-label"}]]
    issues = [
        {
            "number": i,
            "title": f"Issue {i}",
            "state": "OPEN" if i % 2 else "CLOSED",
            "createdAt": "2025-01-01T00:00:00Z",
            "author": None if i == 4 else {"login": "zoë"},
            "labels": {"nodes": labels[i % 3]},
        }
        for i in range(250)
    ]
    with GraphqlServer(issues, token="ghp_" + "x" * 36, path="repository.issues") as server:
        proc = run_cli(
            tmp_path / "github-issues.yaml",
            tmp_path / "out",
            {"GQL_URL": server.url, "GH_GRAPHQL_TOKEN": "ghp_" + "x" * 36, "PG_DSN": pg_db.pg_dsn},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert dict(server.pages) == {0: 1, 100: 1, 200: 1}
        assert server.requests[0]["variables"] == {"owner": "keboola", "name": "osiris", "first": 100}
    counts = pg_execute(pg_db, "SELECT label, issues, open FROM github_label_counts ORDER BY label")
    assert counts == [("bug", 166, 83), ("ü-label", 83, 41)]


# -- the driver on its own: types across pages, hostile servers -------------------------------------------


def direct(tmp_path: Path, url: str, token: str | None = None, **config):
    """Run the driver in this process, as the worker does, and read its reader whole."""
    from osiris_drivers import graphql_extractor
    from osiris_drivers._common import StepContext

    seen: list[tuple[str, dict]] = []
    ctx = StepContext(
        step_id="api",
        connection={"endpoint": url, "auth_token": token} if token else {"endpoint": url},
        artifacts_dir=tmp_path,
        base_dir=tmp_path,
        emit=lambda event, **fields: seen.append((event, fields)),
    )
    settings = {
        "query": "{ orders { nodes { id } } }",
        "auth_type": "bearer" if token else "none",
        "variables": {"first": 2},
        "pagination_enabled": True,
        "pagination_path": "data.orders.pageInfo",
        "data_path": "data.orders.nodes",
        "retry_delay": 0.1,
        "max_retries": 1,
        "timeout": 5,
    } | config
    reader = graphql_extractor.run({"id": "api", "config": settings}, {}, ctx)
    return reader.read_all(), seen


def test_types_are_joined_across_pages_not_taken_from_the_first(tmp_path):
    nodes = [
        {"late": None, "num": 1, "huge": 2**60, "mixed": 5, "flag": True, "list": [1]},
        {"late": None, "num": 2, "huge": 2**60 + 1, "mixed": 6, "flag": False, "list": None},
        {"late": 9007199254740993, "num": 2.5, "huge": 1.5, "mixed": "x", "flag": 1, "list": [{"a": "ü"}]},
        {"new": "appears on page 2", "num": None},
        {"huge": 2**64},
    ]
    spills = set(Path(tempfile.gettempdir()).glob("osiris-pages-*"))
    with GraphqlServer(nodes) as server:
        table, _ = direct(tmp_path, server.url)
    assert set(Path(tempfile.gettempdir()).glob("osiris-pages-*")) <= spills  # read back, then removed
    schema = {f.name: (str(f.type), (f.metadata or {}).get(b"osiris.type")) for f in table.schema}
    assert schema == {
        "late": ("int64", None),
        "num": ("double", None),
        "huge": ("string", b"numeric"),  # 2^60 + 1 beside 1.5 cannot be a float: exact decimal text
        "mixed": ("string", None),
        "flag": ("string", None),
        "list": ("string", b"json"),
        "new": ("string", None),
    }
    rows = table.to_pylist()
    assert [r["late"] for r in rows] == [None, None, 9007199254740993, None, None]
    assert [r["huge"] for r in rows] == [str(2**60), str(2**60 + 1), "1.5", None, str(2**64)]
    assert [r["mixed"] for r in rows] == ["5", "6", "x", None, None]
    assert [r["flag"] for r in rows] == ["true", "false", "1", None, None]
    assert rows[2]["list"] == '[{"a":"ü"}]' and rows[0]["list"] == "[1]"


def test_a_server_echoing_the_token_has_it_cut_from_the_message(tmp_path):
    from osiris_drivers._common import StepError

    token = f"echo-canary-{uuid.uuid4().hex}"
    with GraphqlServer(NODES, misbehave="echo") as server, pytest.raises(StepError) as caught:
        direct(tmp_path, server.url, token)
    assert "HTTP 400" in caught.value.message and "Bearer ***" in caught.value.message
    assert token not in caught.value.message


def test_a_cursor_seen_before_stops_the_loop(tmp_path):
    from osiris_drivers._common import StepError

    with GraphqlServer(NODES, misbehave="stuck") as server, pytest.raises(StepError) as caught:
        direct(tmp_path, server.url)
    assert "cursor of an earlier page" in caught.value.message and len(server.requests) == 2


def test_redirects_are_not_followed(tmp_path):
    from osiris_drivers._common import StepError

    with GraphqlServer(NODES, token="t" * 20) as server, pytest.raises(StepError) as caught:
        direct(tmp_path, server.url.replace("/graphql", "/moved"), "t" * 20)
    assert "HTTP 302" in caught.value.message and "redirects" in caught.value.hint
    assert server.requests == []  # the token never went to the redirect's target


def test_a_server_that_is_gone_is_retried_then_named(tmp_path):
    import socket

    from osiris_drivers._common import StepError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StepError) as caught:
        direct(tmp_path, f"http://127.0.0.1:{port}/graphql?key=secret-in-query")
    message = caught.value.message
    assert message.startswith(
        f"step 'api': could not reach the GraphQL endpoint at http://127.0.0.1:{port}/graphql"
    )
    assert "after 2 attempt(s)" in message and "secret-in-query" not in message


def test_a_pagination_path_that_matches_nothing_is_said_not_passed_off_as_one_page(tmp_path):
    with GraphqlServer(NODES) as server:
        table, seen = direct(tmp_path, server.url, pagination_path="data.pageInfo")
        assert table.num_rows == 2 and len(server.requests) == 1
        capped, notes = direct(tmp_path, server.url, max_pages=3)
    assert (
        "step.note",
        {
            "note": "pagination_path 'data.pageInfo' has no hasNextPage and endCursor on page 1: "
            "reading stopped there"
        },
    ) in seen
    assert (
        capped.num_rows == 6
        and ("step.note", {"note": "stopped at max_pages 3: the API has more pages"}) in notes
    )


@pytest.mark.parametrize(
    ("auth", "connection", "expected"),
    [
        (
            {"auth_type": "basic"},
            {"auth_username": "zoë", "auth_token": "pä:ss"},
            ("authorization", "Basic " + base64.b64encode("zoë:pä:ss".encode()).decode()),
        ),
        ({"auth_type": "api_key"}, {"auth_token": "k-123456"}, ("x-api-key", "k-123456")),
        (
            {"auth_type": "api_key", "auth_header_name": "X-Shop-Token"},
            {"auth_token": "k-9"},
            ("x-shop-token", "k-9"),
        ),
        ({"auth_type": "none", "headers": {"X-Token": "h-1"}}, {}, ("x-token", "h-1")),
    ],
)
def test_basic_api_key_and_header_auth(tmp_path, auth, connection, expected):
    from osiris_drivers import graphql_extractor
    from osiris_drivers._common import StepContext

    with GraphqlServer(NODES, expect=expected) as server:
        ctx = StepContext("api", {"endpoint": server.url, **connection}, tmp_path, tmp_path)
        config = {"query": "{ orders { nodes { id } } }", "data_path": "data.orders.nodes"} | auth
        table = graphql_extractor.run({"id": "api", "config": config}, {}, ctx).read_all()
    assert table.num_rows == 10 and len(server.requests) == 1


@pytest.mark.parametrize("token", ["tok\r\nX-Injected: 1", "tök-🦀"])
def test_a_token_that_is_not_a_header_value_is_one_error_without_it(tmp_path, token):
    from osiris_drivers._common import StepError

    with GraphqlServer(NODES, token="t" * 20) as server, pytest.raises(StepError) as caught:
        direct(tmp_path, server.url, token)
    assert caught.value.error_type == "RequestError" and server.requests == []
    assert token not in caught.value.message + caught.value.hint


def test_a_public_api_runs_without_any_connections_file(tmp_path):
    with GraphqlServer(NODES) as server:
        pipeline = tmp_path / "public.yaml"
        pipeline.write_text(f"""
oml_version: "0.1.0"
name: public-api
steps:
  - id: orders
    component: graphql.extractor
    mode: read
    config:
      endpoint: {server.url}
      query: "{{ orders {{ nodes {{ id seq }} }} }}"
      data_path: data.orders.nodes
""")
        proc = run_cli(pipeline, tmp_path / "out", {})
        assert proc.returncode == 0, proc.stdout + proc.stderr
    done = next(e for e in events(tmp_path / "out") if e["event"] == "step_complete")
    assert done["rows_out"] == 10
