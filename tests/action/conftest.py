"""`runner_world`: the world a GitHub runner builds around a Docker action step, in a temp folder.

What the runner gives the container, rebuilt here:

* a workspace that is a real git checkout, made the way actions/checkout makes it for a pull
  request: `git init`, `git fetch --depth=N origin +refs/pull/N/merge`, a detached HEAD on the
  merge commit, from a local bare "origin" holding the base branch, the PR head and the merge ref;
* `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `GITHUB_ENV`, `GITHUB_PATH`, `GITHUB_STATE` as fresh files
  under `RUNNER_TEMP/_runner_file_commands`, the event payload at `RUNNER_TEMP/_github_workflow`,
  `HOME` under `RUNNER_TEMP/_github_home`;
* every input declared in action.yml as `INPUT_<NAME>` with hyphens kept and its default filled in
  (`${{ github.token }}` becomes the job's token), overridden by what the test passes as `with:`;
* the entrypoint as a child process, `python -m osiris_action.action`, in the workspace, with an
  environment built from scratch (plus PATH): nothing of the developer's shell leaks in.

What the step left is read back the way the runner reads it: stdout and stderr through
`runner_parse.parse_stdout` (commands, masks, stop-commands), GITHUB_OUTPUT through
`runner_parse.read_file_command`, and the summary as the raw file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.action import runner_parse
from tests.action.fake_github import FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = Path(__file__).resolve().parent / "payloads"
QUICKSTART = ROOT / "examples" / "quickstart"
REPOSITORY = "acme/data-pipelines"
PR_NUMBER = 42
TOKEN = "ghs_" + "T0k3n" * 8  # shaped like a GITHUB_TOKEN so the redactor's patterns know it too

ORDERS_SUMMARY = (QUICKSTART / "orders-summary.yaml").read_text(encoding="utf-8")
ORDERS_BY_STATUS = """\
oml_version: "0.1.0"
name: orders-by-status
description: Order counts per status.
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config:
      connection: "@filesystem.local"
      path: orders.csv

  - id: count-by-status
    component: duckdb.processor
    mode: transform
    needs: [read-orders]
    config:
      query: |
        SELECT status, count(*) AS orders FROM input_df GROUP BY status ORDER BY status

  - id: write-counts
    component: filesystem.csv_writer
    mode: write
    needs: [count-by-status]
    config:
      connection: "@filesystem.local"
      path: out/orders_by_status.csv
"""
CONNECTIONS = (QUICKSTART / "osiris_connections.yaml").read_text(encoding="utf-8")
# longest first: `pull_request_target` before `pull_request`
EVENT_NAMES = ("workflow_dispatch", "workflow_run", "issue_comment", "pull_request_target", "pull_request")


def default_base_files() -> dict[str, str | bytes]:
    """The base branch: two pipelines, their connections file and the CSV they read."""
    return {
        "README.md": "# data pipelines\n",
        "pipelines/orders-summary.yaml": ORDERS_SUMMARY,
        "pipelines/orders-by-status.yaml": ORDERS_BY_STATUS,
        "pipelines/osiris_connections.yaml": CONNECTIONS,
        "pipelines/data/orders.csv": (QUICKSTART / "data" / "orders.csv").read_bytes(),
    }


def default_head_changes() -> dict[str, str | bytes | None]:
    """The pull request: one pipeline gains a filter."""
    return {
        "pipelines/orders-summary.yaml": ORDERS_SUMMARY.replace(
            "WHERE status = 'paid'", "WHERE status = 'paid' AND country <> 'XX'"
        )
    }


def action_inputs() -> dict[str, dict[str, Any]]:
    with (ROOT / "action.yml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)["inputs"]


def input_env_name(name: str) -> str:
    """The runner's mapping (Handler.cs): spaces to `_`, upper case, hyphens kept."""
    return "INPUT_" + name.replace(" ", "_").upper()


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "alice@example.com",
        "GIT_COMMITTER_NAME": "GitHub",
        "GIT_COMMITTER_EMAIL": "noreply@github.com",
        "GIT_AUTHOR_DATE": "2024-06-02T10:00:00Z",
        "GIT_COMMITTER_DATE": "2024-06-02T10:00:00Z",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def _write_tree(root: Path, files: Mapping[str, str | bytes | None]) -> None:
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


_TEMPLATES: dict[str, Path] = {}


def _build(
    root: Path,
    base: Mapping[str, str | bytes | None],
    head: Mapping[str, str | bytes | None],
    *,
    shallow: bool,
    checkout: str,
) -> dict[str, str]:
    """origin.git and workspace/ under `root`; returns the base, head and merge commits."""
    src, origin, workspace = root / "src", root / "origin.git", root / "workspace"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    _write_tree(src, base)
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "Orders pipelines")
    base_sha = _git(src, "rev-parse", "HEAD")
    _git(src, "checkout", "-q", "-b", "orders-country-filter")
    _write_tree(src, head)
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "Filter out test orders")
    head_sha = _git(src, "rev-parse", "HEAD")
    # GitHub's test merge: always a merge commit on top of the base, even when it could fast-forward.
    _git(src, "checkout", "-q", "--detach", base_sha)
    _git(src, "merge", "-q", "--no-ff", "-m", f"Merge {head_sha} into {base_sha}", head_sha)
    merge_sha = _git(src, "rev-parse", "HEAD")
    _git(root, "init", "-q", "--bare", str(origin))
    _git(src, "push", "-q", str(origin), "main", "orders-country-filter")
    _git(src, "push", "-q", str(origin), f"{head_sha}:refs/pull/{PR_NUMBER}/head")
    _git(src, "push", "-q", str(origin), f"{merge_sha}:refs/pull/{PR_NUMBER}/merge")
    shutil.rmtree(src)

    # As actions/checkout does it: init, fetch the one ref (all branches too unless shallow), detach.
    workspace.mkdir()
    _git(workspace, "init", "-q")
    _git(workspace, "remote", "add", "origin", origin.as_uri())
    ref = f"refs/pull/{PR_NUMBER}/merge" if checkout == "merge" else "refs/heads/main"
    local = f"refs/remotes/pull/{PR_NUMBER}/merge" if checkout == "merge" else "refs/remotes/origin/main"
    depth = ["--depth=1"] if shallow else []
    refspecs = [f"+{ref}:{local}"] if shallow else ["+refs/heads/*:refs/remotes/origin/*", f"+{ref}:{local}"]
    _git(workspace, "fetch", "-q", "--no-tags", *depth, "origin", *refspecs)
    _git(workspace, "checkout", "-q", "--detach", local)
    return {"base": base_sha, "head": head_sha, "merge": merge_sha}


@dataclass
class Annotation:
    level: str
    message: str
    file: str | None
    line: int | None
    col: int | None
    end_line: int | None
    end_col: int | None
    title: str | None
    stream: str


@dataclass
class StepResult:
    """What the step left behind, read as the runner reads it."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    out: runner_parse.Transcript
    err: runner_parse.Transcript
    workspace: Path
    output_file: Path
    summary_file: Path

    @property
    def commands(self) -> list[runner_parse.Command]:
        return self.out.commands + self.err.commands

    @property
    def masks(self) -> list[str]:
        return self.out.masks + self.err.masks

    @property
    def annotations(self) -> list[Annotation]:
        found = []
        for stream, transcript in (("stdout", self.out), ("stderr", self.err)):
            for c in transcript.annotations:
                found.append(
                    Annotation(
                        c.name,
                        c.data,
                        c.prop("file"),
                        _int(c.prop("line")),
                        _int(c.prop("col")),
                        _int(c.prop("endLine")),
                        _int(c.prop("endColumn")),
                        c.prop("title"),
                        stream,
                    )
                )
        return found

    def of_level(self, level: str) -> list[Annotation]:
        return [a for a in self.annotations if a.level == level]

    @property
    def log(self) -> str:
        """Plain log lines (what the runner prints rather than processes), both streams."""
        return "\n".join(self.out.log + self.err.log)

    def artifacts_dir(self) -> Path:
        return self.workspace / self.outputs["artifacts-dir"]

    def report(self) -> dict[str, Any]:
        return json.loads((self.workspace / self.outputs["report-json"]).read_text(encoding="utf-8"))

    def explain(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}\n"
            f"--- summary\n{self.summary}"
        )


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


@dataclass
class RunnerWorld:
    root: Path
    api: FakeGitHub
    workspace: Path = field(init=False)
    origin: Path = field(init=False)
    runner_temp: Path = field(init=False)
    base_sha: str = ""
    head_sha: str = ""
    merge_sha: str = ""
    token: str = TOKEN
    repository: str = REPOSITORY

    def __post_init__(self) -> None:
        self.workspace = self.root / "work" / "data-pipelines" / "data-pipelines"
        self.origin = self.root / "origin.git"
        self.runner_temp = self.root / "_temp"
        self.tmpdir = self.root / "tmp"
        self.tmpdir.mkdir(parents=True)
        self._ready = False

    # -- the repository -------------------------------------------------------------------------
    def setup(
        self,
        base: Mapping[str, str | bytes | None] | None = None,
        head: Mapping[str, str | bytes | None] | None = None,
        *,
        shallow: bool = False,
        checkout: str = "merge",
    ) -> RunnerWorld:
        """Origin with `main` (base) and the PR (base + `head` changes); the workspace checks out
        the merge ref (`checkout="merge"`) or `main`, with fetch-depth 1 when `shallow`.

        Built once per distinct layout and copied afterwards: git is the slow part of a test.
        """
        base = default_base_files() if base is None else base
        head = default_head_changes() if head is None else head
        key = hashlib.sha256(
            repr((sorted(base.items()), sorted(head.items()), shallow, checkout)).encode()
        ).hexdigest()[:16]
        template = _TEMPLATES.get(key)
        if template is None:
            template = Path(tempfile.mkdtemp(prefix="runner-world-"))
            shas = _build(template, base, head, shallow=shallow, checkout=checkout)
            _TEMPLATES[key] = template
            (template / "shas.json").write_text(json.dumps(shas))
        for path in (self.origin, self.workspace):
            if path.exists():
                shutil.rmtree(path)
        shutil.copytree(template / "origin.git", self.origin, symlinks=True)
        shutil.copytree(template / "workspace", self.workspace, symlinks=True)
        _git(self.workspace, "remote", "set-url", "origin", self.origin.as_uri())
        shas = json.loads((template / "shas.json").read_text())
        self.base_sha, self.head_sha, self.merge_sha = shas["base"], shas["head"], shas["merge"]
        self._ready = True
        return self

    def has_commit(self, sha: str) -> bool:
        proc = subprocess.run(
            ["git", "-C", str(self.workspace), "cat-file", "-e", f"{sha}^{{commit}}"],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def write(self, files: Mapping[str, str | bytes | None]) -> None:
        """Change the checked-out files (not committed): for runs that do not look at git."""
        _write_tree(self.workspace, files)

    # -- the event --------------------------------------------------------------------------------
    def payload(self, name: str) -> dict[str, Any]:
        data = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
        pr = data.get("pull_request")
        if pr and "base" in pr:
            pr["base"]["sha"] = self.base_sha
            pr["head"]["sha"] = self.head_sha
            pr["merge_commit_sha"] = self.merge_sha
            if "before" in data:
                data["before"], data["after"] = self.base_sha, self.head_sha
        return data

    # -- the step ---------------------------------------------------------------------------------
    def environment(
        self,
        event: str = "pull_request",
        with_: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
        event_name: str | None = None,
    ) -> dict[str, str]:
        """The container's environment for one step; `event` names a file in payloads/, whose name
        starts with the event's (`issue_comment_fork.json` is an `issue_comment`)."""
        if not self._ready:
            self.setup()
        data = dict(payload) if payload is not None else self.payload(event)
        event_name = event_name or next(
            (name for name in EVENT_NAMES if event.startswith(name)), "pull_request"
        )
        commands = self.runner_temp / "_runner_file_commands"
        workflow = self.runner_temp / "_github_workflow"
        home = self.runner_temp / "_github_home"
        for folder in (commands, workflow, home):
            folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for var, prefix in (
            ("GITHUB_OUTPUT", "set_output_"),
            ("GITHUB_STEP_SUMMARY", "step_summary_"),
            ("GITHUB_ENV", "set_env_"),
            ("GITHUB_PATH", "add_path_"),
            ("GITHUB_STATE", "save_state_"),
        ):
            path = commands / f"{prefix}{uuid.uuid4()}"
            path.write_text("", encoding="utf-8")
            files[var] = str(path)
        event_path = workflow / "event.json"
        event_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        pr = data.get("pull_request") or {}
        actor = (data.get("sender") or {}).get("login", "alice")
        if not pr.get("base"):  # issue_comment, workflow_run: no head/base in the payload
            pr = {}
        result = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(self.tmpdir),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_REPOSITORY_OWNER": self.repository.split("/")[0],
            "GITHUB_SHA": self.merge_sha if pr else self.base_sha,
            "GITHUB_REF": f"refs/pull/{pr['number']}/merge" if pr else "refs/heads/main",
            "GITHUB_ACTOR": actor,
            "GITHUB_TRIGGERING_ACTOR": actor,
            "GITHUB_WORKFLOW": "Osiris pipelines",
            "GITHUB_JOB": "pipelines",
            "GITHUB_ACTION": "__osiris_run-pipeline",
            "GITHUB_RUN_ID": "9876543210",
            "GITHUB_RUN_NUMBER": "17",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": self.api.url,
            "GITHUB_GRAPHQL_URL": f"{self.api.url}/graphql",
            "RUNNER_TEMP": str(self.runner_temp),
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            **files,
        }
        if pr:
            result["GITHUB_BASE_REF"] = pr["base"]["ref"]
            result["GITHUB_HEAD_REF"] = pr["head"]["ref"]
        declared = action_inputs()
        given = dict(with_ or {})
        for name, spec in declared.items():
            default = str(spec.get("default", "") or "")
            value = given.pop(name, default)
            result[input_env_name(name)] = value.replace("${{ github.token }}", self.token)
        for name, value in given.items():  # undeclared: the runner passes them with a warning
            result[input_env_name(name)] = value
        result.update(env or {})
        return result

    def start(self, environ: Mapping[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "osiris_action.action"],
            cwd=self.workspace,
            env=dict(environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )

    def finish(self, proc: subprocess.Popen, environ: Mapping[str, str], timeout: float = 60) -> StepResult:
        stdout, stderr = proc.communicate(timeout=timeout)
        return self.collect(proc.returncode, stdout, stderr, environ)

    def collect(self, code: int, stdout: str, stderr: str, environ: Mapping[str, str]) -> StepResult:
        output_file = Path(environ["GITHUB_OUTPUT"])
        summary_file = Path(environ["GITHUB_STEP_SUMMARY"])
        return StepResult(
            returncode=code,
            stdout=stdout,
            stderr=stderr,
            outputs=runner_parse.read_file_command(str(output_file)),
            summary=summary_file.read_text(encoding="utf-8"),
            out=runner_parse.parse_stdout(stdout),
            err=runner_parse.parse_stdout(stderr),
            workspace=self.workspace,
            output_file=output_file,
            summary_file=summary_file,
        )

    def run(
        self,
        event: str = "pull_request",
        with_: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
        timeout: float = 60,
        event_name: str | None = None,
    ) -> StepResult:
        environ = self.environment(event, with_, env, payload, event_name)
        proc = self.start(environ)
        try:
            return self.finish(proc, environ, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session", autouse=True)
def _runner_world_templates() -> Iterator[None]:
    yield
    for template in _TEMPLATES.values():
        shutil.rmtree(template, ignore_errors=True)
    _TEMPLATES.clear()


@pytest.fixture(scope="session")
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def runner_world(tmp_path: Path, fake_github: FakeGitHub) -> RunnerWorld:
    fake_github.reset()
    return RunnerWorld(tmp_path, fake_github)
