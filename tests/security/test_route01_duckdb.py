"""Route 1: a pipeline's DuckDB SQL reaches its inputs and nothing else on the machine.

Each attack runs for real through `osiris-action run` (the worker as a subprocess, as in CI), with
canary secrets in the CLI's environment and in a host file outside the project.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.canary import Canaries, assert_nowhere

PIPELINE = """\
oml_version: "0.1.0"
name: attack
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config: {{connection: "@filesystem.local", path: orders.csv}}
  - id: steal
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: |
        {query}
"""

# Refused by validation (OML063), on the line, before any worker starts.
ATTACKS = {
    "read_text /etc/passwd": "SELECT content FROM read_text('/etc/passwd')",
    "read_text host file": "SELECT content FROM read_text('{secret_file}')",
    "read_blob parent environ": "SELECT content FROM read_blob('/proc/*/environ')",
    "replacement scan of a file": "SELECT * FROM '{secret_file}'",
    "read_csv host file": "SELECT * FROM read_csv('{secret_file}')",
    "COPY TO": "COPY (SELECT * FROM input_df) TO '{written}'; SELECT 1 AS n",
    "INSTALL": "INSTALL httpfs; SELECT 1 AS n",
    "LOAD": "LOAD httpfs; SELECT 1 AS n",
    "SET external access": "SET enable_external_access = true; SELECT * FROM read_text('{secret_file}')",
    "ATTACH": "ATTACH '{written}' AS other; SELECT 1 AS n",
}
# Shaped to pass the static check: the worker's locked DuckDB is what stops them.
RUNTIME_ATTACKS = {
    "macro read_text": "CREATE MACRO m() AS TABLE SELECT * FROM read_text('{secret_file}'); "
    "SELECT * FROM m()",
    "macro read_blob environ": "CREATE MACRO m() AS TABLE SELECT * FROM read_blob('/proc/*/environ'); "
    "SELECT * FROM m()",
    "query() read_text": "SELECT * FROM query('SELECT * FROM read_text(''{secret_file}'')')",
    "prepared COPY TO": "PREPARE p AS COPY (SELECT * FROM input_df) TO '{written}'; EXECUTE p; SELECT 1 AS n",
    "query_table of a file": "SELECT * FROM query_table('{secret_file}')",
}


def _cli(project: Path, canaries: Canaries, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(project), **canaries.env()}
    return subprocess.run(
        [sys.executable, "-m", "osiris_action", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def host_secret(tmp_path: Path) -> tuple[Path, Canaries]:
    canaries = Canaries.make("GITHUB_TOKEN", "E2B_API_KEY", "HOST_FILE")
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(f"token,{canaries['HOST_FILE']}\n")
    return secret_file, canaries


def _attack(project: Path, tmp_path: Path, host_secret, query: str, mode: str) -> subprocess.CompletedProcess:
    secret_file, canaries = host_secret
    written = tmp_path / "written.out"
    (project / "attack.yaml").write_text(
        PIPELINE.format(query=query.format(secret_file=secret_file, written=written))
    )
    out = tmp_path / "run"
    proc = _cli(project, canaries, mode, "attack.yaml", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not written.exists()
    assert_nowhere(
        canaries,
        texts={"stdout": proc.stdout, "stderr": proc.stderr},
        folders=[project, out],
        skip=[secret_file],
    )
    return proc


@pytest.mark.parametrize("mode", ["run", "plan"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_validation_refuses_sql_that_reaches_the_host(project, tmp_path, host_secret, attack, mode):
    proc = _attack(project, tmp_path, host_secret, ATTACKS[attack], mode)
    assert "error OML063" in proc.stderr and "attack.yaml:14:" in proc.stderr, proc.stderr
    assert "FAIL" not in proc.stdout  # no worker started


@pytest.mark.parametrize("mode", ["run", "plan"])
@pytest.mark.parametrize("attack", list(RUNTIME_ATTACKS))
def test_the_workers_duckdb_cannot_reach_the_host(project, tmp_path, host_secret, attack, mode):
    proc = _attack(project, tmp_path, host_secret, RUNTIME_ATTACKS[attack], mode)
    failed = [line for line in proc.stdout.splitlines() if line.startswith("  FAIL  steal")]
    assert failed, proc.stdout + proc.stderr
    # a file named as a table is looked up among the step's tables, and is not one
    assert any(why in failed[0] for why in ("not allowed", "does not exist")), failed


def test_validation_only_parses_the_sql(project, tmp_path, host_secret):
    """`validate` and `compile` parse every query with the locked DuckDB and run none of them."""
    secret_file, canaries = host_secret
    written = tmp_path / "written.out"
    for name, attack in ATTACKS.items():
        query = attack.format(secret_file=secret_file, written=written)
        (project / f"attack-{len(name)}-{abs(hash(name)) % 1000}.yaml").write_text(
            PIPELINE.format(query=query)
        )
    for command in ("validate", "compile"):
        proc = _cli(project, canaries, command, ".")
        assert "Traceback" not in proc.stdout + proc.stderr
        assert_nowhere(canaries, texts={"stdout": proc.stdout, "stderr": proc.stderr}, folders=[project])
    assert not written.exists()


def test_a_python_variable_is_not_a_table(host_secret):
    """DuckDB's Python replacement scan would read any Arrow table or DataFrame in the caller's frame by
    its name; the locked connection refuses it."""
    import pyarrow as pa

    from drivers._duckdb import connect

    _, canaries = host_secret
    host_secrets = pa.table({"token": [canaries["GITHUB_TOKEN"]]})  # noqa: F841  (the target of the attack)
    con = connect()
    with pytest.raises(Exception, match="host_secrets") as caught:
        con.execute("SELECT * FROM host_secrets").fetchall()
    assert_nowhere(canaries, texts={"error": str(caught.value)})
