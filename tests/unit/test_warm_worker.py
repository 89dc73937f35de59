"""The local worker's interpreter: it runs the uploaded script exactly as `python script` would, with the
secrets in its memory only; started early, it serves one run, and one that died costs nothing but time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from osiris_action.sandbox import local
from osiris_action.sandbox.local import LocalSandbox, start_warm

CANARY = "canary-warm-5d0c9e41b7a2"

PROBE = """
import json, os, sys
import osiris_drivers
with open("/proc/self/environ", "rb") as handle:
    environ = handle.read()
print(json.dumps({
    "secret": os.environ.get("OSIRIS_SECRET_1"),
    "in_proc_environ": os.environ["OSIRIS_SECRET_1"].encode() in environ,
    "home": os.environ.get("HOME"),
    "cwd": os.getcwd(),
    "argv": sys.argv,
    "main": __name__,
    "path0": sys.path[0],
    "cwd_on_path": "" in sys.path or "/" in sys.path,
    "drivers": osiris_drivers.__file__,
    "pid": os.getpid(),
    "host_package": any(name.startswith("osiris_action") for name in sys.modules),
}))
"""

UPLOAD = {"probe.py": PROBE.encode(), "osiris_drivers/__init__.py": b"UPLOADED = True\n"}


def _probe(box: LocalSandbox) -> dict:
    box.prepare(UPLOAD)
    lines: list[str] = []
    code = box.run(
        [sys.executable, "probe.py", "--run-id", "r1"], {"OSIRIS_SECRET_1": CANARY}, 60, lines.append
    )
    assert code == 0, box.stderr_tail
    return json.loads(lines[-1])


def _warm_pid() -> int:
    assert local._warm is not None
    return local._warm.pid


def test_a_worker_runs_the_uploaded_script_as_python_would():
    with LocalSandbox() as box:
        seen = _probe(box)
        root = str(box.root.resolve())
    assert seen["secret"] == CANARY
    assert not seen["in_proc_environ"], "the secret is readable in /proc/<worker>/environ"
    assert seen["home"] == root or Path(seen["home"]).resolve() == Path(root)
    assert Path(seen["cwd"]).resolve() == Path(root)
    assert seen["argv"][1:] == ["--run-id", "r1"] and seen["argv"][0].endswith("probe.py")
    assert seen["main"] == "__main__"
    assert Path(seen["path0"]).resolve() == Path(root)
    assert not seen["cwd_on_path"]
    assert not seen["host_package"], "the worker must not need the host's package (E2B has none)"
    # the uploaded package, not the host's installed osiris_drivers
    assert Path(seen["drivers"]).resolve() == Path(root) / "osiris_drivers" / "__init__.py"


def test_a_warm_interpreter_serves_the_next_run_only():
    start_warm()
    warm = _warm_pid()
    with LocalSandbox() as first, LocalSandbox() as second:
        assert _probe(first)["pid"] == warm
        again = _probe(second)
    assert again["pid"] != warm and again["secret"] == CANARY and not again["in_proc_environ"]


def test_a_warm_interpreter_that_died_leaves_a_cold_start():
    start_warm()
    warm = _warm_pid()
    os.killpg(warm, signal.SIGKILL)
    time.sleep(0.2)
    with LocalSandbox() as box:
        seen = _probe(box)
    assert seen["pid"] != warm and seen["secret"] == CANARY


def test_an_unused_warm_interpreter_ends_with_its_host():
    script = "from osiris_action.sandbox import local\nlocal.start_warm()\nprint(local._warm.pid)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()


def test_a_worker_ends_when_its_host_is_killed(tmp_path: Path):
    script = (
        "import sys\nfrom osiris_action.sandbox.local import LocalSandbox\n"
        "box = LocalSandbox()\nbox.prepare({'spin.py': b'import os, time\\nprint(os.getpid(), flush=True)\\n"
        "time.sleep(600)\\n'})\n"
        "box.run([sys.executable, 'spin.py'], {}, 600, lambda line: print(line, flush=True))\n"
    )
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(host.stdout.readline())
    assert Path(f"/proc/{worker}").exists()
    host.kill()
    host.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists(), "the worker outlived its killed host"
