"""The worker as the sandbox runs it: a real subprocess over a bundle folder, events read back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from osiris_action.components import DRIVERS_DIR
from osiris_action.manifest import canonical_bytes

WORKER = Path(__file__).parents[2] / "osiris_action" / "worker.py"

# Test-only drivers, written into the bundle like real ones: the worker cannot tell the difference.
SOURCE = """
import pyarrow as pa
def run(step, inputs, ctx):
    print("noise a library might print")
    t = pa.table({"n": list(range(step["config"]["rows"]))})
    return pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=2))
"""
DOUBLE = """
import pyarrow as pa, pyarrow.compute as pc
def run(step, inputs, ctx):
    r = inputs["input_df"]
    assert inputs["df_make_rows"] is r and inputs["make-rows"] is r
    assert isinstance(r, pa.RecordBatchReader)
    schema = r.schema.append(pa.field("twice", pa.int64()))
    def batches():
        for b in r:
            if step["config"].get("fail_at") is not None and b["n"][0].as_py() >= step["config"]["fail_at"]:
                raise ValueError("bad row")
            yield pa.RecordBatch.from_arrays([*b.columns, pc.multiply(b["n"], 2)], schema=schema)
    return pa.RecordBatchReader.from_batches(schema, batches())
"""
SINK = """
def run(step, inputs, ctx):
    if step["config"].get("fail"):
        from osiris_drivers._common import StepError
        raise StepError("the target refused the rows", "Check the table's constraints.")
    rows = sum(batch.num_rows for batch in next(iter(inputs.values())))
    spilled = sorted(p.name for p in ctx.spill_dir.iterdir()) if ctx.spill_dir.is_dir() else []
    ctx.report("write.complete", table="t", schema="s", mode="append", rows_written=rows - 1,
               channel_used="test", spilled=spilled)
"""


def _step(sid, driver, mode, needs, config, inputs=None):
    return {
        "id": sid,
        "component": f"test.{driver}",
        "driver": driver,
        "mode": mode,
        "needs": needs,
        "needs_inferred": False,
        "inputs": inputs or {},
        "connection": None,
        "config": config,
        "files": [f"{driver}.py"],
    }


def make_bundle(root: Path, fail: bool = False, fail_at: int | None = None, fan_out: bool = False) -> str:
    steps = [
        _step("make-rows", "source", "extract", [], {"rows": 5}),
        _step(
            "double",
            "double",
            "transform",
            ["make-rows"],
            {"fail_at": fail_at},
            {"make-rows": ["df_make_rows", "input_df", "make-rows"]},
        ),
        _step("sink", "sink", "write", ["double"], {"fail": fail}, {"double": ["df_double", "input_df"]}),
    ]
    if fan_out:
        steps.append(_step("sink2", "sink", "write", ["double"], {}, {"double": ["df_double", "input_df"]}))
    manifest = {
        "manifest_version": "1",
        "oml_version": "0.1.0",
        "compiler": "test",
        "pipeline": {"id": "p", "name": "p"},
        "steps": steps,
    }
    files = {
        "worker.py": WORKER.read_bytes(),
        "manifest.json": canonical_bytes(manifest),
        "connections.json": b"{}",
        "osiris_drivers/__init__.py": b"",
        "osiris_drivers/_common.py": (DRIVERS_DIR / "_common.py").read_bytes(),
        "osiris_drivers/_duckdb.py": (DRIVERS_DIR / "_duckdb.py").read_bytes(),
        "osiris_drivers/_streams.py": (DRIVERS_DIR / "_streams.py").read_bytes(),
        "osiris_drivers/source.py": SOURCE.encode(),
        "osiris_drivers/double.py": DOUBLE.encode(),
        "osiris_drivers/sink.py": SINK.encode(),
    }
    listed = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    files["bundle.json"] = canonical_bytes({"files": listed})
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return hashlib.sha256(files["bundle.json"]).hexdigest()


def run_worker(root: Path, seal: str | None) -> tuple[int, list[dict]]:
    env = {"PATH": "/usr/bin:/bin"} | ({"OSIRIS_BUNDLE_SHA256": seal} if seal else {})
    proc = subprocess.run(
        [sys.executable, "worker.py", "--run-id", "r1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_events_rows_and_names(tmp_path):
    seal = make_bundle(tmp_path)
    code, events = run_worker(tmp_path, seal)
    assert code == 0
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["run_id"] for e in events} == {"r1"}
    verified = {e["path"] for e in events if e["event"] == "driver_file_verified"}
    assert "osiris_drivers/double.py" in verified and "worker.py" in verified
    done = {e["step_id"]: e for e in events if e["event"] == "step_complete"}
    assert (done["make-rows"]["rows_in"], done["make-rows"]["rows_out"]) == (0, 5)
    assert (done["double"]["rows_in"], done["double"]["rows_out"]) == (5, 5)
    # a writer's rows_out is what it reports as written, not its input size
    assert (done["sink"]["rows_in"], done["sink"]["rows_out"]) == (5, 4)
    assert events[-1]["event"] == "run_complete" and events[-1]["status"] == "success"
    assert (tmp_path / "artifacts" / "double" / "cleaned_config.json").is_file()


def test_steps_overlap_and_a_fan_out_is_spilled_once(tmp_path):
    seal = make_bundle(tmp_path, fan_out=True)
    code, events = run_worker(tmp_path, seal)
    assert code == 0, events[-3:]
    order = [(e["event"], e.get("step_id")) for e in events if e["event"] in ("step_start", "step_complete")]
    # the transform starts before the extract has finished: rows flow through both
    assert order.index(("step_start", "double")) < order.index(("step_complete", "make-rows"))
    done = {e["step_id"]: e for e in events if e["event"] == "step_complete"}
    assert done["sink"]["rows_out"] == done["sink2"]["rows_out"] == 4
    assert done["sink"]["fingerprint"] == done["sink2"]["fingerprint"] == done["double"]["fingerprint"]
    writes = [e for e in events if e["event"] == "write.complete"]
    assert len(writes[0]["spilled"]) == 1  # one file for both readers...
    assert not (tmp_path / ".spill").exists()  # ...gone when the run ends


def test_a_failure_mid_stream_names_the_step_it_started_in(tmp_path):
    seal = make_bundle(tmp_path, fail_at=2)
    code, events = run_worker(tmp_path, seal)
    assert code == 1
    failed = {e["step_id"]: e for e in events if e["event"] == "step_failed"}
    assert failed["double"]["message"] == "ValueError: bad row"
    assert {failed["sink"]["error_type"], failed["make-rows"]["error_type"]} == {"Interrupted"}
    assert events[-1]["failed_step"] == "double"


def reference_fingerprint(table) -> str:
    """The fingerprint as it was computed on whole tables before steps streamed: one DuckDB query."""
    import duckdb

    con = duckdb.connect()
    con.register("t", table)
    count, total = con.execute("SELECT count(*), coalesce(sum(hash(t)), 0) FROM t").fetchall()[0]
    schema = ",".join(f"{f.name}:{f.type}" for f in table.schema)
    return hashlib.sha256(f"{schema}|{count}|{total}".encode()).hexdigest()[:16]


def test_streamed_fingerprint_equals_the_whole_table_one():
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    from osiris_drivers._streams import Fingerprint

    n = 250_003
    table = pa.table(
        {
            "id": pa.array(range(2**53, 2**53 + n), pa.int64()),
            "amount": pa.array([Decimal(i) / 100 for i in range(n)], pa.decimal128(38, 10)),
            "name": [None if i % 7 == 0 else f"naïve ☃ {i}" for i in range(n)],
            "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 900) for i in range(n)]),
        }
    )
    for size, background in ((1, False), (999, True), (65_536, False), (n, True)):
        fp = Fingerprint(table.schema, background=background)
        batches = table.to_batches(max_chunksize=size) if size > 1 else table.slice(0, 3).to_batches(1)
        if size == 1:
            fp = Fingerprint(table.schema)
            for batch in batches:
                fp.add(batch)
            assert fp.value() == reference_fingerprint(table.slice(0, 3))
            continue
        for batch in batches:
            fp.add(batch)
        assert fp.value() == reference_fingerprint(table)


def test_fingerprint_ignores_row_order(tmp_path):
    import pyarrow as pa
    from osiris_drivers._streams import fingerprint

    a = pa.table({"x": [1, 2, 3], "y": ["a", None, "c"]})
    b = pa.table({"x": [3, 1, 2], "y": ["c", "a", None]})
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(pa.table({"x": [1, 2, 4], "y": ["a", None, "c"]}))


def test_failing_step_stops_the_run(tmp_path):
    seal = make_bundle(tmp_path, fail=True)
    code, events = run_worker(tmp_path, seal)
    assert code == 1
    failed = [e for e in events if e["event"] == "step_failed"]
    assert failed[0]["step_id"] == "sink"
    # the steps whose rows were flowing into it stop with it, and say so
    assert {e["step_id"]: e["error_type"] for e in failed[1:]} == {
        "make-rows": "Interrupted",
        "double": "Interrupted",
    }
    assert failed[0]["message"] == "the target refused the rows"
    assert failed[0]["hint"] == "Check the table's constraints."
    assert events[-1]["status"] == "failed" and events[-1]["failed_step"] == "sink"


@pytest.mark.parametrize("tamper", ["driver", "bundle_list"])
def test_tampered_bundle_never_runs_a_step(tmp_path, tamper):
    seal = make_bundle(tmp_path)
    if tamper == "driver":
        (tmp_path / "osiris_drivers" / "double.py").write_text(DOUBLE + "\n# changed\n")
    else:
        (tmp_path / "bundle.json").write_text('{"files":{}}')
    code, events = run_worker(tmp_path, seal)
    assert code == 3
    assert not [e for e in events if e["event"] == "step_start"]
    assert events[-1]["reason"] == "bundle_mismatch"
