"""The report is what happened: checks on raw events, masks only on what is shown, outputs untouched.

Each test runs a real pipeline in the local sandbox (real DuckDB, real PostgreSQL where it writes).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from osiris_action.run import Run, RunOptions, prepare, run_pipeline
from osiris_action.sandbox.base import SandboxError
from osiris_action.sandbox.local import LocalSandbox
from tests.conftest import pg_execute
from tests.e2b.envd_server import SimulatedPython

ROWS = 1000
# Secrets that are also words of the report: the driver file `_postgres.py`, the writer's component,
# a column, the target table, a step id and a number the report prints (the row count).
COMMON = ["postgres", "_postgres", "amount", "totals", "1000"]


def _project(tmp_path: Path, dsn: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    lines = ["id,country,amount"] + [f"{i},{'DE' if i % 4 else 'US'},{i}.5" for i in range(1, ROWS + 1)]
    (data / "orders.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "osiris_connections.yaml").write_text(
        "connections:\n"
        "  filesystem: {local: {default: true, base_dir: ./data}}\n"
        "  supabase:\n"
        '    staging: {pg_dsn: "${PG_DSN}"}\n'
    )
    pipeline = tmp_path / "totals.yaml"
    pipeline.write_text("""
oml_version: "0.1.0"
name: totals
steps:
  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: orders.csv}}
  - id: totals
    component: duckdb.processor
    mode: transform
    needs: [read]
    config: {query: "SELECT id, country, amount FROM input_df"}
  - id: load
    component: postgres.writer
    mode: write
    needs: [totals]
    config: {connection: "@supabase.staging", table: totals, write_mode: replace, primary_key: [id]}
""")
    return pipeline


def _shown_files(out: Path) -> dict[str, str]:
    names = ["events.jsonl", "report.json", "summary.md", "manifest.json"]
    return {name: (out / name).read_text(encoding="utf-8") for name in names}


@pytest.mark.db
def test_secrets_that_are_common_words_mask_the_output_but_not_the_verdict(tmp_path, pg_db, monkeypatch):
    # trust authentication accepts any password: "postgres" is the password of countless staging setups
    dsn = pg_db.pg_dsn.replace("postgres@", "postgres:postgres@", 1)
    pipeline = _project(tmp_path, dsn)
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ, PG_DSN=dsn)
    options = RunOptions(out=tmp_path / "out")
    prepared = prepare(pipeline, options, environ)
    assert "postgres" in prepared.redactor.secrets  # learned from the DSN, as in a real run
    for value in COMMON:
        prepared.redactor.add(value)
    lines: list[str] = []

    report = Run(prepared, options, lines.append, environ).execute()

    assert report.status == "success", report.error
    assert report.hash_parity and all(row.match for row in report.parity)
    assert [s.rows_out for s in report.steps] == [ROWS, ROWS, ROWS]
    assert report.writes[0].rows_written == ROWS
    assert pg_execute(pg_db, "SELECT count(*) FROM totals") == [(ROWS,)]
    shown = _shown_files(tmp_path / "out")
    for name, text in [*shown.items(), ("console", "\n".join(lines))]:
        for value in COMMON:
            assert value not in text, (name, value)
    data = json.loads(shown["report.json"])  # still valid JSON where a number was masked
    assert data["status"] == "success" and data["hash_parity"] is True
    assert data["steps"][0]["rows_out"] == "***"
    assert any("masked wherever it occurs" in w for w in report.warnings)
    for line in shown["events.jsonl"].splitlines():
        json.loads(line)


def _csv_project(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("\n".join(["id,note", *rows]) + "\n")
    (tmp_path / "osiris_connections.yaml").write_text(
        "connections:\n  filesystem: {local: {default: true, base_dir: ./data}}\n"
    )
    pipeline = tmp_path / "copy.yaml"
    pipeline.write_text("""
oml_version: "0.1.0"
name: copy
steps:
  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}
  - {id: write, component: filesystem.csv_writer, mode: write, needs: [read], config: {path: out/copy.csv}}
""")
    return pipeline


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def test_data_files_come_back_byte_for_byte_and_a_secret_in_them_is_named(tmp_path, monkeypatch):
    rows = ["1,s3cr3t-value", "2,password=hunter22", f"3,{JWT}"]
    pipeline = _csv_project(tmp_path, rows)
    monkeypatch.chdir(tmp_path)
    options = RunOptions(out=tmp_path / "out")
    prepared = prepare(pipeline, options, dict(os.environ))
    prepared.redactor.add("s3cr3t-value")

    report = Run(prepared, options, lambda _: None, dict(os.environ)).execute()

    assert report.status == "success", report.error
    copy = tmp_path / "out" / "data" / "filesystem-local" / "out" / "copy.csv"
    written = (tmp_path / "data" / "in.csv").read_bytes()  # the writer keeps values and order
    assert copy.read_bytes() == written
    # and it still matches the fingerprint the worker measured on the rows it wrote
    import pyarrow.csv
    from osiris_drivers._streams import fingerprint

    assert fingerprint(pyarrow.csv.read_csv(copy)) == report.steps[-1].fingerprint
    assert [w for w in report.warnings if "data/filesystem-local/out/copy.csv" in w and "secret" in w]
    # the diagnostics around it are still masked
    assert "s3cr3t-value" not in (tmp_path / "out" / "report.json").read_text()
    assert "hunter22" not in (tmp_path / "out" / "events.jsonl").read_text()


def test_a_local_run_keeps_outputs_over_the_e2b_download_cap(tmp_path, monkeypatch):
    rows = [f"{i},{'x' * 100}" for i in range(25_000)]  # about 2.6 MB
    pipeline = _csv_project(tmp_path, rows)
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ, E2B_ARTIFACT_MAX_MB="1")

    report, out = run_pipeline(pipeline, RunOptions(out=tmp_path / "out"), lambda _: None, environ)

    assert report.status == "success"
    assert "data/filesystem-local/out/copy.csv" in report.artifacts and not report.skipped_artifacts
    assert (out / "data/filesystem-local/out/copy.csv").stat().st_size > 2 * 1024 * 1024


def test_a_worker_killed_mid_run_is_a_crash_with_its_signal_not_tampering(tmp_path, monkeypatch):
    rows = [f"{i},{'x' * 50}" for i in range(10)]
    pipeline = _csv_project(tmp_path, rows)
    # a transform slow enough to be killed in: DuckDB sleeps through a cross join of ranges
    pipeline.write_text(
        pipeline.read_text().replace(
            "  - {id: write,",
            "  - id: slow\n    component: duckdb.processor\n    mode: transform\n    needs: [read]\n"
            "    config: {query: 'SELECT count(*) AS n FROM range(100000000) a, range(1000) b'}\n"
            "  - {id: write,",
        )
    )
    monkeypatch.chdir(tmp_path)
    options = RunOptions(out=tmp_path / "out")
    prepared = prepare(pipeline, options, dict(os.environ))
    started = threading.Event()
    run = Run(prepared, options, lambda line: started.set() if "ok" in line else None, dict(os.environ))

    def kill_when_running() -> None:
        started.wait(30)
        time.sleep(0.3)
        os.killpg(run.sandbox._proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    report = run.execute()
    killer.join()

    assert report.status == "failure" and not report.completed
    assert "killed by SIGKILL during step 'slow'" in report.error["message"]
    assert "hash parity" not in report.error["message"]
    assert report.hash_parity  # the files were verified before it died


def test_the_local_interpreter_is_checked_before_the_worker_starts(tmp_path):
    old = SimulatedPython(version="3.10.12").install(tmp_path) / "python3"
    with LocalSandbox(python=str(old)) as box, pytest.raises(SandboxError) as info:
        box.check_python()
    assert info.value.message == "the sandbox's Python is 3.10.12; the worker needs Python 3.11 or newer"
    with LocalSandbox(python=str(tmp_path / "missing")) as box, pytest.raises(SandboxError) as info:
        box.check_python()
    # started directly it cannot be executed; started through setpriv it exits 127: both name it
    message = info.value.message
    assert "could not be started" in message or "(not found)" in message
    assert "3.11" in info.value.hint
    with LocalSandbox() as box:
        box.check_python()  # this interpreter is new enough
