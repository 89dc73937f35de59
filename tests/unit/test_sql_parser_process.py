"""DuckDB parses a pipeline's SQL in a child process of its own, never in the process holding secrets.

Each test drives the real child (`python -m osiris_action.oml.sql`): killed, stopped and spied on
through /proc, as a crash, a hang or a curious query would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from osiris_action.oml import sql
from tests.unit.test_run_cli import _project, _run

CANARY = "canary-8f3a1c77e2d94b06"


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _parser_pid() -> int:
    sql.start()
    pids = [p for p in _children(os.getpid()) if "osiris_action.oml.sql" in _cmdline(p)]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.fixture(autouse=True)
def _fresh_parser():
    sql.close()
    yield
    sql.close()


def test_the_parser_gets_none_of_the_hosts_environment(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", CANARY)
    monkeypatch.setenv("OSIRIS_TEST_SECRET", CANARY)
    pid = _parser_pid()
    findings = sql.check_queries([("SELECT 1 FROM x WHERE", {"x"})])[0]
    assert [f.code for f in findings] == ["OML060"]
    with open(f"/proc/{pid}/environ", "rb") as handle:
        environ = handle.read()
    assert CANARY.encode() not in environ
    assert b"GITHUB_TOKEN" not in environ


def test_a_parser_that_dies_costs_a_finding_and_the_next_call_starts_another():
    os.kill(_parser_pid(), signal.SIGKILL)
    time.sleep(0.1)
    [findings] = sql.check_queries([("SELECT 1", set())])
    assert [(f.code, f.severity) for f in findings] == [("OML060", "error")]
    assert "DuckDB's parser stopped (exit status -9) on this query" in findings[0].message
    assert sql.check_queries([("SELECT a FROM t", {"t"})]) == [[]]


def test_a_parser_that_hangs_is_stopped_after_the_timeout(monkeypatch):
    monkeypatch.setattr(sql, "PARSE_TIMEOUT_S", 0.5)
    pid = _parser_pid()
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    [findings] = sql.check_queries([("SELECT 1", set())])
    assert time.monotonic() - started < 5
    assert "did not finish within 0.5 s" in findings[0].message
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped, not left stopped
    assert sql.check_queries([("SELECT 1", set())]) == [[]]


def test_a_huge_query_goes_through_the_pipe_whole():
    # 4 MB of SQL each way is far past a pipe's buffer: neither side may wait on the other
    query = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(300_000)) + " FROM t WHERE"
    [findings] = sql.check_queries([(query, {"t"})])
    assert [f.code for f in findings] == ["OML060"]
    assert query[findings[0].offset :].startswith("WHERE") or findings[0].offset == len(query)


def test_validation_never_loads_duckdb_in_the_host(tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        'oml_version: "0.1.0"\nname: p\nsteps:\n'
        "  - id: q\n    component: duckdb.processor\n    mode: transform\n"
        "    config: {query: 'SELECT * FROM nowhere WHERE'}\n"
    )
    script = (
        "import sys\nfrom osiris_action import cli\n"
        f"code = cli.main(['validate', {str(pipeline)!r}])\n"
        "print('duckdb loaded:', 'duckdb' in sys.modules, 'exit', code)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "OML060" in out.stdout, out.stdout + out.stderr
    assert "duckdb loaded: False exit 1" in out.stdout


def test_a_run_ends_the_parser_before_its_worker_starts(tmp_path: Path):
    project = _project(tmp_path)
    proc = _run(project, "slow.yaml", "--out", str(tmp_path / "out"))
    try:
        events = tmp_path / "out" / "events.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and '"step_start"' not in _read(events):
            time.sleep(0.02)
        assert '"step_start"' in _read(events), "the worker never started"
        assert not [p for p in _children(proc.pid) if "osiris_action.oml.sql" in _cmdline(p)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
