"""Routes 3 and 6 in the E2B target: the real e2b SDK against the local envd-protocol server.

The worker's command in the sandbox receives the variables its connections reference and nothing of
the runner's (the E2B key, the job's token); a connection naming a runner variable never reaches a
sandbox at all; and a referenced value is masked in everything that comes back.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from osiris_action.errors import OsirisError
from osiris_action.run import RunOptions, run_pipeline
from tests.e2b import envd_server
from tests.security.canary import Canaries, assert_nowhere

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"


@pytest.fixture
def started(monkeypatch) -> list[dict[str, str]]:
    """The environment of every command the sandbox started (recorded in the test server)."""
    envs: list[dict[str, str]] = []
    original = envd_server.FakeProcess.__init__

    def record(self, sandbox, config, tag, argv, cwd, env):
        envs.append(dict(env))
        original(self, sandbox, config, tag, argv, cwd, env)

    monkeypatch.setattr(envd_server.FakeProcess, "__init__", record)
    return envs


def _project(tmp_path: Path, token_ref: str) -> Path:
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project)
    connections = project / "osiris_connections.yaml"
    connections.write_text(
        connections.read_text().replace("base_dir: ./data", f"base_dir: ./data\n      token: {token_ref}")
    )
    return project


def test_the_sandbox_gets_the_pipelines_variables_only(fake_e2b, started, tmp_path, monkeypatch):
    canaries = Canaries.make("E2B_API_KEY", "GITHUB_TOKEN", "PIPELINE_TOKEN")
    fake_e2b.api_key = canaries["E2B_API_KEY"]  # the key the server accepts is the canary
    project = _project(tmp_path, "${PIPELINE_TOKEN}")
    monkeypatch.chdir(project)
    environ = {**fake_e2b.env(), **canaries.env()}
    report, out = run_pipeline(
        project / "orders-summary.yaml",
        RunOptions(target="e2b", out=tmp_path / "out", python=sys.executable),
        on_progress=lambda _: None,
        environ=environ,
    )
    assert report.status == "success", report.error
    worker = [env for env in started if env.get("PIPELINE_TOKEN")]
    assert worker and all(env["PIPELINE_TOKEN"] == canaries["PIPELINE_TOKEN"] for env in worker)
    for env in started:
        values = "\n".join(f"{k}={v}" for k, v in env.items())
        assert_nowhere({k: canaries[k] for k in ("E2B_API_KEY", "GITHUB_TOKEN")}, texts={"env": values})
    assert_nowhere(canaries, folders=[out])


def test_a_runner_variable_never_reaches_a_sandbox(fake_e2b, started, tmp_path, monkeypatch):
    canaries = Canaries.make("E2B_API_KEY")
    project = _project(tmp_path, "${E2B_API_KEY}")
    monkeypatch.chdir(project)
    with pytest.raises(OsirisError) as caught:
        run_pipeline(
            project / "orders-summary.yaml",
            RunOptions(target="e2b", out=tmp_path / "out", python=sys.executable),
            on_progress=lambda _: None,
            environ={**fake_e2b.env(), **canaries.env()},
        )
    assert "CON003" in caught.value.render()
    assert not started and not fake_e2b.sandboxes
    assert_nowhere(canaries, texts={"error": caught.value.render()}, folders=[tmp_path / "out"])
