"""One pipeline run: compile, bundle, sandbox, stream events, check parity, fetch, report.

Everything that leaves this process (the console, events.jsonl, artifacts, report.json, summary.md)
passes through one Redactor that knows every secret value this run resolved.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from osiris_action import bundle as bundles
from osiris_action import components
from osiris_action import connections as conns
from osiris_action.diagnostics import format_text
from osiris_action.errors import OsirisError, UsageError
from osiris_action.manifest import canonical_bytes
from osiris_action.manifest import load as load_manifest
from osiris_action.manifest import verify as verify_manifest
from osiris_action.pipelines import Checker, display_path
from osiris_action.redact import Redactor
from osiris_action.report import RunReport, apply, check_parity, finish, new_report
from osiris_action.sandbox.base import ArtifactPolicy, Sandbox, SandboxError

EXIT_PARITY = 3


@dataclass
class RunOptions:
    target: str = "local"
    connections: str | None = None
    out: Path | None = None
    timeout: float = 900
    e2b_template: str | None = None
    install_deps: bool = False
    python: str | None = None  # the interpreter inside an E2B template (default python3)
    params: dict[str, str] | None = None
    profile: str | None = None  # the pipeline's `profiles.<name>.params` to apply
    download_data: bool | None = None
    plan: bool = False  # read sources and targets, write nothing
    isolate_schema: str | None = None  # every writer's target moves to this schema (per-PR isolation)
    diff: bool = False  # compare the incoming rows with each target before writing (data diff)


@dataclass
class Prepared:
    """A compiled pipeline with its resolved secrets, ready to hand to a sandbox."""

    file: str
    manifest: dict
    manifest_bytes: bytes
    fingerprint: str
    bundle: bundles.Bundle
    env: dict[str, str]
    redactor: Redactor


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def prepare(path: Path, options: RunOptions, environ: Mapping[str, str] = os.environ) -> Prepared:
    """Compile (or load) the manifest, resolve the connections it references and build the bundle."""
    checker = Checker(options.connections)
    if path.suffix == ".json":
        manifest_model, _raw = load_manifest(path)
        verify_manifest(manifest_model, display_path(path))
        manifest = manifest_model.model_dump()
        manifest_bytes = canonical_bytes(manifest)
        connections = checker.connections_for(path)
    else:
        checked = checker.compile(path, options.params, options.profile)
        if checked.compiled is None:
            raise OsirisError(
                f"the pipeline has errors and was not run:\n{format_text(checked.diagnostics)}".rstrip(),
                "Fix the findings above; `osiris-action validate` lists them all.",
                file=display_path(path),
            )
        manifest, manifest_bytes = checked.compiled.manifest, checked.compiled.data
        connections = checked.connections
    from osiris_action.manifest import fingerprint

    # E2B always gets the pinned requirements: installed when asked or when the template lacks them
    requirements = options.install_deps or options.target == "e2b"
    try:
        bundle = bundles.build(manifest, manifest_bytes, connections, path.parent.resolve(), requirements)
    except OsirisError as exc:
        exc.file = exc.file or display_path(path)
        raise
    settings = run_settings(manifest, options)
    if settings:
        bundle.files["run.json"] = canonical_bytes(settings)
    redactor = Redactor()
    for step in manifest["steps"]:
        key = bundles._connection_key(step, connections)
        if key is None:
            continue
        try:
            resolved = connections.resolve(*key, env=environ)
        except OsirisError as exc:
            exc.step, exc.file = step["id"], display_path(path)
            raise
        for value in conns.secret_values(resolved, connections.lookup(*key)[1]):
            redactor.add(value)
    env = {name: environ[name] for name in sorted(bundle.env_names)} | bundle.literal_env
    return Prepared(
        display_path(path), manifest, manifest_bytes, fingerprint(manifest_bytes), bundle, env, redactor
    )


def run_settings(manifest: dict, options: RunOptions) -> dict:
    """What differs between runs of the same manifest: plan only, and the per-PR target schema."""
    settings: dict = {}
    if options.plan:
        settings["plan"] = True
    if options.diff:
        settings["diff"] = True
    if options.isolate_schema:
        settings["isolate"] = {
            s["id"]: options.isolate_schema
            for s in manifest["steps"]
            if s["mode"] == "write" and "schema" in components.get(s["component"]).properties
        }
    return settings


def make_sandbox(options: RunOptions, environ: Mapping[str, str]) -> Sandbox:
    if options.target == "local":
        from osiris_action.sandbox.local import LocalSandbox

        return LocalSandbox()
    if options.target == "e2b":
        from osiris_action.sandbox.e2b import E2BSandbox

        return E2BSandbox(
            api_key=environ.get("E2B_API_KEY"),
            template=options.e2b_template,
            timeout=options.timeout,
            python=options.python,
        )
    raise OsirisError(
        f"unknown target '{options.target}'", "Use --target local or --target e2b.", exit_code=2
    )


class Run:
    """Executes one prepared pipeline in one sandbox and writes its redacted outputs to `out`."""

    def __init__(
        self,
        prepared: Prepared,
        options: RunOptions,
        on_progress: Callable[[str], None],
        environ: Mapping[str, str] = os.environ,
    ):
        self.p = prepared
        self.options = options
        self.environ = environ
        self.run_id = new_run_id()
        self.out = (options.out or Path(".osiris/runs") / self.run_id).resolve()
        self.on_progress = on_progress
        self.report = new_report(
            prepared.manifest,
            self.run_id,
            prepared.fingerprint,
            options.target,
            prepared.file,
            "plan" if options.plan else "run",
        )
        self.report.bytes_uploaded = prepared.bundle.size
        self.verified: dict[str, str | None] = {}
        self.sandbox: Sandbox | None = None
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()
        if self.sandbox is not None:
            self.sandbox.stop()

    def execute(self) -> RunReport:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._events = (self.out / "events.jsonl").open("w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot write the run folder {self.out}: {exc.strerror}",
                "Pass --out a folder you can write to.",
            ) from exc
        try:
            self._execute()
        except SandboxError as exc:
            self.report.error = {
                "message": self.p.redactor.redact(exc.message),
                "hint": exc.hint,
                "stderr": self.p.redactor.redact(exc.stderr_tail),
            }
        finally:
            self._events.close()
            finish(self.report, cancelled=self.cancelled.is_set())
            self._write_outputs()
        return self.report

    def _execute(self) -> None:
        bundle = self.p.bundle
        seal = bundle.seal()
        with make_sandbox(self.options, self.environ) as sandbox:
            self.sandbox = sandbox
            if self.cancelled.is_set():
                return
            host_hashes = sandbox.prepare(bundle.files)
            if "requirements.txt" in bundle.files and (
                self.options.install_deps or sandbox.missing_imports()
            ):
                sandbox.install(self.out)
            if self.cancelled.is_set():
                return
            env = {**self.p.env, "OSIRIS_BUNDLE_SHA256": seal}
            command = [sandbox.python, "worker.py", "--run-id", self.run_id]
            code = sandbox.run(command, env, self.options.timeout, self._on_line)
            check_parity(self.report, host_hashes, self.verified)
            if code not in (0, 1) and not self.cancelled.is_set() and self.report.error is None:
                tail = self.p.redactor.redact(getattr(sandbox, "stderr_tail", ""))
                running = next((s.id for s in self.report.steps if s.status == "running"), None)
                during = f" during step '{running}'" if running else ""
                if code < 0:
                    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                    message = (
                        f"the worker was killed by {name}{during} (out of memory, or stopped from outside)"
                    )
                else:
                    message = f"the worker exited with code {code}{during}"
                last = tail.strip().splitlines()[-1:] if tail.strip() else []
                self.report.error = {
                    "message": message + (f"; its last line: {last[0]}" if last else ""),
                    "hint": "The last lines it printed are in report.json (`error.stderr`).",
                    "stderr": tail,
                }
            if not self.report.hash_parity and self.report.error is None:
                self.report.error = {
                    "message": "hash parity failed: the code that ran differs from the code uploaded",
                    "hint": "See the parity table; rerun the job.",
                }
            download = self.options.download_data
            if download is None and sandbox.name == "local":
                download = True  # nothing crosses a network: bring the outputs back
            fetched = sandbox.fetch(self.out, ArtifactPolicy.from_env(self.environ, download))
            for rel, _size in fetched.downloaded:
                self.p.redactor.redact_file(self.out / rel)
            self.report.artifacts = [rel for rel, _ in fetched.downloaded]
            self.report.skipped_artifacts = [
                {"path": r, "bytes": s, "reason": why} for r, s, why in fetched.skipped
            ]

    def _on_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # the worker prints nothing but events; anything else is noise from a library
        if not isinstance(event, dict):
            return
        event = self.p.redactor.redact_obj(event)
        self._events.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
        self._events.flush()
        if event.get("event") == "driver_file_verified":
            self.verified[str(event.get("path"))] = event.get("sha256")
        apply(self.report, event)
        self._progress(event)

    def _progress(self, event: dict) -> None:
        name, sid = event.get("event"), event.get("step_id")
        if name == "step_complete":
            out = event.get("rows_out")  # None: the writer's target did not say
            rows = (
                f"{event.get('rows_in') or 0:,} → {'not measured' if out is None else format(out, ',')} rows"
            )
            self.on_progress(f"  ok    {sid:<28} {rows:<26} {event.get('duration_ms', 0) / 1000:6.2f} s")
        elif name == "step_planned" and (event.get("columns") or event.get("note")):
            columns = ", ".join(f"{c['name']} {c['type']}" for c in event.get("columns") or [])
            self.on_progress(f"  plan  {sid:<28} {(columns or event.get('note') or '')[:80]}")
        elif name == "plan.target":  # a writer produces no columns: show its target instead
            where = ".".join(str(part) for part in (event.get("schema"), event.get("table")) if part)
            self.on_progress(f"  plan  {sid:<28} {where}: {event.get('state')}")
        elif name == "step_failed":
            self.on_progress(f"  FAIL  {sid:<28} {event.get('message')}")

    def _write_outputs(self) -> None:
        from osiris_action.render import markdown

        redact = self.p.redactor.redact
        (self.out / "manifest.json").write_bytes(self.p.manifest_bytes)
        report_json = json.dumps(self.report.model_dump(by_alias=True), indent=2, sort_keys=True)
        (self.out / "report.json").write_text(redact(report_json) + "\n", encoding="utf-8")
        (self.out / "summary.md").write_text(redact(markdown([self.report])), encoding="utf-8")


def run_pipeline(
    path: Path,
    options: RunOptions,
    on_progress: Callable[[str], None] = print,
    environ: Mapping[str, str] = os.environ,
) -> tuple[RunReport, Path]:
    prepared = prepare(path, options, environ)
    run = Run(prepared, options, on_progress, environ)
    on_progress(
        f"run {run.run_id}: {prepared.file} ({len(prepared.manifest['steps'])} steps, "
        f"target {options.target})"
    )
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: run.cancel())
    try:
        report = run.execute()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return report, run.out


def components_used(manifest: dict) -> list[str]:
    return sorted({components.get(s["component"]).name for s in manifest["steps"]})


def debug_enabled() -> bool:
    return "--debug" in sys.argv
