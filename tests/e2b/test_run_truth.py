"""A whole run through E2B (the real SDK against the local envd server) tells what happened.

The sandbox image is simulated at the wire (envd_server.SimulatedPython): an interpreter older than
the worker needs, a distribution Python that refuses `pip install` (PEP 668), a worker that cannot
import; and secrets that are common words must not turn a good run into a failed one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from e2b import CommandExitException, Sandbox

from osiris_action.run import Run, RunOptions, prepare, run_pipeline
from osiris_action.sandbox.base import ArtifactPolicy, SandboxError
from osiris_action.sandbox.e2b import VENV, E2BSandbox

from .envd_server import OLD_PYTHON_CRASH, PEP_668_MESSAGE, SimulatedPython

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"


@pytest.fixture
def quickstart(tmp_path, monkeypatch) -> Path:
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project)
    monkeypatch.chdir(project)
    return project / "orders-summary.yaml"


def _e2b(tmp_path: Path, **options) -> RunOptions:
    return RunOptions(target="e2b", out=tmp_path / "out", **options)


def test_an_old_sandbox_python_is_named_before_anything_is_uploaded(fake_with, quickstart, tmp_path):
    fake = fake_with(python=SimulatedPython(version="3.10.12"))

    report, _ = run_pipeline(quickstart, _e2b(tmp_path), lambda _: None, dict(os.environ))

    assert report.status == "failure"
    assert report.error["message"] == "the sandbox's Python is 3.10.12; the worker needs Python 3.11 or newer"
    assert "--e2b-template" in report.error["hint"]
    assert "parity" not in json.dumps(report.error)
    assert not [r for r in fake.requests if r[1] == "/files"]  # nothing was uploaded
    assert all(not s.alive for s in fake.sandboxes.values())


def test_a_worker_that_cannot_import_is_a_crash_with_its_stderr(fake_with, quickstart, tmp_path):
    fake_with(python=SimulatedPython(crash=OLD_PYTHON_CRASH))

    report, out = run_pipeline(quickstart, _e2b(tmp_path), lambda _: None, dict(os.environ))

    assert report.status == "failure" and not report.completed and report.exit_code == 1
    message = report.error["message"]
    assert message.startswith("the worker crashed before its first step (exit code 1)")
    assert "ImportError: cannot import name 'UTC'" in message
    assert "Traceback" in report.error["stderr"]
    assert "differs from the code uploaded" not in (out / "report.json").read_text()
    assert "Hash parity: not checked (the worker reported no file)" in (out / "summary.md").read_text()


def test_pep_668_python_installs_into_a_virtual_environment(fake_with, quickstart, tmp_path):
    fake = fake_with(python=SimulatedPython(externally_managed=True))
    # the simulated image refuses the system install exactly as a Debian python3 does
    with Sandbox.create(api_key=fake.api_key) as sbx:
        sbx.files.write("/home/user/requirements.txt", "duckdb\n")
        with pytest.raises(CommandExitException) as refused:
            sbx.commands.run("python3 -m pip install -r requirements.txt", cwd="/home/user", timeout=30)
    assert refused.value.exit_code == 1 and "externally-managed-environment" in refused.value.stderr

    report, out = run_pipeline(
        quickstart, _e2b(tmp_path, install_deps=True), lambda _: None, dict(os.environ)
    )

    assert report.status == "success", report.error
    log = (out / "artifacts/_system/pip_install.log").read_text()
    assert "Successfully installed" in log and PEP_668_MESSAGE.splitlines()[0] not in log
    assert report.hash_parity


def test_a_python_without_venv_says_what_to_install(fake_with, tmp_path):
    fake = fake_with(python=SimulatedPython(externally_managed=True, venv_works=False))
    with E2BSandbox(api_key=fake.api_key) as box:
        box.prepare({"requirements.txt": b"duckdb\n"})
        with pytest.raises(SandboxError) as info:
            box.install(tmp_path)
    assert "cannot create virtual environments" in info.value.message
    assert "python3-venv" in info.value.hint
    assert box.python == "python3"  # the worker would not be pointed at a missing environment
    assert VENV.startswith("/home/user/")


def test_common_word_secrets_keep_parity_and_never_show(fake_e2b, quickstart, tmp_path):
    options = _e2b(tmp_path, python=sys.executable, download_data=True)
    prepared = prepare(quickstart, options, dict(os.environ))
    # a driver file name, a component word, a column, the output file's name and a printed count
    for value in ["_duckdb", "duckdb", "revenue", "revenue_by_country", "1000"]:
        prepared.redactor.add(value)

    report = Run(prepared, options, lambda _: None, dict(os.environ)).execute()

    assert report.status == "success", report.error
    assert report.hash_parity and len(report.parity) > 5
    assert report.steps[0].rows_out == 1000
    for name in ("events.jsonl", "report.json", "summary.md"):
        text = (tmp_path / "out" / name).read_text()
        assert "duckdb" not in text and "revenue" not in text and "1000" not in text, name
    # the output data itself is untouched: its header still names the revenue column
    [csv] = (tmp_path / "out" / "data").rglob("*.csv")
    assert b"revenue" in csv.read_bytes()


def test_a_data_output_left_in_the_sandbox_is_listed_with_its_size_and_setting(
    fake_e2b, quickstart, tmp_path
):
    environ = dict(os.environ, E2B_DOWNLOAD_DATA_ARTIFACTS="0")
    report, out = run_pipeline(quickstart, _e2b(tmp_path, python=sys.executable), lambda _: None, environ)

    assert report.status == "success"
    [left] = [a for a in report.skipped_artifacts if a["path"].endswith("revenue_by_country.csv")]
    assert left["bytes"] > 0 and left["setting"] == "E2B_DOWNLOAD_DATA_ARTIFACTS=1"
    summary = (out / "summary.md").read_text().replace("\\_", "_")  # undo Markdown's escapes
    assert "revenue_by_country.csv" in summary and "E2B_DOWNLOAD_DATA_ARTIFACTS=1" in summary
    assert f"{left['bytes']:,} bytes" in summary


def test_each_file_left_behind_names_the_setting_that_brings_it_back():
    mb = 1024 * 1024
    policy = ArtifactPolicy(download_data=False, max_bytes=5 * mb)
    assert policy.skip("data/x.csv", 10) == ("data file", "E2B_DOWNLOAD_DATA_ARTIFACTS=1")
    assert policy.skip("data/x.csv", int(5.5 * mb)) == (
        "larger than 5 MB",
        "E2B_DOWNLOAD_DATA_ARTIFACTS=1 and E2B_ARTIFACT_MAX_MB=6",
    )
    assert policy.skip("artifacts/a/huge.log", 6 * mb) == ("larger than 5 MB", "E2B_ARTIFACT_MAX_MB=6")
    assert policy.skip("artifacts/a/cleaned_config.json", 10) is None
    assert ArtifactPolicy.everything().skip("data/x.csv", 10**10) is None
