"""The runner world of tests/action, and one check of a finished step against every canary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.action.conftest import (  # noqa: F401  (fixtures, registered by import)
    RunnerWorld,
    StepResult,
    _runner_world_templates,
    fake_github,
    runner_world,
)
from tests.e2b.conftest import fake_e2b  # noqa: F401  (fixture, registered by import)
from tests.security.canary import Canaries, assert_nowhere


def assert_step_clean(canaries: Canaries, world: RunnerWorld, result: StepResult, files: bool = True) -> None:
    """No canary in the step's stdout, stderr, GITHUB_OUTPUT, summary, any comment body, nor (`files`) in
    any file of the workspace (the artifacts and run folders are there) or the runner's temporary
    folders."""
    comments = {
        f"comment {c['id']}": c.get("body") or ""
        for comments in world.api.state.comments.values()
        for c in comments
    }
    requests = {
        f"request {i} to {r.path}": repr(r.body) for i, r in enumerate(world.api.state.requests) if r.body
    }
    assert_nowhere(
        canaries,
        texts={
            # `::add-mask::` lines are how a secret is registered; the runner never shows them
            "stdout": _without_masks(result.stdout),
            "stderr": _without_masks(result.stderr),
            "GITHUB_OUTPUT": result.output_file.read_bytes(),
            "summary": result.summary_file.read_bytes(),
            **comments,
            **requests,
        },
        folders=[world.workspace, world.tmpdir, world.runner_temp] if files else [],
        skip=[world.workspace / ".git", world.runner_temp / "_github_workflow"],
    )


def _without_masks(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if not line.startswith("::add-mask::"))


@pytest.fixture
def canaries() -> Canaries:
    """The runner's own secrets and one step secret, each a canary."""
    return Canaries.make(
        "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "E2B_API_KEY", "INPUT_GITHUB-TOKEN", "MYSQL_PASSWORD"
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A CLI project: the quick start's connections file and data, no pipeline yet."""
    import shutil

    root = tmp_path / "project"
    shutil.copytree(Path(__file__).parents[2] / "examples" / "quickstart", root)
    for path in root.glob("*.yaml"):
        if path.name != "osiris_connections.yaml":
            path.unlink()
    return root
