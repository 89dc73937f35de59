"""Route 2: the worker cannot read its parent's (or PID 1's) environment or memory.

A host process holding canary secrets in its environment starts a child exactly as the local sandbox
starts the worker; the child is plain Python (no DuckDB lock to rely on) and tries every /proc file
that would give the secrets away. A control run, without the protection, proves the attack real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.security.canary import Canaries, assert_nowhere

ATTACK = textwrap.dedent(
    """
    import json, os
    for target in (os.getppid(), 1):
        for name in ("environ", "mem", "cmdline"):
            path = f"/proc/{target}/{name}"
            try:
                with open(path, "rb") as fh:
                    data = fh.read(1 << 20)
                print(json.dumps({"path": path, "read": data.decode("latin-1")}))
            except OSError as exc:
                print(json.dumps({"path": path, "error": exc.strerror}))
    """
)

HOST = textwrap.dedent(
    """
    import sys
    from osiris_action.sandbox.local import LocalSandbox, protect_process
    if sys.argv[1] == "protected":
        protect_process()
    sandbox = LocalSandbox()
    try:
        sandbox.prepare({"attack.py": sys.argv[2].encode()})
        sandbox.run([sandbox.python, "attack.py"], {}, 30, print)
    finally:
        sandbox.close()
    """
)


def _attack(canaries: Canaries, protected: bool) -> tuple[list[dict], subprocess.CompletedProcess]:
    env = {"PATH": os.environ["PATH"], **canaries.env()}
    proc = subprocess.run(
        [sys.executable, "-c", HOST, "protected" if protected else "open", ATTACK],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc


def test_the_worker_cannot_read_its_parent_nor_pid_1():
    canaries = Canaries.make("GITHUB_TOKEN", "E2B_API_KEY", "MYSQL_PASSWORD")
    results, proc = _attack(canaries, protected=True)
    by_path = {r["path"]: r for r in results}
    parent = next(p for p in by_path if p.endswith("/environ") and not p.startswith("/proc/1/"))
    assert by_path[parent].get("error") == "Permission denied", by_path[parent]
    assert by_path["/proc/1/environ"].get("error") == "Permission denied"
    assert all("error" in r for r in results if not r["path"].endswith("cmdline")), results
    assert_nowhere(canaries, texts={"stdout": proc.stdout, "stderr": proc.stderr})


def test_without_the_protection_the_same_attack_reads_the_secrets():
    """The control: the attack above is a real one (as root, capabilities let it through)."""
    canaries = Canaries.make("GITHUB_TOKEN")
    env = {"PATH": os.environ["PATH"], **canaries.env()}
    child = "import os; print(open(f'/proc/{os.getppid()}/environ').read())"
    proc = subprocess.run(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert canaries["GITHUB_TOKEN"] in proc.stdout
