"""`osiris-action run` as a user runs it: progress lines, the report, exit codes, and Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"

SLOW = """oml_version: "0.1.0"
name: slow
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config: {connection: "@filesystem.local", path: orders.csv}
  - id: spin
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: SELECT count(*) AS n FROM range(100000000000) a, input_df
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project)
    (project / "slow.yaml").write_text(SLOW)
    return project


def _run(project: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {"PATH": os.environ["PATH"], "HOME": str(project)}
    return subprocess.Popen(
        [sys.executable, "-m", "osiris_action", "run", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_quickstart_prints_progress_and_report(tmp_path):
    project = _project(tmp_path)
    proc = _run(project, "orders-summary.yaml", "--out", str(tmp_path / "out"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "ok    read-orders" in out and "0 → 1,000 rows" in out
    assert "orders-summary: SUCCESS" in out and "hash parity: OK" in out
    for name in ("events.jsonl", "manifest.json", "report.json", "summary.md"):
        assert (tmp_path / "out" / name).is_file()
    written = next((tmp_path / "out" / "data").rglob("revenue_by_country.csv")).read_text().splitlines()
    assert written[0] == "country,orders,revenue,last_order" and len(written) == 9


def test_ctrl_c_stops_the_worker_and_still_writes_the_report(tmp_path):
    project = _project(tmp_path)
    proc = _run(project, "slow.yaml", "--out", str(tmp_path / "out"))
    events = tmp_path / "out" / "events.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the slow step is really running on all its input
        lines = events.read_text().split("\n")[:-1] if events.is_file() else []  # whole lines only
        seen = [json.loads(line) for line in lines]
        started = {e.get("step_id") for e in seen if e["event"] == "step_start"}
        done = {e.get("step_id") for e in seen if e["event"] == "step_complete"}
        if "spin" in started and "read-orders" in done:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "cancelled"
    # the spinning step had read every row of the extract, which was done; it was stopped itself
    assert [s["status"] for s in report["steps"]] == ["success", "failed"]
    assert "Traceback" not in err
    assert (tmp_path / "out" / "summary.md").read_text().count("slow") >= 1


def test_timeout_is_one_clear_error(tmp_path):
    project = _project(tmp_path)
    proc = _run(project, "slow.yaml", "--out", str(tmp_path / "out"), "--timeout", "3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "did not finish within 3 s" in report["error"]["message"]
    assert "did not finish within 3 s" in out and "Traceback" not in out + err


LONG = """oml_version: "0.1.0"
name: long
steps:
  - id: numbers
    component: duckdb.processor
    mode: transform
    config:
      query: SELECT range AS n, range % 7 AS m FROM range(40000000)
  - id: save
    component: filesystem.csv_writer
    mode: write
    needs: [numbers]
    config: {connection: "@filesystem.local", path: out/numbers.csv}
"""


def test_a_long_step_shows_its_row_count_while_it_runs(tmp_path):
    """Without a terminal, the live count comes as spaced lines; events.jsonl carries it, rate-limited."""
    project = _project(tmp_path)
    (project / "long.yaml").write_text(LONG)
    proc = _run(project, "long.yaml", "--out", str(tmp_path / "out"))
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    live = [line for line in out.splitlines() if line.startswith("  …")]
    assert live and "rows" in live[0] and ("numbers" in live[0] or "save" in live[0])
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    progress = [e for e in events if e["event"] in ("write.progress", "step.progress")]
    writes = [e for e in progress if e["event"] == "write.progress"]
    assert writes and all(e["step_id"] == "save" and e["rows"] > 0 for e in writes)
    run_s = next(e for e in events if e["event"] == "run_complete")["duration_ms"] / 1000
    assert len(progress) <= 2 * (run_s / 2 + 1)  # at most one event per step every 2 s


SELF_JOIN_LIMIT = """oml_version: "0.1.0"
name: partial
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config: {connection: "@filesystem.local", path: orders.csv}
  - id: few
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: SELECT a.* FROM input_df a JOIN input_df b USING (order_id) LIMIT 3
  - id: first
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: SELECT * FROM input_df LIMIT 2
  - id: save
    component: filesystem.csv_writer
    mode: write
    needs: [few]
    config: {connection: "@filesystem.local", path: out/few.csv}
"""


ONE_READER_LIMIT = """oml_version: "0.1.0"
name: limited
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config: {connection: "@filesystem.local", path: orders.csv}
  - id: first
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: SELECT * FROM input_df LIMIT 2
  - id: save
    component: filesystem.csv_writer
    mode: write
    needs: [first]
    config: {connection: "@filesystem.local", path: out/first.csv}
"""


def test_counts_stay_whole_when_a_step_reads_part_of_a_stream_or_reads_it_twice(tmp_path):
    """LIMIT stops reading early and a self-join reads its input twice; every count is still the whole."""
    project = _project(tmp_path)
    (project / "partial.yaml").write_text(SELF_JOIN_LIMIT)
    proc = _run(project, "partial.yaml", "--out", str(tmp_path / "out"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    counts = {s["id"]: (s["rows_in"], s["rows_out"]) for s in report["steps"]}
    assert counts == {"read-orders": (0, 1000), "few": (1000, 3), "first": (1000, 2), "save": (3, 3)}
    (project / "limit.yaml").write_text(ONE_READER_LIMIT)  # the stream itself is left unread
    proc = _run(project, "limit.yaml", "--out", str(tmp_path / "out2"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    report = json.loads((tmp_path / "out2" / "report.json").read_text())
    counts = {s["id"]: (s["rows_in"], s["rows_out"]) for s in report["steps"]}
    assert counts == {"read-orders": (0, 1000), "first": (1000, 2), "save": (2, 2)}
