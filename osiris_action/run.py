"""One pipeline run: compile, bundle, sandbox, stream events, check parity, fetch, report.

The report is built from the worker's raw events: parity, row counts and verdicts are computed on what
the worker said, never on a redacted copy (a password such as `postgres` would otherwise rewrite the
file name `_postgres.py` and fail parity). Everything shown (the console, events.jsonl, diagnostic
artifacts, report.json, summary.md, the report handed back to callers) passes through one Redactor that
knows every secret value this run resolved. Output data files are never rewritten: a data file that
holds a known secret is named in the report's warnings instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sys
import threading
import time
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
from osiris_action.pipelines import Checker, display_path
from osiris_action.redact import Redactor
from osiris_action.report import RunReport, apply, check_parity, dump, finish, new_report, shown, shown_data
from osiris_action.sandbox.base import MIN_PYTHON, ArtifactPolicy, Sandbox, SandboxError, is_data

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
    root: Path | None = None  # no data is read outside it (the action's workspace); None: the project
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


def safe_folder(parent: Path, name: str, taken: set[str]) -> Path:
    """A folder under `parent` named after user data (a pipeline's name): one plain path segment, unique
    among `taken` (which it joins), and checked to stay inside `parent` whatever the name held."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:80] or "pipeline"
    folder, number = base, 1
    while folder.lower() in taken:
        number += 1
        folder = f"{base}-{number}"
    taken.add(folder.lower())
    path = parent / folder
    if path.resolve().parent != parent.resolve():
        raise OsirisError(f"refusing the folder name {name!r}: it leaves {parent}", "Rename the pipeline.")
    return path


# Without a terminal (CI logs), the live row counts of running steps are printed at most this often.
LIVE_EVERY_S = 5.0


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def prepare(path: Path, options: RunOptions, environ: Mapping[str, str] = os.environ) -> Prepared:
    """Compile (or load) the manifest, resolve the connections it references and build the bundle."""
    checker = Checker(options.connections)
    if path.suffix == ".json":
        from osiris_action.manifest_file import load, verify

        manifest_model, _raw = load(path)
        verify(manifest_model, display_path(path))
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
        bundle = bundles.build(
            manifest, manifest_bytes, connections, path.parent.resolve(), requirements, options.root
        )
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
        for name in connections.env_names(*key):  # every value read from the environment is secret
            redactor.add(environ.get(name, ""))
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
        on_status: Callable[[str], None] | None = None,
    ):
        self.p = prepared
        self.on_status = on_status  # a terminal's updating line; without one, progress lines are spaced
        self._live: dict[str, int] = {}
        self._live_printed = 0.0
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
        """Run, then write the outputs; returns the report as it may be shown (secrets masked)."""
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
            self.report.error = {"message": exc.message, "hint": exc.hint, "stderr": exc.stderr_tail}
        finally:
            self._events.close()
            finish(self.report, cancelled=self.cancelled.is_set())
            self.report.warnings += masked_names(self.report, self.p.redactor)
            self._write_outputs()
        return shown(self.report, self.p.redactor)

    def _execute(self) -> None:
        from osiris_action.oml import sql

        sql.close()  # the SQL parser's process holds DuckDB: gone before the worker's memory grows
        bundle = self.p.bundle
        seal = bundle.seal()
        with make_sandbox(self.options, self.environ) as sandbox:
            self.sandbox = sandbox
            if self.cancelled.is_set():
                return
            sandbox.check_python()
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
            self.report.exit_code = code
            check_parity(self.report, host_hashes, self.verified)
            if not self.cancelled.is_set() and self.report.error is None:
                self.report.error = worker_error(self.report, code, getattr(sandbox, "stderr_tail", ""))
            if sandbox.name == "local":  # nothing crosses a network: every output comes back
                policy = ArtifactPolicy.everything()
            else:
                policy = ArtifactPolicy.from_env(self.environ, self.options.download_data)
            fetched = sandbox.fetch(self.out, policy)
            self._keep(fetched, policy)

    def _keep(self, fetched, policy: ArtifactPolicy) -> None:
        """Diagnostic files are redacted in place; data files are never altered, only checked."""
        for rel, _size in fetched.downloaded:
            if not is_data(rel):
                self.p.redactor.redact_file(self.out / rel)
            elif holds_secret(self.out / rel, self.p.redactor.secrets):
                self.report.warnings.append(
                    f"the data file {rel} contains a secret value of this run; it is kept unchanged "
                    "(outputs are never altered), so treat it as secret"
                )
        self.report.artifacts = [rel for rel, _ in fetched.downloaded]
        for rel, size, why in fetched.skipped:
            skipped = policy.skip(rel, size)
            entry = {"path": rel, "bytes": size, "reason": why}
            if skipped:
                entry["reason"], entry["setting"] = skipped
            self.report.skipped_artifacts.append(entry)

    def _on_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # the worker prints nothing but events; anything else is noise from a library
        if not isinstance(event, dict):
            return
        shown_event = shown_data(event, self.p.redactor)
        self._events.write(json.dumps(shown_event, ensure_ascii=False, sort_keys=True) + "\n")
        self._events.flush()
        if event.get("event") == "driver_file_verified":  # the raw path and hash: parity reads these
            self.verified[str(event.get("path"))] = event.get("sha256")
        apply(self.report, event)
        self._progress(event)

    def _progress(self, event: dict) -> None:
        name, sid = event.get("event"), event.get("step_id")
        if name in ("step.progress", "write.progress") and sid:
            self._live[sid] = int(event.get("rows") or 0)
            status = self.p.redactor.redact(
                "  …     " + " · ".join(f"{s} {rows:,} rows" for s, rows in self._live.items())
            )
            if self.on_status is not None:
                self.on_status(status)
            elif time.monotonic() - self._live_printed >= LIVE_EVERY_S:
                self._live_printed = time.monotonic()
                self.on_progress(status)
            return
        self._live.pop(sid or "", None)
        if name == "step_complete":
            out = event.get("rows_out")  # None: the writer's target did not say
            rows = (
                f"{event.get('rows_in') or 0:,} → {'not measured' if out is None else format(out, ',')} rows"
            )
            self._say(f"  ok    {sid:<28} {rows:<26} {event.get('duration_ms', 0) / 1000:6.2f} s")
        elif name == "step_planned" and (event.get("columns") or event.get("note")):
            columns = ", ".join(f"{c['name']} {c['type']}" for c in event.get("columns") or [])
            self._say(f"  plan  {sid:<28} {(columns or event.get('note') or '')[:80]}")
        elif name == "plan.target":  # a writer produces no columns: show its target instead
            where = ".".join(str(part) for part in (event.get("schema"), event.get("table")) if part)
            self._say(f"  plan  {sid:<28} {where}: {event.get('state')}")
        elif name == "step_failed":
            self._say(f"  FAIL  {sid:<28} {event.get('message')}")

    def _say(self, line: str) -> None:
        self.on_progress(self.p.redactor.redact(line))

    def _write_outputs(self) -> None:
        from osiris_action.render import markdown

        redact = self.p.redactor.redact
        manifest = shown_data(self.p.manifest, self.p.redactor)
        if manifest == self.p.manifest:
            (self.out / "manifest.json").write_bytes(self.p.manifest_bytes)
        else:  # a secret that is also a word of the pipeline: never shown, even there
            (self.out / "manifest.json").write_bytes(canonical_bytes(manifest))
            self.report.warnings.append(
                "manifest.json in the run folder has secret values masked, so it no longer matches the "
                "manifest fingerprint; `osiris-action compile` rebuilds the original"
            )
        data = shown_data(dump(self.report), self.p.redactor, by_name=False)
        report_json = json.dumps(data, indent=2, sort_keys=True)
        (self.out / "report.json").write_text(report_json + "\n", encoding="utf-8")
        summary = markdown([shown(self.report, self.p.redactor)])
        (self.out / "summary.md").write_text(redact(summary), encoding="utf-8")


def worker_error(report: RunReport, code: int, stderr_tail: str) -> dict[str, str] | None:
    """Why the worker failed, from its exit status and events; None when it ended on its own terms.

    A worker that never reported `run_complete` crashed (a Python too old, an import error, a killed
    interpreter): that is said with its exit status and the tail of its stderr, never as tampering.
    Hash parity is judged only for a worker that finished.
    """
    running = [s.id for s in report.steps if s.status == "running"]  # streamed steps run together
    if len(running) == 1:
        during = f" during step '{running[0]}'"
    elif running:
        during = " while steps " + ", ".join(f"'{sid}'" for sid in running) + " were running"
    else:
        during = " before its first step" if not report.completed else ""
    if not report.completed or code not in (0, 1, EXIT_PARITY):
        if code < 0:
            # E2B reports every killed command as -1 without naming the signal
            signals = {s.value: s.name for s in signal.Signals} if code != -1 else {}
            name = signals.get(-code, "a signal")
            message = f"the worker was killed by {name}{during} (out of memory, or stopped from outside)"
        elif not report.completed:
            message = f"the worker crashed{during} (exit code {code}) without finishing its report"
        else:
            message = f"the worker exited with code {code}{during}"
        last = stderr_tail.strip().splitlines()[-1:]
        return {
            "message": message + (f"; its last line: {last[0]}" if last else ""),
            "hint": "Its last lines are in report.json (`error.stderr`). The worker needs Python "
            + ".".join(map(str, MIN_PYTHON))
            + "+ and the packages of requirements.txt in the sandbox.",
            "stderr": stderr_tail,
        }
    if not report.hash_parity:
        return {
            "message": "hash parity failed: the code that ran differs from the code uploaded",
            "hint": "See the parity table; rerun the job.",
        }
    return None


def holds_secret(path: Path, secrets: frozenset[str], block: int = 1 << 22) -> bool:
    """Whether a known secret value occurs in the file, read in blocks (a data file may be large)."""
    needles = [s.encode("utf-8", "surrogateescape") for s in secrets]
    if not needles:
        return False
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            window = tail + chunk
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False


def masked_names(report: RunReport, redactor: Redactor) -> list[str]:
    """A warning when a secret is also a word of the report's own names (a password `postgres` masks
    the file `_postgres.py`): those names show as *** everywhere, which the reader should know."""
    names = (
        [r.path for r in report.parity] + [s.id for s in report.steps] + [s.component for s in report.steps]
    )
    names += [str(w.table) for w in report.writes] + [
        c["name"] for s in report.steps for c in s.columns or []
    ]
    hit = sorted({n for n in names if redactor.redact(n) != n})
    if not hit:
        return []
    return [
        f"a secret value of this run is also part of {len(hit)} name(s) in this report (file, step, "
        "table or column names); it is masked wherever it occurs, so those names show ***. Checks were "
        "made on the unmasked values. Use a secret that is not a common word."
    ]


def run_pipeline(
    path: Path,
    options: RunOptions,
    on_progress: Callable[[str], None] = print,
    environ: Mapping[str, str] = os.environ,
    on_status: Callable[[str], None] | None = None,
) -> tuple[RunReport, Path]:
    prepared = prepare(path, options, environ)
    run = Run(prepared, options, on_progress, environ, on_status)
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
