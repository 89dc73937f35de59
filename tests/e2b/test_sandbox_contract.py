"""The sandbox contract, run unchanged against LocalSandbox and E2BSandbox (the real SDK on FakeE2B).

run.py treats both the same way, so both must agree on what arrives, what the command sees, how output
streams, how failures and timeouts surface, what comes back and how they clean up.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from osiris_action.sandbox.base import ArtifactPolicy, SandboxTimeout
from osiris_action.sandbox.e2b import E2BSandbox
from osiris_action.sandbox.local import LocalSandbox

# What a command may see besides the env it is given: the basics of a login shell and a locale.
BASICS = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
}


@pytest.fixture(params=["local", "e2b"])
def box(request, monkeypatch):
    """Each implementation, with parent-only secrets set in this process's environment."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_parent_only_token")
    if request.param == "local":
        monkeypatch.setenv("E2B_API_KEY", "e2b_parent_only_key")
        sandbox = LocalSandbox()
    else:
        request.getfixturevalue("fake_e2b")  # sets E2B_API_KEY itself: the SDK reads it from there
        sandbox = E2BSandbox(api_key=os.environ["E2B_API_KEY"], python=sys.executable)
    yield sandbox
    sandbox.close()


def _script(
    box, source: str, env: dict[str, str] | None = None, timeout: float = 20
) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = box.run([box.python, "-c", source], env or {}, timeout, lines.append)
    return code, lines


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once the process no longer exists (a zombie counts as gone: it no longer runs)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


def test_prepare_returns_host_hashes_and_files_arrive_byte_exact(box):
    files = {
        "worker.py": b"print('hi')\n",
        "osiris_drivers/__init__.py": b"",
        "data/filesystem-local/in.bin": bytes(range(256)) + b"\xff\xfe\x80 not utf-8 \xc3\x28\r\n",
        "manifest.json": json.dumps({"name": "ü"}, ensure_ascii=False).encode(),
    }

    hashes = box.prepare(files)

    assert hashes == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    source = (
        "import hashlib, json\n"
        f"paths = {sorted(files)!r}\n"
        "print(json.dumps({p: hashlib.sha256(open(p, 'rb').read()).hexdigest() for p in paths}))"
    )
    code, lines = _script(box, source)
    assert code == 0
    assert json.loads(lines[0]) == hashes  # hashed inside the sandbox: what arrived is what was sent


def test_run_streams_lines_in_order_including_a_long_line_and_an_unterminated_last_line(box):
    box.prepare({"noop.txt": b""})
    source = (
        "import sys\n"
        "for i in range(300): print(f'line {i}')\n"
        "print('x' * 100_000)\n"
        "print('ü and 日本')\n"
        "sys.stdout.write('no newline at the end')\n"
    )

    code, lines = _script(box, source)

    assert code == 0
    assert lines == [f"line {i}" for i in range(300)] + ["x" * 100_000, "ü and 日本", "no newline at the end"]


def test_command_sees_exactly_the_env_it_is_given(box):
    box.prepare({"noop.txt": b""})
    env = {"MYSQL_PASSWORD": "s3cr3t with spaces", "OSIRIS_BUNDLE_SHA256": "abc"}

    code, lines = _script(box, "import json, os; print(json.dumps(dict(os.environ)))", env)

    seen = json.loads(lines[0])
    assert code == 0
    assert {k: seen[k] for k in env} == env
    assert "E2B_API_KEY" not in seen and "GITHUB_TOKEN" not in seen
    assert set(seen) - set(env) <= BASICS
    assert os.environ["E2B_API_KEY"] not in json.dumps(seen)


def test_nonzero_exit_code_is_returned_with_the_stderr_tail(box):
    box.prepare({"noop.txt": b""})

    code, lines = _script(
        box,
        "import sys\nprint('partial')\nfor i in range(30): print(f'err {i}', file=sys.stderr)\nsys.exit(3)",
    )

    assert (code, lines) == (3, ["partial"])
    assert box.stderr_tail.splitlines() == [f"err {i}" for i in range(10, 30)]


def test_timeout_raises_and_the_process_is_really_gone(box):
    box.prepare({"noop.txt": b""})
    started: list[str] = []

    with pytest.raises(SandboxTimeout) as info:
        box.run(
            [box.python, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(30)"],
            {},
            1,
            started.append,
        )

    assert "within 1 s" in info.value.message and "--timeout" in info.value.hint
    assert _gone(int(started[0]))


def test_stop_from_another_thread_ends_the_command_and_artifacts_still_come_back(box, tmp_path):
    box.prepare({"noop.txt": b""})
    source = (
        "import os, time\nos.makedirs('artifacts/s', exist_ok=True)\n"
        "open('artifacts/s/partial.log', 'w').write('so far')\nprint('started', flush=True)\ntime.sleep(30)"
    )

    def on_line(line: str) -> None:
        if line == "started":
            threading.Thread(target=box.stop).start()

    began = time.monotonic()
    code = box.run([box.python, "-c", source], {}, 20, on_line)

    assert code != 0 and time.monotonic() - began < 10
    assert box.fetch(tmp_path, ArtifactPolicy()).downloaded == [("artifacts/s/partial.log", 6)]


def test_fetch_honours_the_policy_and_skips_uploaded_files(box, tmp_path):
    box.prepare({"worker.py": b"", "data/filesystem-local/orders.csv": b"id\n1\n"})
    source = (
        "import os\n"
        "def put(path, size):\n"
        "    os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "    open(path, 'wb').write(b'x' * size)\n"
        "put('artifacts/read/cleaned_config.json', 10)\n"
        "put('artifacts/_system/env.txt', 5)\n"
        "put('artifacts/read/output.parquet', 20)\n"
        "put('artifacts/read/huge.log', 3000)\n"
        "put('data/filesystem-local/out/result.csv', 30)\n"
        "put('outside/ignored.json', 1)\n"
    )
    assert _script(box, source)[0] == 0

    default = box.fetch(tmp_path / "default", ArtifactPolicy(max_bytes=2048))
    everything = box.fetch(tmp_path / "all", ArtifactPolicy(download_data=True, max_bytes=2048))

    assert sorted(default.downloaded) == [
        ("artifacts/_system/env.txt", 5),
        ("artifacts/read/cleaned_config.json", 10),
    ]
    reasons = {rel: why for rel, _size, why in default.skipped}
    assert set(reasons) == {
        "artifacts/read/output.parquet",
        "artifacts/read/huge.log",
        "data/filesystem-local/out/result.csv",
    }
    assert "larger than" in reasons["artifacts/read/huge.log"]
    assert "E2B_DOWNLOAD_DATA_ARTIFACTS" in reasons["artifacts/read/output.parquet"]
    assert (tmp_path / "default/artifacts/read/cleaned_config.json").read_bytes() == b"x" * 10
    assert not (tmp_path / "default/data").exists()
    assert sorted(rel for rel, _ in everything.downloaded) == [
        "artifacts/_system/env.txt",
        "artifacts/read/cleaned_config.json",
        "artifacts/read/output.parquet",
        "data/filesystem-local/out/result.csv",
    ]
    assert [rel for rel, _, _ in everything.skipped] == ["artifacts/read/huge.log"]
    assert (tmp_path / "all/data/filesystem-local/out/result.csv").read_bytes() == b"x" * 30


def test_fetch_without_any_output_returns_nothing(box, tmp_path):
    box.prepare({"worker.py": b""})

    fetched = box.fetch(tmp_path, ArtifactPolicy(download_data=True))

    assert (fetched.downloaded, fetched.skipped) == ([], [])


def test_close_is_idempotent_and_ends_the_sandbox(box, request):
    box.prepare({"worker.py": b""})

    box.close()
    box.close()

    if isinstance(box, E2BSandbox):
        fake = request.getfixturevalue("fake_e2b")
        assert fake.requests.count(("DELETE", f"/sandboxes/{box.sandbox_id}")) == 1
        assert not fake.sandboxes[box.sandbox_id].alive
    else:
        assert not box.root.exists()
