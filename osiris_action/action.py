"""The GitHub Action: `uses: osiris/run-pipeline@v1`, entered as `python -m osiris_action.action`.

Order matters: masks first (before anything else is printed), then validation with annotations,
then compile and run, and in every case (failure and cancellation included) one job summary, the
workflow outputs and the redacted artifacts.
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from osiris_action import __version__
from osiris_action import connections as conns
from osiris_action.changes import changed_files
from osiris_action.diagnostics import Diagnostic, format_sarif, has_errors
from osiris_action.errors import OsirisError
from osiris_action.github import command
from osiris_action.github.annotations import Annotator
from osiris_action.github.event import Event, load_event
from osiris_action.github.file_command import set_outputs
from osiris_action.github.inputs import InputError, get_bool, get_choice, get_input, get_multiline
from osiris_action.github.summary import Summary, inline_code
from osiris_action.pipelines import Checked, Checker, discover
from osiris_action.redact import Redactor
from osiris_action.render import add_report, findings
from osiris_action.report import RunReport
from osiris_action.run import Run, RunOptions, new_run_id, prepare

MODES = ("validate", "compile", "run")


@dataclass
class Inputs:
    pipelines: list[str]
    connections: str | None
    mode: str
    target: str
    e2b_api_key: str
    e2b_template: str | None
    timeout: float
    changed_only: bool
    fail_on: str
    comment: str
    github_token: str
    artifacts_dir: str
    max_parallel: int

    @classmethod
    def read(cls, env) -> Inputs:
        target = get_choice("target", ("local", "e2b"), "local", env=env)
        timeout = get_input("timeout", env) or "900"
        parallel = get_input("max-parallel", env)
        try:
            timeout_s = float(timeout)
            if timeout_s <= 0:
                raise ValueError
        except ValueError:
            raise InputError(
                f"Input 'timeout' must be a positive number of seconds, got {timeout!r}",
                "Use e.g. `timeout: 900`.",
                "timeout",
            ) from None
        try:
            max_parallel = int(parallel) if parallel else (4 if target == "e2b" else 1)
            if max_parallel < 1:
                raise ValueError
        except ValueError:
            raise InputError(
                f"Input 'max-parallel' must be a whole number of at least 1, got {parallel!r}",
                "Use e.g. `max-parallel: 4`.",
                "max-parallel",
            ) from None
        return cls(
            pipelines=get_multiline("pipelines", env) or ["**/*.yaml", "**/*.yml"],
            connections=get_input("connections", env) or None,
            mode=get_choice("mode", MODES, "run", env=env),
            target=target,
            e2b_api_key=get_input("e2b-api-key", env),
            e2b_template=get_input("e2b-template", env) or None,
            timeout=timeout_s,
            changed_only=get_bool("changed-only", env, default=True),
            fail_on=get_choice("fail-on", ("error", "warning"), "error", env=env),
            comment=get_choice("comment", ("off", "always", "on-failure"), "off", env=env),
            github_token=get_input("github-token", env),
            artifacts_dir=get_input("artifacts-dir", env) or "osiris-artifacts",
            max_parallel=max_parallel,
        )


@dataclass
class Outcome:
    inputs: Inputs
    event: Event
    run_id: str
    started: float = field(default_factory=time.monotonic)
    checked: list[Checked] = field(default_factory=list)
    reports: list[RunReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cancelled: bool = False
    mode: str = "validate"

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for c in self.checked for d in c.diagnostics]

    @property
    def status(self) -> str:
        if not self.checked and not self.errors:
            return "skipped"
        failing = has_errors(self.diagnostics) or bool(self.errors) or self.cancelled
        if self.inputs.fail_on == "warning":
            failing = failing or any(d.severity == "warning" for d in self.diagnostics)
        failing = failing or any(r.status != "success" for r in self.reports)
        return "failure" if failing else "success"


def _secret_env_names(workspace: Path, inputs: Inputs) -> set[str]:
    """Every `${ENV}` a connections file uses for a secret field: masked before anything prints."""
    names: set[str] = set()
    candidates = [Path(inputs.connections)] if inputs.connections else list(workspace.rglob(conns.FILE_NAME))
    for path in candidates:
        try:
            loaded, _ = conns.load(path)
        except OSError:
            continue
        for aliases in loaded.families.values():
            for fields in aliases.values():
                for key, value in fields.items():
                    if isinstance(value, str) and (key.lower() in conns.SECRET_FIELDS or "://" in value):
                        names.update(conns.ENV_REF.findall(value))
    return names


def mask_secrets(env, inputs: Inputs, workspace: Path, redactor: Redactor) -> None:
    values = [inputs.e2b_api_key, inputs.github_token, env.get("E2B_API_KEY", "")]
    values += [env.get(name, "") for name in sorted(_secret_env_names(workspace, inputs))]
    lines: list[str] = []
    for value in values:
        if value:
            redactor.add(value)
            lines += command.add_mask(value)
    command.emit(lines)


def select_pipelines(inputs: Inputs, event: Event, workspace: Path, outcome: Outcome, env) -> list[Path]:
    matched = discover([p for p in inputs.pipelines if p]) if inputs.pipelines else []
    matched = [p for p in matched if not _ignored(p)]
    if not (event.is_pull_request and inputs.changed_only):
        return matched
    changed, how = changed_files(workspace, event, inputs.github_token or None, env)
    if not changed and "could not" in how:
        outcome.notes.append(f"Changed files unknown ({how}); checking every matched pipeline.")
        return matched
    changed_set = set(changed)
    connections_changed = any(Path(c).name == conns.FILE_NAME for c in changed)
    chosen = [p for p in matched if p.as_posix() in changed_set or connections_changed]
    outcome.notes.append(
        f"{len(chosen)} of {len(matched)} pipeline(s) changed in this pull request ({how})"
        + ("; a connections file changed, so all are checked" if connections_changed else "")
    )
    return chosen


def _ignored(path: Path) -> bool:
    return any(
        fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in (".git", ".osiris", ".venv")
    )


def run_all(outcome: Outcome, env, out_root: Path, redactor: Redactor) -> None:
    inputs = outcome.inputs
    if inputs.e2b_api_key:
        env = {**env, "E2B_API_KEY": inputs.e2b_api_key}
    runnable = [c for c in outcome.checked if c.compiled is not None]
    runs: list[Run] = []
    lock = threading.Lock()

    def one(checked: Checked) -> RunReport | None:
        options = RunOptions(
            target=inputs.target,
            connections=inputs.connections,
            timeout=inputs.timeout,
            e2b_template=inputs.e2b_template,
            out=out_root / checked.compiled.manifest["pipeline"]["id"],
        )
        try:
            prepared = prepare(checked.path, options, env)
        except OsirisError as exc:
            with lock:
                outcome.errors.append(redactor.redact(exc.render()))
            return None
        for secret in prepared.redactor.secrets:
            redactor.add(secret)
        run = Run(prepared, options, lambda line: _log(redactor.redact(line)), env)
        with lock:
            runs.append(run)
            if outcome.cancelled:
                run.cancel()
        return run.execute()

    previous = {}
    if threading.current_thread() is threading.main_thread():

        def cancel(*_):
            outcome.cancelled = True
            with lock:
                for run in runs:
                    run.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, cancel)
    try:
        with ThreadPoolExecutor(max_workers=inputs.max_parallel) as pool:
            for report in pool.map(one, runnable):
                if report is not None:
                    outcome.reports.append(report)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log(line: str) -> None:
    with command.stop_commands() as echo:  # run output is untrusted: it must not issue commands
        echo(line + "\n")


def write_summary(outcome: Outcome, path: str | None, extra_findings: list[Diagnostic]) -> str:
    inputs = outcome.inputs
    icon = {"success": "✅", "failure": "❌", "skipped": "⏭️"}[outcome.status]
    summary = Summary()
    summary.heading(f"{icon} Osiris pipelines: {outcome.status}", 2)
    sha = (outcome.event.head_sha or outcome.event.sha or "")[:7]
    summary.paragraph(
        f"{len(outcome.checked)} pipeline(s) · mode {outcome.mode} · target {inputs.target} · "
        f"{time.monotonic() - outcome.started:.1f} s"
        + (f" · commit {inline_code(sha)}" if sha else "")
        + f" · osiris-action {__version__}"
    )
    for note in outcome.notes:
        summary.paragraph(note)
    for error in outcome.errors:
        summary.code_block(error)
    if outcome.cancelled:
        summary.paragraph("**Cancelled**: the run was stopped; results below are partial.")
    for report in outcome.reports:
        add_report(summary, report)
    if outcome.mode != "run":
        for checked in outcome.checked:
            state = "✅ compiled" if checked.compiled else ("✅ valid" if checked.ok else "❌ errors")
            fp = f" · {inline_code(checked.compiled.fingerprint[:19] + '…')}" if checked.compiled else ""
            summary.paragraph(f"{inline_code(checked.document.file)}: {state}{fp}")
    if extra_findings:
        summary.heading("Findings not shown as annotations", 3)
        summary.table(
            ["file", "line", "severity", "code", "message"],
            [[d.file, f"{d.line}:{d.column}", d.severity, d.code, d.message] for d in extra_findings],
        )
    markdown = summary.render()
    summary.write(path)
    return markdown


def main(env=None) -> int:
    env = os.environ if env is None else env
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()
    os.chdir(workspace)
    redactor = Redactor()
    try:
        inputs = Inputs.read(env)
    except InputError as exc:
        command.emit(command.annotation("error", f"{exc.message}\n{exc.hint}".strip(), title="Invalid input"))
        set_outputs(env.get("GITHUB_OUTPUT"), {"status": "failure"})
        return 2
    mask_secrets(env, inputs, workspace, redactor)
    event = load_event(env)
    outcome = Outcome(inputs, event, new_run_id(), mode=inputs.mode)
    out_root = Path(inputs.artifacts_dir) / outcome.run_id
    try:
        if event.is_pull_request and (event.is_fork or event.is_dependabot) and outcome.mode == "run":
            who = "Dependabot" if event.is_dependabot else "a fork"
            outcome.mode = "compile"
            outcome.notes.append(
                f"This pull request comes from {who}, so GitHub gives it no secrets: "
                "pipelines are validated and compiled, not run."
            )
            command.emit(command.annotation("notice", outcome.notes[-1], title="Run skipped"))
        checker = Checker(inputs.connections)
        for path in select_pipelines(inputs, event, workspace, outcome, env):
            outcome.checked.append(
                checker.compile(path) if outcome.mode != "validate" else checker.check(path)
            )
        diagnostics = outcome.diagnostics + checker.connection_diagnostics
        annotator = Annotator(prefer_files=[c.document.file for c in outcome.checked])
        _, hidden = annotator.select(findings(diagnostics))
        annotator.emit(findings(diagnostics))
        hidden_keys = {(f.file, f.line, f.col, f.title) for f in hidden}
        extra = [d for d in diagnostics if (d.file, d.line, d.column, d.code) in hidden_keys]
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / "findings.sarif").write_text(format_sarif(diagnostics, _rule_titles(), __version__))
        if outcome.mode == "run" and not outcome.cancelled:
            run_all(outcome, env, out_root, redactor)
    except OsirisError as exc:
        outcome.errors.append(redactor.redact(exc.render()))
        extra = []
    except Exception as exc:  # the summary and outputs must still be written
        outcome.errors.append(redactor.redact(f"internal error: {type(exc).__name__}: {exc}"))
        extra = []
    markdown = redactor.redact(write_summary(outcome, env.get("GITHUB_STEP_SUMMARY"), extra))
    _write_report(outcome, out_root, redactor)
    _outputs(outcome, env, out_root, workspace)
    if inputs.comment == "always" or (inputs.comment == "on-failure" and outcome.status == "failure"):
        _comment(outcome, markdown, env)
    for error in outcome.errors:
        with command.stop_commands() as echo:
            echo(error + "\n")
    return 1 if outcome.status == "failure" else 0


def _rule_titles() -> dict[str, str]:
    try:
        from osiris_action.codes import titles

        return titles()
    except ImportError:
        return {}


def _write_report(outcome: Outcome, out_root: Path, redactor: Redactor) -> None:
    data = {
        "status": outcome.status,
        "mode": outcome.mode,
        "run_id": outcome.run_id,
        "pipelines": [c.document.file for c in outcome.checked],
        "diagnostics": [d.to_dict() for d in outcome.diagnostics],
        "manifests": {c.document.file: c.compiled.fingerprint for c in outcome.checked if c.compiled},
        "runs": [r.model_dump(by_alias=True) for r in outcome.reports],
        "errors": outcome.errors,
    }
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / "report.json").write_text(redactor.redact(json.dumps(data, indent=2, sort_keys=True)) + "\n")


def _outputs(outcome: Outcome, env, out_root: Path, workspace: Path) -> None:
    def rel(path: Path) -> str:
        try:
            return path.resolve().relative_to(workspace).as_posix()
        except ValueError:
            return path.as_posix()

    values = {
        "status": outcome.status,
        "pipelines": json.dumps([c.document.file for c in outcome.checked]),
        "rows-read": str(sum(r.rows_read for r in outcome.reports)),
        "rows-written": str(sum(r.rows_written for r in outcome.reports)),
        "manifest-hashes": json.dumps(
            {c.document.file: c.compiled.fingerprint for c in outcome.checked if c.compiled}, sort_keys=True
        ),
        "hash-parity": "true" if outcome.reports and all(r.hash_parity for r in outcome.reports) else "false",
        "report-json": rel(out_root / "report.json"),
        "artifacts-dir": rel(out_root),
        "run-id": outcome.run_id,
    }
    set_outputs(env.get("GITHUB_OUTPUT"), values)


def _comment(outcome: Outcome, markdown: str, env) -> None:
    from osiris_action.github.rest import Forbidden, GitHubClient, GitHubError, sticky_marker

    event = outcome.event
    if not (event.pr_number and event.repository and outcome.inputs.github_token):
        return
    marker = sticky_marker(
        f"osiris-run-pipeline:{env.get('GITHUB_WORKFLOW', '')}:{env.get('GITHUB_JOB', '')}"
    )
    try:
        with GitHubClient.from_env(outcome.inputs.github_token, env) as api:
            api.upsert_sticky_comment(event.repository, event.pr_number, marker, markdown)
    except Forbidden:
        command.emit(
            command.annotation(
                "warning",
                "Could not comment on the pull request (403): give the job "
                "`permissions: pull-requests: write`, or set `comment: off`.",
                title="PR comment skipped",
            )
        )
    except GitHubError as exc:
        command.emit(
            command.annotation(
                "warning", f"Could not comment on the pull request: {exc}", title="PR comment skipped"
            )
        )


if __name__ == "__main__":
    sys.exit(main())
