"""The worker: runs a compiled manifest; the only program started inside a sandbox.

It is uploaded as a single file next to `osiris_drivers/`, `manifest.json`, `connections.json` and
`bundle.json`, and imports nothing of `osiris_action`, so the same file runs on a laptop, in the local
sandbox and in E2B. Its stdout carries events as JSON lines and nothing else: that stream is the only
channel out of the sandbox, and the host builds its whole report from it.

    python worker.py --run-id RUN_ID      (in the bundle folder)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ENV_REF = re.compile(r"\$\{([^}]+)\}")
EXIT_FAILED, EXIT_PARITY = 1, 3


class Events:
    """Writes events to the original stdout; fd 1 itself is pointed at stderr so that nothing a
    library prints can corrupt the stream."""

    def __init__(self, run_id: str, stream=None):
        self.run_id = run_id
        self.seq = 0
        if stream is not None:  # in-process use (benchmarks): leave the file descriptors alone
            self.out = stream
            return
        self.out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def emit(self, event: str, step_id: str | None = None, **fields) -> None:
        self.seq += 1
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "run_id": self.run_id,
            "seq": self.seq,
            "event": event,
        }
        if step_id is not None:
            record["step_id"] = step_id
        record.update(fields)
        self.out.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        self.out.flush()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_bundle(root: Path, events: Events) -> bool:
    """Hash what actually arrived and report every file; compare with the host's list."""
    listed = json.loads((root / "bundle.json").read_text())["files"]
    expected_list = os.environ.get("OSIRIS_BUNDLE_SHA256")
    ok = expected_list is None or expected_list == sha256(root / "bundle.json")
    for rel, expected in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            events.emit("driver_file_verified", path=rel, sha256=None, size_bytes=None, error="not_found")
            ok = False
            continue
        actual = sha256(path)
        events.emit("driver_file_verified", path=rel, sha256=actual, size_bytes=path.stat().st_size)
        ok = ok and actual == expected
    return ok


def resolve_connection(spec: dict | None) -> dict | None:
    """Fill `${VAR}` references from this process's environment, set by the host for this command."""
    if spec is None:
        return None
    resolved = {}
    for key, value in spec.items():
        if isinstance(value, str):
            value = ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)
        resolved[key] = value
    return resolved


def fingerprint(table) -> str:
    """Order-independent: the same rows in any order give the same value, on any machine."""
    from osiris_drivers._duckdb import connect

    con = connect()
    con.register("t", table)
    count, total = con.execute("SELECT count(*), coalesce(sum(hash(t)), 0) FROM t").fetchall()[0]
    con.close()
    schema = ",".join(f"{f.name}:{f.type}" for f in table.schema)
    return hashlib.sha256(f"{schema}|{count}|{total}".encode()).hexdigest()[:16]


def run_step(
    step: dict,
    tables: dict,
    root: Path,
    connections: dict,
    events: Events,
    settings: dict,
    prints: dict | None = None,
) -> None:
    """One step: its inputs by every name they are visible under, its driver, its measured outcome."""
    from osiris_drivers._common import StepContext

    sid = step["id"]
    plan = bool(settings.get("plan"))
    started = time.perf_counter()
    events.emit("step_start", step_id=sid, component=step["component"], driver=step["driver"])
    inputs = {}
    rows_in = 0
    for need, names in step["inputs"].items():
        table = tables[need]
        rows_in += table.num_rows
        for name in names:
            inputs[name] = table
        events.emit("inputs_resolved", step_id=sid, from_step=need, names=names, rows=table.num_rows)
    config = dict(step["config"])
    isolated = settings.get("isolate", {}).get(sid)
    if isolated:
        config["schema"] = isolated
    artifacts = root / "artifacts" / sid
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "cleaned_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    ctx = StepContext(
        step_id=sid,
        connection=resolve_connection(connections.get(sid)),
        artifacts_dir=artifacts,
        base_dir=root,
        emit=lambda event, **fields: events.emit(event, step_id=sid, **fields),
        plan_only=plan,
        create_schema=bool(isolated),
        diff=bool(settings.get("diff")),
        base_schema=step["config"].get("schema") if isolated else None,
    )
    driver = importlib.import_module(f"osiris_drivers.{step['driver']}")
    call = getattr(driver, "plan", None) if plan else driver.run
    if call is None and step["mode"] == "write":  # a writer without a plan function must not run at all
        events.emit(
            "step_planned",
            step_id=sid,
            columns=None,
            duration_ms=0.0,
            note=f"{step['component']} cannot plan; its target was not inspected",
        )
        return
    call = call or driver.run  # extractors and transforms only read: run them on empty inputs
    result = call(
        {"id": sid, "component": step["component"], "mode": step["mode"], "config": config}, inputs, ctx
    )
    duration = round((time.perf_counter() - started) * 1000, 1)
    if plan:
        if result is not None:
            tables[sid] = result.slice(0, 0)
        columns = (
            [{"name": f.name, "type": str(f.type)} for f in result.schema] if result is not None else None
        )
        events.emit("step_planned", step_id=sid, columns=columns, duration_ms=duration)
        return
    prints = {} if prints is None else prints
    if result is not None:
        tables[sid] = result
        rows_out = result.num_rows
        output = prints[sid] = fingerprint(result)
    else:
        written = ctx.results.get("write.complete")
        if written is None:
            raise RuntimeError(f"driver {step['driver']} returned no table and reported no write.complete")
        rows_out = written.get("rows_written")  # None: the target did not say (not measured)
        if (isolated or ctx.diff) and not ({"diff.complete", "diff.unavailable"} & set(ctx.results)):
            reason = f"{step['component']} writes no table that can be compared"
            ctx.report("diff.unavailable", reason=reason)
        # a writer's data is its input: reuse the upstream fingerprint rather than hash it again
        needs = list(step["inputs"])
        output = prints.get(needs[0]) if len(needs) == 1 else None
        if output is None and inputs:
            output = fingerprint(next(iter(inputs.values())))
    events.emit(
        "step_complete",
        step_id=sid,
        rows_in=rows_in,
        rows_out=rows_out,
        duration_ms=duration,
        fingerprint=output,
    )


def execute(root: Path, events: Events) -> int:
    """Verify the bundle, then run every step in manifest order; returns the process exit code."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    manifest = json.loads((root / "manifest.json").read_text())
    events.emit(
        "run_start",
        pipeline=manifest["pipeline"]["id"],
        steps=len(manifest["steps"]),
        python=sys.version.split()[0],
    )
    if not verify_bundle(root, events):
        events.emit(
            "run_complete",
            status="failed",
            reason="bundle_mismatch",
            message="the files that arrived differ from the files the host sent",
        )
        return EXIT_PARITY
    connections = json.loads((root / "connections.json").read_text())
    settings_file = root / "run.json"  # how to run this time: plan only, per-PR schemas
    settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    tables: dict = {}
    prints: dict = {}
    started = time.perf_counter()
    for step in manifest["steps"]:
        try:
            run_step(step, tables, root, connections, events, settings, prints)
        except Exception as exc:  # every failure becomes one event; the host renders it
            events.emit("step_failed", step_id=step["id"], **_failure(exc))
            events.emit(
                "run_complete",
                status="failed",
                failed_step=step["id"],
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return EXIT_FAILED
    events.emit(
        "run_complete", status="success", duration_ms=round((time.perf_counter() - started) * 1000, 1)
    )
    return 0


def _failure(exc: Exception) -> dict:
    """A StepError carries its message and hint; anything else is a driver bug, shown with its traceback."""
    if hasattr(exc, "hint"):
        return {
            "error_type": getattr(exc, "error_type", type(exc).__name__),
            "message": exc.message,
            "hint": exc.hint,
        }
    return {
        "error_type": type(exc).__name__,
        "message": f"{type(exc).__name__}: {exc}",
        "hint": "This is a bug in the driver, not in the pipeline; the traceback is in events.jsonl.",
        "traceback": traceback.format_exc(limit=8),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a compiled Osiris manifest.")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--root", default=".")
    args = parser.parse_args(argv)
    return execute(Path(args.root).resolve(), Events(args.run_id))


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Every event is flushed and every file the drivers wrote is closed: skip the interpreter's teardown
    # of DuckDB and Arrow, which takes 0.1-0.15 s and tells the host nothing.
    os._exit(code)
