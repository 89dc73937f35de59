"""User-causable input to `osiris-action run` that once gave a traceback or a misleading message."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"


def cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "osiris_action", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(QUICKSTART, tmp_path / "p")
    return tmp_path / "p"


def _manifest(project: Path) -> dict:
    assert cli(project, "compile", "orders-summary.yaml", "--out", "build").returncode == 0
    return json.loads((project / "build" / "orders-summary" / "manifest.json").read_text())


@pytest.mark.parametrize("edit", ["escape", "component", "needs", "duplicate", "config"])
def test_a_hand_edited_manifest_is_refused_before_anything_runs(project, tmp_path, edit):
    manifest = _manifest(project)
    steps = manifest["steps"]
    if edit == "escape":
        steps[0]["files"] = ["../../../../../" + str(tmp_path / "outside.txt")]
    elif edit == "component":
        steps[0]["component"] = "nope.thing"
    elif edit == "needs":
        steps[1]["needs"] = ["ghost"]
    elif edit == "duplicate":
        steps[2]["id"] = steps[0]["id"]
    else:
        steps[1]["config"]["extra"] = 1
    (project / "edited.json").write_text(json.dumps(manifest))
    proc = cli(project, "run", "edited.json", "--out", "out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "the manifest was changed after `compile`" in proc.stderr
    assert not (tmp_path / "outside.txt").exists() and not (project / "out").exists()


def test_unusable_out_and_timeout_are_usage_errors(project):
    (project / "afile").write_text("")
    for args in (["--out", "afile"], ["--timeout", "nan"], ["--timeout", "0"]):
        proc = cli(project, "run", "orders-summary.yaml", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_a_killed_worker_is_named_as_killed(project):
    (project / "slow.yaml").write_text(
        (project / "orders-summary.yaml")
        .read_text()
        .replace("FROM input_df", "FROM input_df, range(100000000000)")
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "osiris_action", "run", "slow.yaml", "--out", "out"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    worker = None
    while worker is None and time.monotonic() < deadline:
        events = project / "out" / "events.jsonl"
        if events.is_file() and "revenue-by-country" in events.read_text():
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
            worker = int(children.split()[0]) if children.split() else None
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    # steps stream together: the transform is named whether or not the extract had finished by then
    assert "the worker was killed by SIGKILL" in out and "'revenue-by-country'" in out
    assert "Traceback" not in out + err


def test_a_port_that_is_not_a_number_is_one_clear_error():
    from osiris_drivers._common import StepError
    from osiris_drivers._mysql import connection_params

    with pytest.raises(StepError, match="port must be a whole number, got 'abc'"):
        connection_params({}, {"host": "h", "user": "u", "database": "d", "port": "abc"})


def test_a_csv_header_in_the_wrong_encoding_is_one_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "h.csv").write_bytes(b"\xe9a,b\n1,2\n")
    (tmp_path / "p.yaml").write_text(
        'oml_version: "0.1.0"\nname: h\nsteps:\n'
        "  - {id: r, component: filesystem.csv_extractor, mode: read,"
        " config: {path: data/h.csv}}\n"
    )
    proc = cli(tmp_path, "run", "p.yaml", "--out", "out")
    assert (
        proc.returncode == 1 and "not valid utf-8" in proc.stdout and "bug in the driver" not in proc.stdout
    )
