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
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

from osiris_action import __version__, diff_gate
from osiris_action import connections as conns
from osiris_action.changes import changed_files
from osiris_action.diagnostics import Diagnostic, format_sarif, has_errors, ordered
from osiris_action.errors import OsirisError
from osiris_action.github import command
from osiris_action.github.annotations import PER_TYPE_LIMIT, Annotator, Finding
from osiris_action.github.event import Event, load_event
from osiris_action.github.file_command import set_outputs
from osiris_action.github.inputs import InputError, get_bool, get_choice, get_input, get_multiline
from osiris_action.github.summary import Raw, Summary, inline_code
from osiris_action.isolation import cleanup, schema_for
from osiris_action.pipelines import Checked, Checker, discover
from osiris_action.redact import Redactor, hide_data_values
from osiris_action.render import add_report, findings, line
from osiris_action.report import INCOMPATIBLE, RunReport, dump, shown_data
from osiris_action.run import Run, RunOptions, new_run_id, prepare, safe_folder

MODES = ("validate", "compile", "run", "plan", "cleanup")
RUN_MODES = ("run", "plan")
_SEVERITY = {"error": 0, "warning": 1, "notice": 2}


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
    isolate: str = "off"
    profile: str | None = None
    schema_template: str = "osiris_pr_{number}"
    show_data_values: str = "auto"
    diff: bool = False
    fail_on_diff: list = field(default_factory=list)

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
        try:
            gates = diff_gate.parse(get_input("fail-on-diff", env))
        except ValueError as exc:
            raise InputError(
                str(exc), "Use e.g. `fail-on-diff: removed > 0, changed > 5%`.", "fail-on-diff"
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
            isolate=get_choice("isolate", ("off", "pr"), "off", env=env),
            profile=get_input("profile", env) or None,
            schema_template=get_input("isolate-schema-template", env) or "osiris_pr_{number}",
            show_data_values=get_choice("show-data-values", ("auto", "true", "false"), "auto", env=env),
            diff=get_choice("diff", ("off", "on"), "off", env=env) == "on" or bool(gates),
            fail_on_diff=gates,
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
    isolate_schema: str | None = None
    not_started: dict[str, str] = field(default_factory=dict)  # pipeline file → why it did not run
    problems: list[tuple[str, str | None, int | None]] = field(default_factory=list)  # to annotate
    cleaned: bool = False
    findings: list[Finding] = field(default_factory=list)  # notes of the step itself, to annotate
    runs: list[Run] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        """SIGTERM/SIGINT (the runner cancelling the job): stop every sandbox, keep the rest going
        far enough to write the summary, the report and the outputs."""
        self.cancelled = True
        with self.lock:
            for run in self.runs:
                run.cancel()

    @property
    def shown(self) -> Callable[[str], str]:
        """What the log, the summary, the comment and annotations may show of an error message: values
        from the data only when `show-data-values` allows (by default, in private repositories)."""
        return (lambda text: text) if self.shows_values else hide_data_values

    @property
    def shows_values(self) -> bool:
        show = self.inputs.show_data_values
        return show == "true" or (show == "auto" and self.event.private is True)

    def public_reports(self) -> list[RunReport]:
        """The reports as the summary and the comment show them (report.json keeps them whole)."""
        shown, public = self.shown, []
        for report in self.reports:
            copy = deepcopy(report)
            for error in [s.error for s in copy.steps] + [copy.error]:
                if error and error.get("message"):
                    error["message"] = shown(error["message"])
            public.append(copy)
        return public

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for c in self.checked for d in c.diagnostics]

    @property
    def status(self) -> str:
        if not self.checked and not self.errors:
            return "success" if self.cleaned else "skipped"
        # a pipeline asked to run that never started (a missing secret or input file) failed
        failing = (
            has_errors(self.diagnostics) or bool(self.errors) or self.cancelled or bool(self.not_started)
        )
        if self.inputs.fail_on == "warning":
            failing = failing or any(d.severity == "warning" for d in self.diagnostics)
        failing = failing or any(r.status != "success" for r in self.reports)
        return "failure" if failing else "success"


def _secret_env_names(workspace: Path, connections: str | None) -> set[str]:
    """Every `${ENV}` a connections file uses, in any field: masked before anything prints."""
    names: set[str] = set()
    candidates = [workspace / connections] if connections else list(workspace.rglob(conns.FILE_NAME))
    for path in candidates:
        if ".git" in path.parts:
            continue
        try:
            loaded, _ = conns.load(path)
        except (OSError, OsirisError):
            continue
        for aliases in loaded.families.values():
            for fields in aliases.values():
                for value in fields.values():
                    # every value read from the environment is a secret, whatever field it sits in
                    if isinstance(value, str):
                        names.update(n for n in conns.ENV_REF.findall(value) if not conns.runner_owned(n))
    return names


def mask_secrets(env: Mapping[str, str], workspace: Path, redactor: Redactor) -> None:
    """`::add-mask::` every secret value before anything else is printed.

    Read straight from the environment, before the inputs are validated: an error about a bad input
    must not be the first line to show a secret. A DSN's password is masked on its own as well, since
    drivers print URLs with the password cut out of them and error messages quote it alone.
    """
    values = [get_input("e2b-api-key", env), get_input("github-token", env), env.get("E2B_API_KEY", "")]
    names = _secret_env_names(workspace, get_input("connections", env) or None)
    for name in sorted(names):
        value = env.get(name, "")
        values.append(value)
        values += conns.secret_values({"dsn": value}) if "://" in value else []
    emit_masks(values, redactor)


def emit_masks(values, redactor: Redactor) -> None:
    lines: list[str] = []
    for value in values:
        if value and value not in redactor.secrets:
            redactor.add(value)
            if value in redactor.secrets or value.strip() in redactor.secrets:  # long enough to mask
                lines += command.add_mask(value)
    command.emit(lines)


def select_pipelines(inputs: Inputs, event: Event, workspace: Path, outcome: Outcome, env) -> list[Path]:
    matched = discover([p for p in inputs.pipelines if p]) if inputs.pipelines else []
    matched = [p for p in matched if not _ignored(p)]
    outside = [p for p in matched if not p.resolve().is_relative_to(workspace)]  # `..`, or a symlink out
    if outside:
        outcome.errors.append(
            "pipeline files outside the workspace are not read: " + ", ".join(map(str, outside))
        )
        matched = [p for p in matched if p not in outside]
    if not matched:  # a typo in the glob must not pass for "this pull request changed no pipeline"
        outcome.notes.append(f"Input `pipelines` matched no OML file: {', '.join(inputs.pipelines)}.")
        outcome.findings.append(Finding("warning", outcome.notes[-1], title="No pipelines found"))
    if not (event.is_pull_request and inputs.changed_only):
        return matched
    changed, how = changed_files(workspace, event, inputs.github_token or None, env)
    if not changed and how not in ("git diff", "GitHub API"):
        outcome.notes.append(f"Changed files unknown ({how}); checking every matched pipeline.")
        return matched
    changed_set = set(changed)
    changed_connections = {(workspace / c).resolve() for c in changed if Path(c).name == conns.FILE_NAME}
    chosen, via_connections = [], 0
    for path in matched:
        if _relative(path, workspace) in changed_set:
            chosen.append(path)
        elif changed_connections and _connections_file(inputs, path) in changed_connections:
            chosen.append(path)  # same pipeline, other credentials, hosts or base_dir: check it again
            via_connections += 1
    outcome.notes.append(
        f"{len(chosen) - via_connections} of {len(matched)} pipeline(s) changed in this pull request ({how})"
        + (f"; {via_connections} more use a connections file it changed" if via_connections else "")
    )
    return chosen


def _relative(path: Path, workspace: Path) -> str:
    try:
        return path.resolve().relative_to(workspace).as_posix()
    except ValueError:
        return path.as_posix()


def _connections_file(inputs: Inputs, pipeline: Path) -> Path | None:
    """The connections file the pipeline is checked and run with (the Checker's own lookup)."""
    try:
        found = conns.find(inputs.connections, pipeline.parent)
    except OsirisError:
        return None
    return found.resolve() if found else None


def _ignored(path: Path) -> bool:
    return any(
        fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in (".git", ".osiris", ".venv")
    )


def run_all(outcome: Outcome, env, out_root: Path, redactor: Redactor) -> None:
    inputs = outcome.inputs
    if inputs.e2b_api_key:
        env = {**env, "E2B_API_KEY": inputs.e2b_api_key}
    runnable = [c for c in outcome.checked if c.compiled is not None]
    taken: set[str] = set()  # two pipelines of the same name get two folders
    folders = {id(c): safe_folder(out_root, c.compiled.manifest["pipeline"]["id"], taken) for c in runnable}

    def one(checked: Checked) -> RunReport | None:
        if outcome.cancelled:
            return None
        options = RunOptions(
            target=inputs.target,
            connections=inputs.connections,
            timeout=inputs.timeout,
            e2b_template=inputs.e2b_template,
            out=folders[id(checked)],
            plan=outcome.mode == "plan",
            profile=inputs.profile,
            isolate_schema=outcome.isolate_schema,
            root=Path.cwd(),  # the workspace: no data file is read outside it
            diff=inputs.diff and not outcome.isolate_schema,
        )
        try:
            prepared = prepare(checked.path, options, env)
        except OsirisError as exc:
            message = redactor.redact(exc.message + (f"\nHint: {exc.hint}" if exc.hint else ""))
            with outcome.lock:
                outcome.not_started[checked.document.file] = redactor.redact(exc.message)
                outcome.problems.append((message, checked.document.file, _step_line(checked, exc.step)))
            return None
        with outcome.lock:  # values resolved only now (a DSN's password): masked before the run prints
            emit_masks(sorted(prepared.redactor.secrets), redactor)
        run = Run(prepared, options, lambda line: _log(outcome.shown(redactor.redact(line))), env)
        with outcome.lock:
            outcome.runs.append(run)
            if outcome.cancelled:
                run.cancel()
        return run.execute()

    with ThreadPoolExecutor(max_workers=inputs.max_parallel) as pool:
        for report in pool.map(one, runnable):
            if report is not None:
                outcome.reports.append(report)


def annotate_runs(outcome: Outcome, errors_shown: int) -> None:
    """Each failed run as an error on the step that failed, and each incompatible target (plan mode) on
    its writer step, in the error slots validation left free."""
    room = PER_TYPE_LIMIT - errors_shown
    by_file = {c.document.file: c for c in outcome.checked}
    lines = [
        command.annotation("error", message, file=file, line=line_no, title="Pipeline not run")
        for message, file, line_no in outcome.problems
    ]
    for report in outcome.public_reports():
        checked = by_file.get(report.file or "")
        for target in report.targets:
            if target.state == "incompatible":
                lines.append(
                    command.annotation(
                        "error",
                        f"target {target.where} does not fit the data: " + "; ".join(target.differences),
                        file=report.file,
                        line=_step_line(checked, target.step_id),
                        title=f"Incompatible target for step {target.step_id}",
                    )
                )
        # an incompatible target is already annotated above, with its differences; a step interrupted by
        # another's failure is not the one to fix
        failed = next(
            (
                s
                for s in report.steps
                if s.status == "failed"
                and (s.error or {}).get("error_type") not in (INCOMPATIBLE, "Interrupted")
            ),
            None,
        )
        if report.status != "failure" or (failed is None and not report.error):
            continue
        error = (failed.error if failed else None) or report.error or {}
        message = str(error.get("message") or "the run failed")
        if error.get("hint"):
            message += f"\nHint: {error['hint']}"
        lines.append(
            command.annotation(
                "error",
                message,
                file=report.file,
                line=_step_line(checked, failed.id) if failed else None,
                title=f"Run failed at step {failed.id}" if failed else "Run failed",
            )
        )
    command.emit(lines[: max(room, 0)])


def _checked(outcome: Outcome, report: RunReport) -> Checked | None:
    return next((c for c in outcome.checked if c.document.file == report.file), None)


def _step_line(checked: Checked | None, step_id: str) -> int | None:
    data = checked.document.data if checked else None
    steps = data.get("steps") if isinstance(data, dict) else None
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict) and step.get("id") == step_id:
            return checked.document.span(("steps", index, "id")).line
    return None


def isolation_schema(outcome: Outcome) -> str | None:
    """`isolate: pr`: the pull request's own schema; outside a pull request, no isolation (noted)."""
    inputs, event = outcome.inputs, outcome.event
    if inputs.isolate != "pr":
        return None
    if not (event.is_pull_request and event.pr_number):
        outcome.notes.append(
            "isolate: pr applies to pull requests only; this run writes to the configured schemas."
        )
        return None
    schema = schema_for(inputs.schema_template, event.pr_number)
    outcome.notes.append(f"Writes go to the pull request's own schema {schema}.")
    return schema


def cleanup_pr(outcome: Outcome, workspace: Path, env) -> None:
    """`mode: cleanup` (on the pull_request `closed` event): drop the pull request's schema everywhere."""
    inputs, event = outcome.inputs, outcome.event
    if not event.pr_number or event.action != "closed":
        raise OsirisError(
            "mode: cleanup runs only on the pull_request `closed` event: it drops that pull request's "
            "schema, which an open pull request still uses",
            "Run it in a job with `if: github.event.action == 'closed'` under `on: pull_request: types: "
            "[..., closed]`.",
        )
    schema = schema_for(inputs.schema_template, event.pr_number)
    pipelines = discover([p for p in inputs.pipelines if p])
    for dropped in cleanup(pipelines, schema, inputs.schema_template, inputs.connections, env):
        outcome.notes.append(f"Dropped {dropped}.")
    if not any(n.startswith("Dropped") for n in outcome.notes):
        outcome.notes.append("No writer of the matched pipelines supports schemas; nothing dropped.")
    outcome.cleaned = True


def _log(line: str) -> None:
    with command.stop_commands() as echo:  # run output is untrusted: it must not issue commands
        echo(line + "\n")


def write_summary(
    outcome: Outcome, path: str | None, extra_findings: list[Diagnostic], redactor: Redactor
) -> str:
    """Render the step summary, redact it, write it once; returns the Markdown (for the comment)."""
    inputs = outcome.inputs
    icon = {"success": "✅", "failure": "❌", "skipped": "⏭️"}[outcome.status]
    summary = Summary()
    summary.heading(f"{icon} Osiris pipelines: {outcome.status}", 2)
    sha = (outcome.event.head_sha or outcome.event.sha or "")[:7]
    summary.paragraph(
        line(
            f"{len(outcome.checked)} pipeline(s) · mode {outcome.mode} · target {inputs.target} · "
            f"{time.monotonic() - outcome.started:.1f} s",
            *((" · commit ", inline_code(sha)) if sha else ()),
            f" · osiris-action {__version__}",
        )
    )
    for note in outcome.notes:
        summary.paragraph(note)
    for error in outcome.errors:
        summary.code_block(error)
    if outcome.cancelled:
        summary.paragraph(line(Raw("<b>Cancelled</b>"), ": the run was stopped; results below are partial."))
    for report in outcome.public_reports():
        add_report(summary, report, show_values=outcome.shows_values)
    ran = {report.file for report in outcome.reports}
    for checked in outcome.checked:
        if checked.document.file not in ran:  # not run: invalid, not compiled, failed before it started
            failed = checked.document.file in outcome.not_started
            state = (
                "❌ not run: " + outcome.not_started[checked.document.file]
                if failed
                else ("✅ compiled" if checked.compiled else ("✅ valid" if checked.ok else "❌ errors"))
            )
            fp = (" · ", inline_code(checked.compiled.fingerprint[:19] + "…")) if checked.compiled else ()
            summary.paragraph(line(inline_code(checked.document.file), f": {state}", *fp))
    if extra_findings:
        summary.heading("Findings not shown as annotations", 3)
        summary.table(
            ["file", "line", "severity", "code", "message"],
            [[d.file, f"{d.line}:{d.column}", d.severity, d.code, d.message] for d in extra_findings],
        )
    markdown = redactor.redact(summary.render())
    # The redacted text goes to the file: the runner masks the summary too, but only the values that
    # were registered with add-mask, and the redactor also knows secret-shaped values.
    Summary(budget=summary.budget).raw(markdown).write(path)
    return markdown


def _cancel_on_signals(outcome: Outcome) -> dict:
    """The runner cancels a container step with SIGTERM (SIGINT locally): stop cleanly on either."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: outcome.cancel())
    return previous


def _invalid_input(exc: InputError, env: Mapping[str, str]) -> int:
    message = f"{exc.message}\n{exc.hint}".strip()
    command.emit(
        command.annotation("error", message, title=f"Invalid input '{exc.name}'" if exc.name else None)
    )
    summary = Summary()
    summary.heading("❌ Osiris pipelines: invalid input", 2)
    summary.paragraph(exc.message)
    if exc.hint:
        summary.paragraph(exc.hint)
    summary.write(env.get("GITHUB_STEP_SUMMARY"))
    set_outputs(env.get("GITHUB_OUTPUT"), {"status": "failure"})
    return 2


def main(env=None) -> int:
    from osiris_action.sandbox.local import protect_process

    protect_process()  # before any secret is read: the worker must not read them from /proc
    env = os.environ if env is None else env
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()
    os.chdir(workspace)
    redactor = Redactor()
    mask_secrets(env, workspace, redactor)
    try:
        inputs = Inputs.read(env)
    except InputError as exc:
        return _invalid_input(exc, env)
    try:
        event = load_event(env)
    except ValueError as exc:
        return _invalid_input(
            InputError(str(exc), "The runner writes GITHUB_EVENT_PATH; check the job."), env
        )
    artifacts = (workspace / inputs.artifacts_dir).resolve()
    if not artifacts.is_relative_to(workspace):  # `..`, an absolute path, or a symlink leaving it
        return _invalid_input(
            InputError(
                f"Input 'artifacts-dir' must be a folder inside the workspace, got {inputs.artifacts_dir!r}",
                "Use a relative path such as `osiris-artifacts`.",
                "artifacts-dir",
            ),
            env,
        )
    outcome = Outcome(inputs, event, new_run_id(), mode=inputs.mode)
    out_root = artifacts / outcome.run_id
    previous = _cancel_on_signals(outcome)
    extra: list[Diagnostic] = []
    closed = event.is_pull_request and event.action == "closed"
    try:
        if event.is_pull_request and not event.pr_known:  # issue_comment: ask the API, unknown is a fork
            event = outcome.event = _complete_pull_request(event, inputs, env)
        if outcome.mode == "cleanup" and event.is_fork:
            outcome.mode = "validate"
            raise OsirisError(
                "refusing to clean up after a fork's pull request: its connections file names the hosts, "
                "and clean-up would connect to them with the repository's secrets",
                "A fork's pull request never ran with secrets, so it left no schema to drop.",
            )
        if outcome.mode == "cleanup":
            cleanup_pr(outcome, workspace, env)
            closed = True
        elif closed:
            outcome.notes.append("The pull request is closed: there is nothing to check.")
            outcome.findings.append(Finding("notice", outcome.notes[-1], title="Nothing to check"))
            outcome.mode = "validate"
        elif event.is_fork and event.is_privileged and outcome.mode in RUN_MODES:
            outcome.mode = "compile"  # still validated and compiled: the author sees their findings
            refusal = OsirisError(
                f"refusing to {inputs.mode} a fork's pipelines under `{event.name}`: that event runs with "
                "the repository's secrets, and the fork's SQL, hosts and connections file would get them"
                + (
                    ""
                    if event.pr_known
                    else " (the pull request's origin is unknown, so it counts as a fork)"
                ),
                "Run pipelines of forks under `on: pull_request` (GitHub gives them no secrets), or "
                "check out the base branch only. See the README's Security model.",
            )
            outcome.errors.append(refusal.render())
        elif event.is_pull_request and (event.is_fork or event.is_dependabot) and outcome.mode in RUN_MODES:
            who = "Dependabot" if event.is_dependabot else "a fork"
            outcome.mode = "compile"
            outcome.notes.append(
                f"This pull request comes from {who}, so GitHub gives it no secrets: "
                "pipelines are validated and compiled, not run."
            )
            outcome.findings.append(Finding("notice", outcome.notes[-1], title="Run skipped"))
        if (
            outcome.mode in RUN_MODES
            and inputs.target == "e2b"
            and not inputs.e2b_api_key
            and not env.get("E2B_API_KEY")
        ):
            raise OsirisError(
                "target: e2b needs an E2B API key, and none was given",
                "Set the input `e2b-api-key: ${{ secrets.E2B_API_KEY }}`, or use `target: local`.",
            )
        checker = Checker(inputs.connections)
        chosen = [] if closed else select_pipelines(inputs, event, workspace, outcome, env)
        for path in chosen:
            if outcome.cancelled:
                break
            outcome.checked.append(
                checker.compile(path, None, inputs.profile)
                if outcome.mode != "validate"
                else checker.check(path)
            )
        diagnostics = ordered(outcome.diagnostics + checker.connection_diagnostics)  # once each
        annotator = Annotator(prefer_files=[c.document.file for c in outcome.checked])
        # the step's own notes share the runner's per-type limit with the findings: one budget for all
        everything = outcome.findings + findings(diagnostics)
        shown, hidden = annotator.select(everything)
        annotator.emit(everything)
        hidden_keys = {(f.file, f.line, f.col, f.title) for f in hidden}
        extra = [d for d in diagnostics if (d.file, d.line, d.column, d.code) in hidden_keys]
        extra.sort(key=lambda d: (_SEVERITY.get(d.severity, 3), d.file or "", d.line or 0, d.column or 0))
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / "findings.sarif").write_text(format_sarif(diagnostics, _rule_titles(), __version__))
        if outcome.mode in RUN_MODES and not outcome.cancelled:
            outcome.isolate_schema = isolation_schema(outcome)
            run_all(outcome, env, out_root, redactor)
            annotate_runs(outcome, sum(f.level == "error" for f in shown))
            diff_gate.check(
                outcome.reports, inputs.fail_on_diff, lambda r, sid: _step_line(_checked(outcome, r), sid)
            )
    except OsirisError as exc:
        outcome.errors.append(redactor.redact(exc.render()))
    except Exception as exc:  # the summary and outputs must still be written
        outcome.errors.append(redactor.redact(f"internal error: {type(exc).__name__}: {exc}"))
    # errors of the whole step (bad input, unknown event) show in the checks view, not only in the log
    command.emit(
        [command.annotation("error", error, title="Osiris action error") for error in outcome.errors]
    )
    try:
        markdown = write_summary(outcome, env.get("GITHUB_STEP_SUMMARY"), extra, redactor)
        _write_report(outcome, out_root, redactor)
        _outputs(outcome, env, out_root, workspace)
        if inputs.comment == "always" or (inputs.comment == "on-failure" and outcome.status == "failure"):
            _comment(outcome, markdown, env)
        for error in outcome.errors:
            with command.stop_commands() as echo:
                echo(error + "\n")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if outcome.status == "failure" else 0


def _complete_pull_request(event: Event, inputs: Inputs, env) -> Event:
    """The pull request's head and base from the API; on any failure the event stays unknown (a fork)."""
    from osiris_action.github.rest import GitHubClient, GitHubError

    if not (event.repository and event.pr_number and inputs.github_token):
        return event
    try:
        with GitHubClient.from_env(inputs.github_token, env, retries=1) as api:
            return event.with_pull_request(api.get_pull(event.repository, event.pr_number))
    except (GitHubError, ValueError):
        return event


def _rule_titles() -> dict[str, str]:
    try:
        from osiris_action.codes import rule_titles

        return rule_titles()
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
        "runs": [dump(r) for r in outcome.reports],
        "errors": outcome.errors,
    }
    out_root.mkdir(parents=True, exist_ok=True)
    # redacted as a structure: masking the JSON text would break it where a secret is also a number
    shown = shown_data(data, redactor, by_name=False)
    (out_root / "report.json").write_text(json.dumps(shown, indent=2, sort_keys=True) + "\n")


def _outputs(outcome: Outcome, env, out_root: Path, workspace: Path) -> None:
    def rel(path: Path) -> str:
        try:
            return path.resolve().relative_to(workspace).as_posix()
        except ValueError:
            return path.as_posix()

    values = {
        "status": outcome.status,
        "pipelines": json.dumps([c.document.file for c in outcome.checked]),
        # empty when nothing ran: "0 rows" and "parity false" would claim a run that did not happen
        "rows-read": str(sum(r.rows_read for r in outcome.reports)) if outcome.reports else "",
        "rows-written": str(sum(r.rows_written for r in outcome.reports)) if outcome.reports else "",
        "manifest-hashes": json.dumps(
            {c.document.file: c.compiled.fingerprint for c in outcome.checked if c.compiled}, sort_keys=True
        ),
        "hash-parity": ""
        if not outcome.reports
        else str(all(r.hash_parity for r in outcome.reports)).lower(),
        "report-json": rel(out_root / "report.json"),
        "artifacts-dir": rel(out_root),
        "run-id": outcome.run_id,
        "data-diff": diff_gate.output(outcome.reports) if outcome.reports else "",
    }
    set_outputs(env.get("GITHUB_OUTPUT"), values)


def _comment(outcome: Outcome, markdown: str, env) -> None:
    from osiris_action.github.rest import ACTIONS_BOT, Forbidden, GitHubClient, GitHubError, sticky_marker

    event = outcome.event
    if not (event.pr_number and event.repository):
        return
    if not outcome.inputs.github_token:
        command.emit(
            command.annotation(
                "warning",
                "comment: is set but github-token is empty, so no comment was posted.",
                title="PR comment skipped",
            )
        )
        return
    marker = sticky_marker(
        f"osiris-run-pipeline:{env.get('GITHUB_WORKFLOW', '')}:{env.get('GITHUB_JOB', '')}"
    )
    try:
        with GitHubClient.from_env(outcome.inputs.github_token, env) as api:
            # anyone can post the marker: only a comment of the token's own identity is ours to edit
            author = api.login() or ACTIONS_BOT
            api.upsert_sticky_comment(event.repository, event.pr_number, marker, markdown, author=author)
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
