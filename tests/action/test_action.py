"""The action as the runner runs it: a child process in a git workspace, read back by runner rules.

No database is needed: pipelines are the quick-start's (CSV -> DuckDB -> CSV, target local) or are
checked in mode validate/compile only.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.action import runner_parse
from tests.action.conftest import (
    CONNECTIONS,
    ORDERS_SUMMARY,
    PR_NUMBER,
    REPOSITORY,
    ROOT,
    RunnerWorld,
    StepResult,
)

SUMMARY_LIMIT = 1024 * 1024  # the runner drops a step summary over 1024 KiB


def checked(result: StepResult) -> list[str]:
    return json.loads(result.outputs["pipelines"])


def many_findings_pipeline(steps: int, name_length: int = 12) -> tuple[str, list[tuple[int, int]], list[int]]:
    """A pipeline with one error (unknown component) and one warning (unknown step key) per step.

    Returns the text, the (line, column) of each error and the line of each warning, counted here
    from the text we write rather than taken from the validator.
    """
    lines = ['oml_version: "0.1.0"', "name: many-findings", "steps:"]
    errors: list[tuple[int, int]] = []
    warnings: list[int] = []
    for i in range(steps):
        component = f"nope.{'x' * name_length}{i}"
        lines.append(f"  - id: step-{i}")
        lines.append(f"    component: {component}")
        errors.append((len(lines), lines[-1].index(component) + 1))
        lines.append("    mode: read")
        lines.append("    colour: red")
        warnings.append(len(lines))
        lines.append("    config: {}")
    return "\n".join(lines) + "\n", errors, warnings


# -- which pipelines ---------------------------------------------------------------------------


def test_pull_request_checks_only_the_changed_pipeline(runner_world: RunnerWorld) -> None:
    result = runner_world.run("pull_request", {"mode": "compile"})
    assert result.returncode == 0, result.explain()
    assert checked(result) == ["pipelines/orders-summary.yaml"]
    assert result.outputs["status"] == "success"
    assert "1 of 2 pipeline(s) changed in this pull request (git diff)" in result.summary
    assert list(json.loads(result.outputs["manifest-hashes"])) == ["pipelines/orders-summary.yaml"]
    assert not runner_world.api.state.requests, "git knew the changes: the API must not be asked"


def test_a_changed_connections_file_checks_every_pipeline(runner_world: RunnerWorld) -> None:
    runner_world.setup(head={"pipelines/osiris_connections.yaml": CONNECTIONS + "    # moved\n"})
    result = runner_world.run("pull_request", {"mode": "compile"})
    assert result.returncode == 0, result.explain()
    assert checked(result) == ["pipelines/orders-by-status.yaml", "pipelines/orders-summary.yaml"]
    assert "0 of 2 pipeline(s) changed in this pull request (git diff); 2 more use a connections file" in (
        result.summary
    )


def test_changed_only_false_checks_every_pipeline(runner_world: RunnerWorld) -> None:
    result = runner_world.run("pull_request", {"mode": "validate", "changed-only": "false"})
    assert result.returncode == 0, result.explain()
    assert checked(result) == ["pipelines/orders-by-status.yaml", "pipelines/orders-summary.yaml"]


def test_workflow_dispatch_checks_every_matched_pipeline(runner_world: RunnerWorld) -> None:
    runner_world.setup(checkout="main")
    result = runner_world.run("workflow_dispatch", {"mode": "compile", "pipelines": "pipelines/*.yaml"})
    assert result.returncode == 0, result.explain()
    assert checked(result) == ["pipelines/orders-by-status.yaml", "pipelines/orders-summary.yaml"]
    hashes = json.loads(result.outputs["manifest-hashes"])
    assert sorted(hashes) == checked(result)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes.values())


def test_shallow_clone_fetches_the_base_commit(runner_world: RunnerWorld) -> None:
    runner_world.setup(shallow=True)
    assert not runner_world.has_commit(runner_world.base_sha), "a depth-1 checkout has only the merge"
    assert not runner_world.has_commit(runner_world.head_sha)
    result = runner_world.run("pull_request", {"mode": "validate"})
    assert result.returncode == 0, result.explain()
    assert runner_world.has_commit(runner_world.base_sha), "the action fetched the base from origin"
    assert checked(result) == ["pipelines/orders-summary.yaml"]
    assert "(git diff)" in result.summary
    assert not runner_world.api.state.requests


def test_without_git_history_the_api_lists_the_changed_files(runner_world: RunnerWorld) -> None:
    runner_world.setup(shallow=True)
    (runner_world.workspace / ".git" / "config").write_text(
        (runner_world.workspace / ".git" / "config")
        .read_text()
        .replace(runner_world.origin.as_uri(), (runner_world.root / "gone.git").as_uri())
    )
    runner_world.api.set_pr_files(REPOSITORY, PR_NUMBER, ["pipelines/orders-summary.yaml", "README.md"])
    result = runner_world.run("pull_request", {"mode": "validate"})
    assert result.returncode == 0, result.explain()
    assert checked(result) == ["pipelines/orders-summary.yaml"]
    assert "(GitHub API)" in result.summary
    (request,) = runner_world.api.state.requests
    assert request.path == f"/repos/{REPOSITORY}/pulls/{PR_NUMBER}/files"
    assert request.headers["authorization"] == f"Bearer {runner_world.token}"


@pytest.mark.parametrize("payload", ["pull_request_fork", "pull_request_dependabot"])
def test_pull_requests_without_secrets_are_compiled_not_run(runner_world: RunnerWorld, payload: str) -> None:
    result = runner_world.run(payload)  # mode defaults to run
    assert result.returncode == 0, result.explain()
    assert result.outputs["status"] == "success"
    (notice,) = [a for a in result.of_level("notice") if a.title == "Run skipped"]
    who = "a fork" if payload.endswith("fork") else "Dependabot"
    assert f"comes from {who}" in notice.message and "not run" in notice.message
    assert result.outputs["rows-read"] == "" and result.outputs["hash-parity"] == ""  # nothing ran
    assert json.loads(result.outputs["manifest-hashes"]), "pipelines were still compiled"
    assert result.report()["mode"] == "compile"
    assert result.report()["runs"] == []


@pytest.mark.parametrize("payload", ["pull_request_fork", "pull_request_dependabot"])
def test_pull_requests_without_secrets_still_fail_on_validation_errors(
    runner_world: RunnerWorld, payload: str
) -> None:
    broken = ORDERS_SUMMARY.replace("component: duckdb.processor", "component: duckdb.procesor")
    runner_world.setup(head={"pipelines/orders-summary.yaml": broken})
    result = runner_world.run(payload)
    assert result.returncode == 1, result.explain()
    assert result.outputs["status"] == "failure"
    (error,) = result.of_level("error")
    assert (error.file, error.title) == ("pipelines/orders-summary.yaml", "OML025")


def test_a_closed_pull_request_is_skipped(runner_world: RunnerWorld) -> None:
    result = runner_world.run("pull_request_closed")
    assert result.returncode == 0, result.explain()
    assert result.outputs["status"] == "skipped"
    assert checked(result) == []
    assert "closed" in result.summary


# -- annotations -------------------------------------------------------------------------------


def test_annotations_errors_first_ten_per_type_one_overflow_notice(runner_world: RunnerWorld) -> None:
    text, errors, warnings = many_findings_pipeline(12)
    runner_world.setup(head={"pipelines/many.yaml": text})
    result = runner_world.run("pull_request", {"mode": "validate"})
    assert result.returncode == 1, result.explain()
    levels = [a.level for a in result.annotations]
    assert levels == ["error"] * 10 + ["warning"] * 10 + ["notice"], levels
    # Nothing for the runner to drop: what we print is what shows.
    assert len(result.out.kept_annotations) == len(result.out.annotations)
    shown = [(a.line, a.col) for a in result.of_level("error")]
    assert shown == errors[:10]
    for a in result.of_level("error"):
        assert a.file == "pipelines/many.yaml" and a.title == "OML025"
        assert a.end_line == a.line
        assert a.message.startswith("unknown component 'nope.")
    assert [a.line for a in result.of_level("warning")] == warnings[:10]
    for a in result.of_level("warning"):
        assert (a.file, a.col, a.title) == ("pipelines/many.yaml", 5, "OML029")
    (overflow,) = result.of_level("notice")
    assert overflow.title == "More findings"
    assert overflow.message.startswith("4 more findings (2 errors, 2 warnings) not shown as annotations")
    # The ones left out are in the summary.
    assert "Findings not shown as annotations" in result.summary
    for line, col in errors[10:]:
        assert f"| pipelines/many.yaml | {line}:{col} | error | OML025 |" in result.summary


def test_summary_stays_under_the_limit_with_3000_findings(runner_world: RunnerWorld) -> None:
    text, _, _ = many_findings_pipeline(1500, name_length=600)
    runner_world.setup(head={"pipelines/huge.yaml": text})
    result = runner_world.run("pull_request", {"mode": "validate"})
    assert result.returncode == 1, result.explain()
    assert len(result.report()["diagnostics"]) == 3000
    size = result.summary_file.stat().st_size
    assert 500_000 < size < SUMMARY_LIMIT
    assert result.summary.count("## ❌ Osiris pipelines: failure") == 1
    note = re.search(r"\*(\d+) more rows not shown\. The full list is in the artifacts\.\*", result.summary)
    assert note, "the findings table was cut with a note"
    rows = result.summary.count("| pipelines/huge.yaml |")
    assert rows + int(note[1]) == 3000 - 20  # all but the 10 errors and 10 warnings annotated
    assert len(result.annotations) == 21  # those and one overflow notice


# -- secrets and untrusted text ----------------------------------------------------------------


CANARY_DB = "canary-db-7f3a9c1e5b"
CANARY_E2B = "e2b_canary0f1e2d3c4b5a69788796a5b4"


def test_secrets_are_masked_first_and_never_written(runner_world: RunnerWorld) -> None:
    connections = CONNECTIONS.replace("base_dir: ./data", "base_dir: ./data\n      token: ${CANARY_TOKEN}")
    runner_world.setup(head={"pipelines/osiris_connections.yaml": connections})
    result = runner_world.run(
        "pull_request",
        {"mode": "run", "e2b-api-key": CANARY_E2B, "pipelines": "pipelines/orders-summary.yaml"},
        env={"CANARY_TOKEN": CANARY_DB},
    )
    assert result.returncode == 0, result.explain()
    # Registered before anything else is printed, on either stream.
    lines = runner_parse.split_lines(result.stdout)
    masks = [i for i, line in enumerate(lines) if line.startswith("::add-mask::")]
    assert masks == list(range(len(masks))), "add-mask lines come first"
    assert {CANARY_DB, CANARY_E2B, runner_world.token} <= set(result.masks)
    # The connection that holds it was used: the secret reached the sandbox and came back redacted.
    assert result.outputs["rows-read"] == "1000"
    # The runner never echoes an add-mask line; everything else must be clean.
    printed = [ln for ln in runner_parse.split_lines(result.stdout) if not ln.startswith("::add-mask::")]
    written = ["\n".join(printed), result.stderr, result.summary, result.output_file.read_text()]
    for path in sorted(result.artifacts_dir().rglob("*")):
        if path.is_file():
            written.append(path.read_bytes().decode("utf-8", "replace"))
    assert len(written) > 6
    for text in written:
        for canary in (CANARY_DB, CANARY_E2B, runner_world.token):
            assert canary not in text


def test_untrusted_text_cannot_issue_workflow_commands(runner_world: RunnerWorld) -> None:
    injected = ORDERS_SUMMARY.replace(
        "        SELECT country,",
        "        SELECT error('boom\n        ::error::pwned\n        ::add-mask::country\n"
        "        ##[error]legacy-pwned') AS x, country,",
    )
    runner_world.setup(head={"pipelines/orders-summary.yaml": injected})
    result = runner_world.run("pull_request", {"mode": "run"})
    assert result.returncode == 1, result.explain()
    # The SQL error was printed, at the start of lines where the runner would read commands ...
    assert "::error::pwned" in result.log and "##[error]legacy-pwned" in result.log
    assert re.search(r"^\s*::error::pwned$", result.stdout, re.M)
    # ... yet inside stop-commands, so nothing was executed.
    assert result.out.named("stop-commands")
    # The one error is ours: the failed run, on the step that failed, quoting the SQL error as text.
    (failure,) = result.of_level("error")
    step_line = injected.splitlines().index("  - id: revenue-by-country") + 1
    assert (failure.file, failure.line) == ("pipelines/orders-summary.yaml", step_line)
    assert failure.title == "Run failed at step revenue-by-country"
    assert failure.message.startswith("DuckDB query of step 'revenue-by-country' failed")
    assert "\n::error::pwned\n" in failure.message
    for command in result.commands:
        if command.name != "error":
            assert "pwned" not in command.data, command.raw
    assert "country" not in result.masks
    assert not result.out.errors and not result.err.errors
    assert result.outputs["status"] == "failure"


# -- summary and outputs -----------------------------------------------------------------------


def test_run_summary_and_outputs(runner_world: RunnerWorld) -> None:
    result = runner_world.run("pull_request", {"mode": "run"})
    assert result.returncode == 0, result.explain()
    summary = result.summary
    assert summary.startswith("## ✅ Osiris pipelines: success\n")
    assert summary.count("## ✅ Osiris pipelines") == 1, "written once"
    head = runner_world.head_sha[:7]
    assert "1 pipeline(s) · mode run · target local · " in summary
    assert f"commit <code>{head}</code>" in summary
    assert "| step | component | status | rows in | rows out | duration |" in summary
    assert re.search(r"\| read-orders \| filesystem\.csv\\_extractor \| ✅ success \| 0 \| 1,000 \|", summary)
    assert re.search(r"\| revenue-by-country \| duckdb\.processor \| ✅ success \| 1,000 \| 8 \|", summary)
    mermaid = re.search(r"```mermaid\n(.*?)```", summary, re.S)
    assert mermaid and mermaid[1].startswith("flowchart LR")
    assert "s0 -->|1,000 rows| s1" in mermaid[1] and "s1 -->|8 rows| s2" in mermaid[1]
    assert "| file | host sha256 | sandbox sha256 | match |" in summary
    assert re.search(r"Hash parity: (\d+)/\1 files match", summary)
    assert "❌" not in summary

    outputs = result.outputs
    declared = yaml.safe_load((ROOT / "action.yml").read_text())["outputs"]
    assert set(outputs) == set(declared)
    assert outputs["status"] == "success"
    assert json.loads(outputs["pipelines"]) == ["pipelines/orders-summary.yaml"]
    assert (outputs["rows-read"], outputs["rows-written"], outputs["hash-parity"]) == ("1000", "8", "true")
    for key in ("report-json", "artifacts-dir"):
        assert not os.path.isabs(outputs[key]) and ".." not in Path(outputs[key]).parts
    assert outputs["artifacts-dir"] == f"osiris-artifacts/{outputs['run-id']}"
    assert outputs["report-json"] == f"{outputs['artifacts-dir']}/report.json"
    report = result.report()
    assert report["run_id"] == outputs["run-id"] and report["status"] == "success"
    assert json.loads(outputs["manifest-hashes"]) == report["manifests"]
    (run,) = report["runs"]
    assert run["manifest_fingerprint"] == report["manifests"]["pipelines/orders-summary.yaml"]
    assert (result.artifacts_dir() / "findings.sarif").is_file()
    out_csv = result.artifacts_dir() / "orders-summary" / "data" / "filesystem-local" / "out"
    assert (out_csv / "revenue_by_country.csv").read_text().count("\n") == 9  # header + 8 countries


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("mode", "deploy", ["validate", "compile", "run"]),
        ("timeout", "-1", ["positive number"]),
        ("changed-only", "maybe", ["true", "false"]),
        ("comment", "sometimes", ["off", "always", "on-failure"]),
        ("max-parallel", "0", ["at least 1"]),
    ],
)
def test_bad_input_names_the_input_and_what_it_accepts(
    runner_world: RunnerWorld, name: str, value: str, allowed: list[str]
) -> None:
    result = runner_world.run("pull_request", {name: value})
    assert result.returncode != 0
    (error,) = result.of_level("error")
    assert f"'{name}'" in error.message
    for word in allowed:
        assert word in error.message
    assert value in error.message
    assert result.outputs["status"] == "failure"
    assert f"'{name}'" in html.unescape(result.summary)
    assert result.summary.count("## ") == 1


def test_fail_on_warning(runner_world: RunnerWorld) -> None:
    warned = ORDERS_SUMMARY.replace("    mode: transform\n", "    mode: transform\n    colour: red\n", 1)
    runner_world.setup(head={"pipelines/orders-summary.yaml": warned})
    lenient = runner_world.run("pull_request", {"mode": "validate"})
    assert lenient.returncode == 0, lenient.explain()
    assert lenient.outputs["status"] == "success"
    (warning,) = lenient.of_level("warning")
    assert (warning.file, warning.title) == ("pipelines/orders-summary.yaml", "OML029")
    strict = runner_world.run("pull_request", {"mode": "validate", "fail-on": "warning"})
    assert strict.returncode == 1, strict.explain()
    assert strict.outputs["status"] == "failure"
    assert strict.summary.startswith("## ❌ Osiris pipelines: failure")


# -- cancellation ------------------------------------------------------------------------------


def _workers_under(folder: Path) -> list[int]:
    """Worker processes whose working directory is a sandbox inside `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        worker = any(arg.endswith((b"worker.py", b"interpreter.py")) for arg in cmdline)
        if worker and cwd.startswith(str(folder)) and state != "Z":
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_sandbox_and_still_writes_the_summary(runner_world: RunnerWorld) -> None:
    slow = ORDERS_SUMMARY.replace(
        "        SELECT country,",
        "        SELECT (SELECT count(*) FROM input_df CROSS JOIN range(10000000000)) AS n, country,",
    )
    runner_world.setup(head={"pipelines/orders-summary.yaml": slow})
    environ = runner_world.environment("pull_request", {"mode": "run"})
    proc = runner_world.start(environ)
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    readers = [
        threading.Thread(target=lambda s=s, k=k: chunks[k].extend(s), daemon=True)
        for s, k in ((proc.stdout, "out"), (proc.stderr, "err"))
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _workers_under(runner_world.tmpdir)
        if workers and any("ok    read-orders" in line for line in chunks["out"]):
            break
        time.sleep(0.05)
    assert workers and proc.poll() is None, "".join(chunks["out"] + chunks["err"])
    time.sleep(0.5)  # well inside the slow query
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    stopped_in = time.monotonic() - sent
    for reader in readers:
        reader.join(timeout=5)
    result = runner_world.collect(code, "".join(chunks["out"]), "".join(chunks["err"]), environ)

    assert stopped_in < 10, "docker stop sends SIGKILL after 10 s"
    assert not _workers_under(runner_world.tmpdir), "the sandbox was stopped"
    assert code == 1, result.explain()
    assert result.outputs["status"] == "failure"
    assert result.summary.startswith("## ❌ Osiris pipelines: failure")
    assert "<b>Cancelled</b>: the run was stopped" in result.summary
    (run,) = result.report()["runs"]
    assert run["status"] == "cancelled"
    steps = {s["id"]: s["status"] for s in run["steps"]}
    assert steps == {"read-orders": "success", "revenue-by-country": "failed", "write-summary": "skipped"}


def test_unusual_file_names_are_matched(runner_world: RunnerWorld) -> None:
    renamed = ORDERS_SUMMARY.replace("name: orders-summary", "name: cafe-orders")
    runner_world.setup(head={"pipelines/café orders.yaml": renamed})
    result = runner_world.run("pull_request", {"mode": "validate"})
    assert result.returncode == 0, result.explain()
    assert checked(result) == ["pipelines/café orders.yaml"]
