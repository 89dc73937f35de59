"""Route 4: the host reads data files only inside the workspace (action) or the project (CLI), and the
worker writes only inside its sandbox's data folder; symlinked folders and hostile aliases included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.security.canary import Canaries, assert_nowhere
from tests.security.conftest import assert_step_clean

READ_AND_WRITE = """\
oml_version: "0.1.0"
name: attack
steps:
  - id: read
    component: filesystem.csv_extractor
    mode: read
    config: {{connection: "@filesystem.{alias}", path: {path}}}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [read]
    config: {{connection: "@filesystem.{alias}", path: {out}}}
"""


def _connections(alias: str, base_dir: str) -> str:
    return f'connections:\n  filesystem:\n    "{alias}": {{default: true, base_dir: "{base_dir}"}}\n'


def _secret_folder(root: Path, canaries: Canaries) -> Path:
    folder = root / "host-secrets"
    folder.mkdir(exist_ok=True)
    (folder / "secret.csv").write_text(f"token\n{canaries['HOST_FILE']}\n")
    return folder


def test_the_action_reads_and_writes_nothing_outside_the_workspace(runner_world):
    canaries = Canaries.make("GITHUB_TOKEN", "E2B_API_KEY", "HOST_FILE")
    runner_world.setup()
    secrets_dir = _secret_folder(runner_world.root, canaries)
    os.symlink(secrets_dir, runner_world.workspace / "pipelines" / "linked")  # a folder the PR adds
    attacks = {
        "proc": ("local", "/proc/self", "environ", "out.csv"),
        "absolute": ("local", str(secrets_dir), "secret.csv", "out.csv"),
        "symlinked-folder": ("local", "./linked", "secret.csv", "out.csv"),
        "dotdot-path": ("local", "./data", "../../../host-secrets/secret.csv", "out.csv"),
        "writer-escape": ("local", "./data", "orders.csv", "../../../../../../pwned.csv"),
        "hostile-alias": ("../../../../../../pwned-alias", "./data", "orders.csv", "out.csv"),
    }
    for name, (alias, base_dir, path, out) in attacks.items():
        runner_world.write(
            {
                "pipelines/osiris_connections.yaml": _connections(alias, base_dir),
                "pipelines/attack.yaml": READ_AND_WRITE.format(alias=alias, path=path, out=out),
            }
        )
        result = runner_world.run(
            "pull_request",
            {"changed-only": "false", "pipelines": "pipelines/attack.yaml", "comment": "always"},
            env=canaries.env(),
            timeout=120,
        )
        if name == "hostile-alias":  # an alias is only a name: the run stays in its own folders
            assert result.returncode in (0, 1), result.explain()
        else:
            assert result.returncode == 1, (name, result.explain())
            assert result.outputs["status"] == "failure"
            message = "\n".join(a.message for a in result.of_level("error"))
            assert "outside" in message, (name, message)
        assert not list(runner_world.root.rglob("pwned*")), name
        assert not list(Path(runner_world.tmpdir).parent.glob("pwned*"))
        assert_step_clean(canaries, runner_world, result)


def test_the_cli_reads_nothing_outside_the_project(project, tmp_path):
    canaries = Canaries.make("GITHUB_TOKEN", "HOST_FILE")
    secrets_dir = _secret_folder(tmp_path, canaries)
    (project / "linked").symlink_to(secrets_dir)
    for base_dir in ("/proc/self", "./linked", str(secrets_dir)):
        path = "environ" if base_dir == "/proc/self" else "secret.csv"
        (project / "osiris_connections.yaml").write_text(_connections("local", base_dir))
        (project / "attack.yaml").write_text(READ_AND_WRITE.format(alias="local", path=path, out="o.csv"))
        proc = subprocess.run(
            [sys.executable, "-m", "osiris_action", "run", "attack.yaml", "--out", str(tmp_path / "out")],
            cwd=project,
            env={"PATH": os.environ["PATH"], "HOME": str(project), **canaries.env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0, proc.stdout
        assert "outside" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
        assert_nowhere(
            canaries,
            texts={"stdout": proc.stdout, "stderr": proc.stderr},
            folders=[project, tmp_path / "out"],
        )


def test_a_pipeline_file_linked_out_of_the_workspace_is_not_read(runner_world):
    canaries = Canaries.make("HOST_FILE")
    runner_world.setup()
    outside = runner_world.root / "host-pipeline.yaml"
    outside.write_text(
        'oml_version: "0.1.0"\nname: host\nsteps:\n  - id: x\n    component: duckdb.processor\n'
        f"    mode: transform\n    config: {{query: SELECT '{canaries['HOST_FILE']}' AS token}}\n"
    )
    os.symlink(outside, runner_world.workspace / "pipelines" / "linked.yaml")
    result = runner_world.run(
        "pull_request",
        {"changed-only": "false", "pipelines": "pipelines/linked.yaml", "comment": "always"},
        env=canaries.env(),
    )
    assert result.returncode == 1, result.explain()
    assert any("outside the workspace" in a.message for a in result.of_level("error"))
    assert_step_clean(canaries, runner_world, result)
