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
from dataclasses import dataclass, field
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


@dataclass
class Engine:
    """Runs the steps of a manifest as one pipeline of streams.

    Each step's driver is called in manifest order and returns at once with a lazy reader; rows move when
    the last step of a chain (a writer) pulls them, so extract, transform and load overlap. A step read by
    one later step hands its stream straight on; a step read by several is spilled to an IPC file in the
    run folder and each reader gets its own pass over it; a step nobody reads is drained at once. A step
    ends (step_complete) when its last batch has passed and its inputs are drained."""

    root: Path
    connections: dict
    events: Events
    settings: dict
    manifest: dict
    prints: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    started: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    finished: set = field(default_factory=set)

    def __post_init__(self):
        from osiris_drivers._streams import Progress

        self.progress = Progress(self.events.emit)
        self.readers_of: dict[str, int] = {}
        for step in self.manifest["steps"]:
            for need in step["inputs"]:
                self.readers_of[need] = self.readers_of.get(need, 0) + 1
        self.spill_dir = self.root / ".spill"

    def run(self, step: dict) -> None:
        """Start one step: resolve its inputs, call its driver, and wire its output."""
        import pyarrow as pa
        from osiris_drivers._common import StepContext, reader
        from osiris_drivers._streams import Ready, Spilled, Stream

        sid = step["id"]
        plan = bool(self.settings.get("plan"))
        self.started[sid] = time.perf_counter()
        self.events.emit("step_start", step_id=sid, component=step["component"], driver=step["driver"])
        inputs, sources = {}, []
        for need, names in step["inputs"].items():
            stream, output = self._open(need)
            sources.append((need, output))
            for name in names:
                inputs[name] = stream
            rows = output.rows if isinstance(output, Spilled | Ready) else None
            self.events.emit("inputs_resolved", step_id=sid, from_step=need, names=names, rows=rows)
        config = dict(step["config"])
        isolated = self.settings.get("isolate", {}).get(sid)
        if isolated:
            config["schema"] = isolated
        # the id names a folder: never a path out of artifacts/, whatever manifest arrived
        artifacts = self.root / "artifacts" / (re.sub(r"[/\\\0]", "_", sid).lstrip(".") or "_")
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "cleaned_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        self.spill_dir.mkdir(exist_ok=True)
        ctx = StepContext(
            step_id=sid,
            connection=resolve_connection(self.connections.get(sid)),
            artifacts_dir=artifacts,
            base_dir=self.root,
            emit=lambda event, **fields: self.events.emit(event, step_id=sid, **fields),
            plan_only=plan,
            create_schema=bool(isolated),
            spill_dir=self.spill_dir,
            diff=bool(self.settings.get("diff")),
            base_schema=step["config"].get("schema") if isolated else None,
        )
        driver = importlib.import_module(f"osiris_drivers.{step['driver']}")
        call = getattr(driver, "plan", None) if plan else driver.run
        if call is None and step["mode"] == "write":  # a writer without a plan function must not run at all
            self.events.emit(
                "step_planned",
                step_id=sid,
                columns=None,
                duration_ms=0.0,
                note=f"{step['component']} cannot plan; its target was not inspected",
            )
            self.finished.add(sid)
            return
        call = call or driver.run  # extractors and transforms only read: run them on empty inputs
        if step["mode"] == "write" and not plan:  # what flows into a writer is what it writes: count it
            metered = {id(s): self._metered_write(sid, s) for s in inputs.values()}
            inputs = {name: metered[id(s)] for name, s in inputs.items()}
        result = call(
            {"id": sid, "component": step["component"], "mode": step["mode"], "config": config}, inputs, ctx
        )
        if plan:
            self._planned(sid, result)
            return
        if result is None:
            self._written(step, ctx, sources)
            return
        readers = self.readers_of.get(sid, 0)
        if isinstance(result, pa.Table):  # already whole in memory: the step is done, every reader shares it
            self.outputs[sid] = Ready(result, readers)
            self._complete(step, result.num_rows, self.outputs[sid].print, sources)
            return
        stream = Stream(
            sid,
            reader(result),
            self.started[sid],
            self.progress,
            self.failures,
            lambda s: self._complete(step, s.rows, s.print, sources, stream=s),
        )
        if readers == 1:
            self.outputs[sid] = stream
            return
        if readers == 0:
            stream.drain()
            return
        from osiris_drivers._common import StepError, spill

        path = self.spill_dir / f"{len(self.outputs)}.arrow"
        try:
            spill(stream.reader(), path)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise StepError(
                f"Could not keep the output of step '{sid}' for its {readers} readers: {exc.strerror}.",
                "Its rows are written once to the run folder (Arrow IPC) for the steps that read them: "
                "free disk space there, or let fewer steps read this one.",
            ) from None
        self.outputs[sid] = Spilled(path, stream.rows, stream.print, readers)

    def _open(self, need: str):
        from osiris_drivers._common import open_spill
        from osiris_drivers._streams import Spilled

        output = self.outputs[need]
        if isinstance(output, Spilled):
            return open_spill(output.path), output
        return output.reader(), output

    def _metered_write(self, sid: str, stream):
        """The writer's input, counted on its way in for `write.progress`."""
        import pyarrow as pa

        started, progress = self.started[sid], self.progress

        def batches():
            rows = 0
            for batch in stream:
                rows += batch.num_rows
                progress.tick(sid, "write.progress", rows, started)
                yield batch

        if not isinstance(stream, pa.RecordBatchReader):
            return stream
        return pa.RecordBatchReader.from_batches(stream.schema, batches())

    def _finish_inputs(self, sources) -> tuple[int, list]:
        """Drain what the step left of its inputs and release its spilled ones; the rows they carried and
        their fingerprints."""
        from osiris_drivers._streams import Ready, Spilled, Stream

        rows, prints = 0, []
        for _need, output in sources:
            if isinstance(output, Stream):
                output.drain()
            elif isinstance(output, Spilled | Ready):
                output.readers -= 1
                if output.readers == 0 and isinstance(output, Spilled):
                    output.path.unlink(missing_ok=True)
                elif output.readers == 0:
                    output.table = None  # released once its last reader is done
            rows += output.rows
            prints.append(output.print)
        return rows, prints

    def _complete(
        self, step: dict, rows_out: int, output: str | None, sources, writer: bool = False, stream=None
    ) -> None:
        sid = step["id"]
        rows_in, prints = self._finish_inputs(sources)
        if writer:  # a writer's data is its input: its fingerprint is the upstream one, measured on the way
            output = prints[0] if len(prints) == 1 else None
        self.prints[sid] = output
        self.finished.add(sid)
        duration = time.perf_counter() - self.started[sid]
        self.events.emit(
            "step_complete",
            step_id=sid,
            rows_in=rows_in,
            rows_out=rows_out,
            duration_ms=round(duration * 1000, 1),
            fingerprint=output,
            **self._own_time(stream, duration if writer else None, sources),
        )

    @staticmethod
    def _own_time(stream, writer_s: float | None, sources) -> dict:
        """How long the step itself worked, without the steps whose rows it pulled: steps run nested in
        one another (a writer pulls the transform, which pulls the extract), so a step's own time is the
        time spent producing its batches less what its inputs spent producing and hashing theirs."""
        from osiris_drivers._streams import Stream

        if stream is None and writer_s is None:
            return {}
        inner = sum(o.busy_s + o.hash_s for _, o in sources if isinstance(o, Stream))
        total = stream.busy_s if stream is not None else writer_s
        own = {"own_ms": round(max(total - inner, 0.0) * 1000, 1)}
        if stream is not None:
            own["fingerprint_ms"] = round(stream.hash_s * 1000, 1)
        return own

    def _written(self, step: dict, ctx, sources) -> None:
        written = ctx.results.get("write.complete")
        if written is None:
            raise RuntimeError(f"driver {step['driver']} returned no table and reported no write.complete")
        isolated = self.settings.get("isolate", {}).get(step["id"])
        if (isolated or ctx.diff) and not ({"diff.complete", "diff.unavailable"} & set(ctx.results)):
            ctx.report("diff.unavailable", reason=f"{step['component']} writes no table that can be compared")
        rows_out = written.get("rows_written")  # None: the target did not say (not measured)
        self._complete(step, rows_out, None, sources, writer=True)
        # (own_ms of a writer includes its connection and DDL: everything but pulling its input)

    def _planned(self, sid: str, result) -> None:
        import pyarrow as pa
        from osiris_drivers._common import reader
        from osiris_drivers._streams import EmptyOutput

        columns = None
        if result is not None:
            schema = reader(result).schema if not isinstance(result, pa.Table) else result.schema
            if isinstance(result, pa.RecordBatchReader):
                result.read_all()  # a transform planned on empty inputs: let it finish and close
            self.outputs[sid] = EmptyOutput(schema.empty_table())
            columns = [{"name": f.name, "type": str(f.type)} for f in schema]
        duration = round((time.perf_counter() - self.started[sid]) * 1000, 1)
        self.finished.add(sid)
        self.events.emit("step_planned", step_id=sid, columns=columns, duration_ms=duration)

    def culprit(self, current: str) -> tuple[str, BaseException | None]:
        """The step a failure started in: the first stream that raised, else the step being run."""
        if self.failures:
            return self.failures[0]
        return current, None

    def unfinished(self) -> list[str]:
        return [sid for sid in self.started if sid not in self.finished]

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.spill_dir, ignore_errors=True)


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
    engine = Engine(root, connections, events, settings, manifest)
    started = time.perf_counter()
    try:
        for step in manifest["steps"]:
            try:
                engine.run(step)
            except Exception as exc:  # every failure becomes one event; the host renders it
                failed, origin = engine.culprit(step["id"])
                events.emit("step_failed", step_id=failed, **_failure(origin or exc))
                for other in engine.unfinished():
                    if other != failed:
                        events.emit(
                            "step_failed",
                            step_id=other,
                            error_type="Interrupted",
                            message=f"stopped because step '{failed}' failed while rows were flowing",
                            hint=f"Fix step '{failed}'; this step did not fail by itself.",
                        )
                events.emit(
                    "run_complete",
                    status="failed",
                    failed_step=failed,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
                return EXIT_FAILED
    finally:
        engine.cleanup()
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
    _undumpable()
    return execute(Path(args.root).resolve(), Events(args.run_id))


def _undumpable() -> None:
    """Another worker running beside this one (parallel pipelines) must not read this one's secrets."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not Linux
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0 (E2B sandboxes too)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Every event is flushed and every file the drivers wrote is closed: skip the interpreter's teardown
    # of DuckDB and Arrow, which takes 0.1-0.15 s and tells the host nothing.
    os._exit(code)
