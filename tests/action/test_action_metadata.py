"""action.yml, the README, the Dockerfile and the workflows agree with each other and pass the linters.

The linters are the offline ones from the dev extra: check-jsonschema (GitHub's action and workflow
schemas, vendored), zizmor (workflow security audits, `--offline`) and hadolint (Dockerfile).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$")


@functools.cache
def action() -> dict:
    """action.yml, parsed when a test needs it (a broken file fails those tests, not collection)."""
    return yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: it is in the dev extra (`make setup` installs it)")
    return str(path)


def run_tool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def readme_table(heading: str) -> list[list[str]]:
    """The rows of the first table after `heading`, cells stripped, header and rule dropped."""
    section = README.split(f"\n{heading}\n", 1)[1]
    rows = []
    for line in section.lstrip("\n").splitlines():
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[2:]


def code_spans(cell: str) -> list[str] | None:
    """["a", "b"] for a cell that is only code spans ("`a` and `b`"); None for prose."""
    if not re.fullmatch(r"`[^`]+`(?: and `[^`]+`)*", cell):
        return None
    return re.findall(r"`([^`]+)`", cell)


# -- README and action.yml ----------------------------------------------------------------------


def test_readme_inputs_table_matches_action_yml() -> None:
    rows = readme_table("### Inputs")
    assert [row[0].strip("`") for row in rows] == list(action()["inputs"])
    for name, default, _meaning in rows:
        declared = str(action()["inputs"][name.strip("`")].get("default", ""))
        spans = code_spans(default)
        if default == "":
            assert declared == "", f"{name}: README says no default, action.yml has {declared!r}"
        elif spans is not None:
            assert spans == declared.strip().splitlines(), f"{name}: README {default} vs {declared!r}"


def test_readme_outputs_table_matches_action_yml() -> None:
    rows = readme_table("### Outputs")
    assert [row[0].strip("`") for row in rows] == list(action()["outputs"])


def test_every_input_is_read_and_every_read_input_is_declared() -> None:
    tree = ast.parse((ROOT / "osiris_action" / "action.py").read_text(encoding="utf-8"))
    inputs_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Inputs")
    read = next(n for n in inputs_class.body if isinstance(n, ast.FunctionDef) and n.name == "read")
    readers = {"get_input", "get_choice", "get_bool", "get_multiline"}
    names = {
        call.args[0].value
        for call in ast.walk(read)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in readers
        and call.args
        and isinstance(call.args[0], ast.Constant)
    }
    assert names == set(action()["inputs"])


def test_inputs_are_documented_and_optional_with_defaults_the_code_accepts() -> None:
    for name, spec in action()["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name), name
        assert spec.get("description"), name
        assert spec.get("required") is False, f"{name}: the runner does not enforce `required`"
    for name, spec in action()["outputs"].items():
        assert spec.get("description"), name


def test_action_yml_runs_the_dockerfile_in_development() -> None:
    assert action()["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_action_yml_passes_the_github_actions_schema() -> None:
    proc = run_tool(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", "action.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_dockerfile_follows_the_runner_rules() -> None:
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    assert "USER" not in keywords, "the runner needs root to use the mounted workspace"
    assert "WORKDIR" not in keywords, "the runner sets --workdir /github/workspace"
    (entrypoint,) = [rest for k, rest in instructions if k == "ENTRYPOINT"]
    command = json.loads(entrypoint)  # exec form: no /bin/sh that drops INPUT_ names with hyphens
    assert command == ["python", "-m", "osiris_action.action"]
    assert "CMD" not in keywords
    run = " ".join(rest for k, rest in instructions if k == "RUN")
    assert "safe.directory /github/workspace" in run
    env = " ".join(rest for k, rest in instructions if k == "ENV")
    assert "PYTHONUNBUFFERED=1" in env


def test_hadolint_finds_nothing() -> None:
    proc = run_tool(tool("hadolint"), "Dockerfile")
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


# -- workflows ---------------------------------------------------------------------------------


def test_workflows_pass_the_github_workflows_schema() -> None:
    files = [str(p.relative_to(ROOT)) for p in WORKFLOWS + EXAMPLES]
    assert len(files) >= 5
    proc = run_tool(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    files = [str(p.relative_to(ROOT)) for p in EXAMPLES]
    proc = run_tool(tool("zizmor"), "--offline", "--no-progress", ".github/", *files, "action.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout
    for path in [*WORKFLOWS, *EXAMPLES]:
        assert f"completed {path.relative_to(ROOT)}" in proc.stderr, "every workflow was audited"


def _steps(path: Path) -> list[tuple[str, dict]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(job, step) for job, spec in data["jobs"].items() for step in spec["steps"]]


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_workflow_hygiene(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert "permissions" in data, "workflow-level permissions, widened per job only where needed"
    assert "pull_request_target" not in data[True], "never run pull request code with secrets"
    for line in text.splitlines():
        uses = re.match(r"\s*(?:- )?uses: (.+)$", line)
        if uses and not uses[1].startswith("./"):
            assert SHA_PIN.match(uses[1]), f"pin by full SHA with a version comment: {uses[1]}"
    for _job, step in _steps(path):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
        assert "${{" not in str(step.get("run", "")), "expressions go through env:, not into scripts"


@pytest.mark.parametrize("path", WORKFLOWS + EXAMPLES, ids=lambda p: p.name)
def test_workflows_use_only_declared_inputs_and_outputs(path: Path) -> None:
    used = False
    for _job, step in _steps(path):
        target = str(step.get("uses", ""))
        if target.startswith("./") or target.startswith("osiris/run-pipeline@"):
            used = True
            assert set(step.get("with", {})) <= set(action()["inputs"]), step["with"]
    for output in re.findall(r"steps\.osiris\.outputs\.([A-Za-z0-9_-]+)", path.read_text(encoding="utf-8")):
        assert output in action()["outputs"], output
    if path.parent.name == "workflows" and path.parent.parent.name == "examples":
        assert used, "an example workflow runs the action"


def test_self_test_runs_the_examples_in_compile_and_the_quickstart_in_run() -> None:
    steps = [s for _, s in _steps(ROOT / ".github" / "workflows" / "self-test.yml") if s.get("uses") == "./"]
    modes = {(s["with"]["mode"], s["with"]["pipelines"]) for s in steps}
    assert ("compile", "examples/**/*.yaml") in modes
    assert ("run", "examples/quickstart/orders-summary.yaml") in modes


def test_release_rewrites_the_image_to_the_published_tag(tmp_path: Path) -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8"))
    job = workflow["jobs"]["release"]
    (step,) = [s for s in job["steps"] if s.get("id") == "rewrite"]
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    env = {"PATH": "/usr/bin:/bin", "IMAGE": job["env"]["IMAGE"], "VERSION": "1.4.2"}
    proc = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    released = yaml.safe_load((tmp_path / "action.yml").read_text(encoding="utf-8"))
    assert released["runs"] == {"using": "docker", "image": "docker://ghcr.io/osiris/run-pipeline:1.4.2"}
    assert {k: v for k, v in released.items() if k != "runs"} == {
        k: v for k, v in action().items() if k != "runs"
    }
    check = run_tool(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", "action.yml", cwd=tmp_path
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # On a commit that is already a release, the step refuses instead of writing a second image line.
    again = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, check=False
    )
    assert again.returncode != 0
