"""Route 5: names from user data never choose where the action writes.

A pipeline's `name` becomes its run folder: `../../../../outside/x` or an absolute path must stay a
plain folder inside `artifacts-dir`, and two pipelines of one name must not share (overwrite) a folder.
`artifacts-dir` itself must be inside the workspace.
"""

from __future__ import annotations

from tests.action.conftest import ORDERS_BY_STATUS
from tests.security.conftest import assert_step_clean


def _named(name: str) -> str:
    return ORDERS_BY_STATUS.replace("name: orders-by-status", f"name: {name!r}")


def _files_outside(world) -> list:
    roots = [world.workspace, world.runner_temp, world.tmpdir]
    return [
        p
        for p in world.root.rglob("*")
        if p.is_file() and not any(p.is_relative_to(r) for r in roots) and "origin.git" not in p.parts
    ]


def test_hostile_pipeline_names_stay_inside_the_artifacts_folder(runner_world, canaries):
    runner_world.setup()
    before = set(_files_outside(runner_world))
    runner_world.write(
        {
            "pipelines/attack-up.yaml": _named("../../../../../outside/x"),
            "pipelines/attack-abs.yaml": _named(str(runner_world.root / "absolute")),
            "pipelines/attack-twin1.yaml": _named("twin"),
            "pipelines/attack-twin2.yaml": _named("twin"),
        }
    )
    result = runner_world.run(
        "pull_request",
        {"changed-only": "false", "pipelines": "pipelines/attack-*.yaml", "comment": "always"},
        env=canaries.env(),
        timeout=120,
    )
    out_root = result.artifacts_dir()
    assert out_root.resolve().is_relative_to(runner_world.workspace / "osiris-artifacts")
    assert set(_files_outside(runner_world)) == before
    assert not (runner_world.root / "outside").exists() and not (runner_world.root / "absolute").exists()
    reports = sorted(p.parent.name for p in out_root.glob("*/report.json"))
    assert len(reports) == 4, (reports, result.explain())
    assert all("/" not in name and ".." not in name for name in reports)
    assert {"twin", "twin-2"} <= set(reports)
    assert_step_clean(canaries, runner_world, result)


def test_artifacts_dir_outside_the_workspace_is_refused(runner_world, canaries):
    runner_world.setup()
    (runner_world.workspace / "link").symlink_to(runner_world.root)
    for where in ("../outside", str(runner_world.root / "abs"), "link/inside-a-symlink"):
        result = runner_world.run(
            "pull_request", {"mode": "compile", "artifacts-dir": where}, env=canaries.env()
        )
        assert result.returncode == 2, result.explain()
        assert result.outputs["status"] == "failure"
        assert any("artifacts-dir" in (a.title or "") for a in result.of_level("error"))
        assert not (runner_world.root / "outside").exists() and not (runner_world.root / "abs").exists()
        assert not (runner_world.root / "inside-a-symlink").exists()
        assert_step_clean(canaries, runner_world, result)


def test_a_step_id_cannot_name_a_path(runner_world, canaries):
    """A step's id names its artifacts folder: `../../..` must not write outside the sandbox."""
    runner_world.setup()
    hostile = ORDERS_BY_STATUS.replace("id: count-by-status", 'id: "../../../../../../pwned-step"').replace(
        "needs: [count-by-status]", 'needs: ["../../../../../../pwned-step"]'
    )
    runner_world.write({"pipelines/attack.yaml": hostile})
    result = runner_world.run(
        "pull_request",
        {"changed-only": "false", "pipelines": "pipelines/attack.yaml"},
        env=canaries.env(),
    )
    assert result.returncode == 1, result.explain()
    (error,) = [a for a in result.of_level("error") if a.title == "OML022"]
    assert "cannot name a folder" in error.message and error.line
    assert not list(runner_world.root.parent.glob("pwned*")) and not list(runner_world.root.rglob("pwned*"))
    assert_step_clean(canaries, runner_world, result)


def test_the_worker_keeps_a_hostile_step_id_inside_its_artifacts(tmp_path):
    """Defence in depth: a manifest that skipped validation still cannot make the worker write out."""
    import hashlib

    from osiris_action.components import DRIVERS_DIR
    from osiris_action.manifest import canonical_bytes
    from tests.unit.test_worker import SOURCE, WORKER, _step, run_worker

    root = tmp_path / "sandbox" / "deep"
    root.mkdir(parents=True)
    manifest = {
        "manifest_version": "1",
        "oml_version": "0.1.0",
        "compiler": "test",
        "pipeline": {"id": "p", "name": "p"},
        "steps": [_step("../../../escaped", "source", "extract", [], {"rows": 1})],
    }
    files = {
        "worker.py": WORKER.read_bytes(),
        "manifest.json": canonical_bytes(manifest),
        "connections.json": b"{}",
        "osiris_drivers/__init__.py": b"",
        "osiris_drivers/_common.py": (DRIVERS_DIR / "_common.py").read_bytes(),
        "osiris_drivers/source.py": SOURCE.encode(),
    }
    files["bundle.json"] = canonical_bytes(
        {"files": {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}}
    )
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    code, events = run_worker(root, hashlib.sha256(files["bundle.json"]).hexdigest())
    assert code == 0, events
    written = [p for p in tmp_path.rglob("cleaned_config.json")]
    assert written and all(p.is_relative_to(root / "artifacts") for p in written), written
