"""E2BSandbox against the real e2b SDK talking to FakeE2B over HTTP: the E2B-specific paths.

The shared behaviour (hashes, streaming, env, exit codes, timeouts, fetch policy) is in
test_sandbox_contract.py; here are what only a cloud sandbox does: how it is created, what each E2B
failure turns into, that it is always killed, installing dependencies, and the template definition.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from e2b import (
    AuthenticationException,
    RateLimitException,
    SandboxException,
    ServiceBusyException,
    TimeoutException,
)

from osiris_action.sandbox import template
from osiris_action.sandbox.base import ArtifactPolicy, SandboxError, SandboxTimeout
from osiris_action.sandbox.e2b import (
    INSTALL_TIMEOUT,
    LIFETIME_MARGIN,
    E2BSandbox,
    LineSplitter,
    translate,
)

from .envd_server import DEBUG_SANDBOX_ID, FakeE2B, SimulatedPython

ROOT = Path(__file__).resolve().parents[2]
EVENTS = "import json\nfor i in range(3): print(json.dumps({'event': 'step', 'seq': i}))\n"


def _deleted(fake: FakeE2B, box: E2BSandbox) -> bool:
    return ("DELETE", f"/sandboxes/{box.sandbox_id}") in fake.requests and not fake.sandboxes[
        box.sandbox_id
    ].alive


def _eventually(predicate, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- lifecycle and the happy path ---------------------------------------------------------------------


def test_happy_path_creates_uploads_once_streams_events_and_kills(fake_e2b, tmp_path):
    with E2BSandbox(api_key=fake_e2b.api_key, template="osiris-deps", timeout=120) as box:
        box.prepare({"worker.py": EVENTS.encode(), "manifest.json": b"{}"})
        lines: list[str] = []
        code = box.run(["python3", "worker.py"], {"PG_PASSWORD": "pw"}, 120, lines.append)
        server_side = fake_e2b.sandboxes[box.sandbox_id]

        assert code == 0
        assert [json.loads(line)["seq"] for line in lines] == [0, 1, 2]
        assert (server_side.template, server_side.timeout) == ("osiris-deps", 120 + LIFETIME_MARGIN)
        assert server_side.envs == {}  # secrets go to the one command, never to the whole sandbox
        assert fake_e2b.requests.count(("POST", "/files")) == 1
        assert (server_side.home / "osiris" / "manifest.json").read_bytes() == b"{}"
    assert _deleted(fake_e2b, box)


def test_the_real_worker_runs_a_bundle_and_its_artifacts_come_back(fake_e2b, tmp_path):
    from osiris_action.run import RunOptions, prepare

    prepared = prepare(ROOT / "examples/quickstart/orders-summary.yaml", RunOptions())
    seal = prepared.bundle.seal()
    events: list[dict] = []
    # The fake runs commands on this machine, whose python3 may lack duckdb: use this interpreter.
    with E2BSandbox(api_key=fake_e2b.api_key, python=sys.executable) as box:
        hashes = box.prepare(prepared.bundle.files)
        code = box.run(
            [box.python, "worker.py", "--run-id", "r1"],
            {**prepared.env, "OSIRIS_BUNDLE_SHA256": seal},
            60,
            lambda line: events.append(json.loads(line)),
        )
        fetched = box.fetch(tmp_path, ArtifactPolicy(download_data=True))

    verified = {e["path"]: e["sha256"] for e in events if e["event"] == "driver_file_verified"}
    assert code == 0, box.stderr_tail
    assert events[-1]["event"] == "run_complete" and events[-1]["status"] == "success"
    assert verified and all(hashes[path] == sha for path, sha in verified.items())
    assert ("data/filesystem-local/out/revenue_by_country.csv", 380) in fetched.downloaded
    assert "data/filesystem-local/orders.csv" not in {rel for rel, _ in fetched.downloaded}  # uploaded


def test_nonzero_exit_keeps_the_stderr_tail_and_still_kills(fake_e2b):
    with E2BSandbox(api_key=fake_e2b.api_key) as box:
        box.prepare({"worker.py": b"import sys\nprint('Traceback: boom', file=sys.stderr)\nsys.exit(2)\n"})
        code = box.run(["python3", "worker.py"], {}, 30, lambda line: None)

    assert code == 2
    assert box.stderr_tail == "Traceback: boom\n"
    assert _deleted(fake_e2b, box)


def test_command_timeout_is_a_sandbox_timeout_with_the_stderr_tail(fake_e2b):
    with E2BSandbox(api_key=fake_e2b.api_key) as box:
        slow = b"import sys, time\nprint('slow step', file=sys.stderr, flush=True)\ntime.sleep(30)\n"
        box.prepare({"worker.py": slow})
        with pytest.raises(SandboxTimeout) as info:
            box.run(["python3", "worker.py"], {}, 1, lambda line: None)
        assert _eventually(lambda: fake_e2b.sandboxes[box.sandbox_id].running() == [])

    assert info.value.message == "the worker did not finish within 1 s and was stopped"
    assert "--timeout" in info.value.hint
    assert info.value.stderr_tail == "slow step\n"
    assert _deleted(fake_e2b, box)


def test_sandbox_expiry_mid_run_says_it_expired(fake_e2b):
    box = E2BSandbox(api_key=fake_e2b.api_key, timeout=1, margin=0)
    with box, pytest.raises(SandboxError) as info:  # a loaded machine may see it during the upload already
        box.prepare({"worker.py": b"import time\ntime.sleep(5)\n"})
        box.run(["python3", "worker.py"], {}, 10, lambda line: None)

    assert type(info.value) is SandboxError  # not a run timeout: the sandbox itself is gone
    assert "not running" in info.value.message and "expired" in info.value.message
    assert "--timeout" in info.value.hint
    assert fake_e2b.sandboxes[box.sandbox_id].timeout == 1


def test_stop_from_another_thread_kills_the_command_then_close_kills_the_sandbox(fake_e2b):
    box = E2BSandbox(api_key=fake_e2b.api_key)
    box.prepare({"worker.py": b"import time\nprint('started', flush=True)\ntime.sleep(30)\n"})
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        threading.Thread(target=box.stop).start()

    began = time.monotonic()
    code = box.run(["python3", "worker.py"], {}, 30, on_line)
    assert (code, seen) == (-1, ["started"]) and time.monotonic() - began < 10
    assert box.run(["python3", "worker.py"], {}, 30, on_line) == -1  # once stopped, nothing else starts
    box.close()

    assert ("POST", "/process.Process/SendSignal") in fake_e2b.requests
    assert _deleted(fake_e2b, box)


def test_a_file_deleted_between_listing_and_download_is_skipped_with_the_reason(fake_e2b, tmp_path):
    with E2BSandbox(api_key=fake_e2b.api_key) as box:
        writes = b"import os\nos.makedirs('artifacts/s')\n"
        writes += b"for n in 'ab': open(f'artifacts/s/{n}.json', 'w').write('1')\n"
        box.prepare({"worker.py": writes})
        assert box.run(["python3", "worker.py"], {}, 30, lambda line: None) == 0
        home = fake_e2b.sandboxes[box.sandbox_id].home
        listing = box._listing

        def listing_then_cleanup():  # the race, made deterministic: the worker's cleanup lands in between
            found = listing()
            (home / "osiris/artifacts/s/a.json").unlink()
            return found

        box._listing = listing_then_cleanup
        fetched = box.fetch(tmp_path, ArtifactPolicy())

    assert fetched.downloaded == [("artifacts/s/b.json", 1)]
    assert fetched.skipped == [
        ("artifacts/s/a.json", 1, "deleted in the sandbox before it could be downloaded")
    ]


def test_debug_mode_runs_the_same_cycle_without_the_rest_api(fake_e2b_debug, tmp_path):
    box = E2BSandbox(api_key=None)
    box.prepare(
        {
            "worker.py": (
                EVENTS + "import os\nos.makedirs('artifacts')\nopen('artifacts/r.json', 'w').write('1')\n"
            ).encode()
        }
    )
    lines: list[str] = []

    assert box.run(["python3", "worker.py"], {}, 30, lines.append) == 0
    assert box.fetch(tmp_path, ArtifactPolicy()).downloaded == [("artifacts/r.json", 1)]
    box.close()
    box.close()

    assert box.sandbox_id == DEBUG_SANDBOX_ID and len(lines) == 3
    assert [r for r in fake_e2b_debug.requests if r[1].startswith(("/sandboxes", "/v2/"))] == []


# -- errors: one SandboxError with a hint, never the key ---------------------------------------------


def test_a_rejected_key_is_named_without_showing_it(fake_e2b):
    key = "e2b_wrong_but_secret_1234"
    box = E2BSandbox(api_key=key)

    with pytest.raises(SandboxError) as info:
        box.prepare({"worker.py": b""})
    box.close()

    assert "rejected the API key" in info.value.message
    assert "E2B_API_KEY" in info.value.hint and "e2b-api-key" in info.value.hint
    assert key not in info.value.message + info.value.hint + info.value.stderr_tail
    assert fake_e2b.sandboxes == {}


def test_a_missing_key_says_where_to_set_it(fake_e2b, monkeypatch):
    monkeypatch.delenv("E2B_API_KEY")

    with pytest.raises(SandboxError) as info:
        E2BSandbox(api_key=None).prepare({"worker.py": b""})

    assert info.value.message == "no E2B API key was given"
    assert "E2B_API_KEY" in info.value.hint and "e2b-api-key" in info.value.hint


def test_an_unreachable_api_is_named_with_its_address(fake_e2b, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("E2B_API_URL", f"http://127.0.0.1:{port}")

    with pytest.raises(SandboxError) as info:
        E2BSandbox(api_key=fake_e2b.api_key).prepare({"worker.py": b""})

    assert info.value.message.startswith(f"cannot reach the E2B API at http://127.0.0.1:{port}")
    assert fake_e2b.api_key not in info.value.message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RateLimitException("429: slow down"), "rate limit"),
        (ServiceBusyException("503: no capacity"), "no capacity"),
        (SandboxException("404: template 'nope' not found", status_code=404), "HTTP 404"),
        (TimeoutException("request timed out"), "did not answer in time"),
        (Exception("Command ended without an end event"), "ended early"),
    ],
)
def test_the_other_sdk_failures_each_become_one_sandbox_error(exc, expected):
    error = translate(exc, "creating the sandbox", api_key="e2b_key_1234")

    assert isinstance(error, SandboxError) and expected in error.message and error.hint


def test_errors_that_are_not_the_sdks_are_left_alone_and_the_key_is_scrubbed():
    assert translate(ValueError("a bug in a callback"), "running the worker") is None
    error = translate(
        SandboxException("bad header X-API-KEY: e2b_key_1234"), "creating", api_key="e2b_key_1234"
    )
    assert "e2b_key_1234" not in error.message and "***" in error.message
    assert isinstance(translate(AuthenticationException("401"), "creating", api_key="k_123456"), SandboxError)


def test_line_splitter_rejoins_chunks_and_flushes_the_last_line():
    lines: list[str] = []
    splitter = LineSplitter(lines.append)
    for chunk in ["a", "b\nc", "\r\n", "", "\n\nlong", "er"]:
        splitter.feed(chunk)
    splitter.flush()
    splitter.flush()

    assert lines == ["ab", "c", "", "", "longer"]


# -- dependencies ----------------------------------------------------------------------------------


def test_install_keeps_the_pip_log_and_extends_the_lifetime(fake_with, tmp_path):
    fake = fake_with(python=SimulatedPython(pip_output="Successfully installed duckdb"))
    with E2BSandbox(api_key=fake.api_key, timeout=60) as box:
        box.prepare({"worker.py": b"", "requirements.txt": b"duckdb==2.0.1\n"})
        box.install(tmp_path)
        lifetime = fake.sandboxes[box.sandbox_id].timeout

    log = (tmp_path / "artifacts/_system/pip_install.log").read_text()
    assert log == "duckdb==2.0.1\nSuccessfully installed duckdb\n"
    assert lifetime == 60 + LIFETIME_MARGIN + INSTALL_TIMEOUT
    assert ("POST", f"/sandboxes/{box.sandbox_id}/timeout") in fake.requests


def test_a_failed_install_raises_with_the_log_tail(fake_with, tmp_path):
    fake = fake_with(
        python=SimulatedPython(
            pip_output="ERROR: No matching distribution found for duckdb==0.0.0", pip_exit=1
        )
    )
    with E2BSandbox(api_key=fake.api_key) as box:
        box.prepare({"worker.py": b"", "requirements.txt": b"duckdb==0.0.0\n"})
        with pytest.raises(SandboxError) as info:
            box.install(tmp_path)

    assert "installing requirements.txt" in info.value.message and "exit code 1" in info.value.message
    assert "No matching distribution found for duckdb==0.0.0" in info.value.stderr_tail
    assert "pip_install.log" in info.value.hint
    assert (tmp_path / "artifacts/_system/pip_install.log").is_file()
    assert _deleted(fake, box)


def test_missing_imports_checks_what_requirements_txt_needs(fake_e2b):
    pins = b"# pinned\nduckdb==2.0.1\npsycopg[binary]==3.3.9\n"
    requirements = pins + b"not-installed-anywhere==1.0 \\\n    --hash=sha256:00\n"
    with E2BSandbox(api_key=fake_e2b.api_key, python=sys.executable) as box:
        box.prepare({"worker.py": b"", "requirements.txt": requirements})

        assert box.missing_imports() == ["not_installed_anywhere"]
        assert box.missing_imports(["json", "no_such_module"]) == ["no_such_module"]


# -- the template ----------------------------------------------------------------------------------


def test_template_dockerfile_renders_offline_with_the_locked_pins():
    locked = template.locked_versions()
    dockerfile = template.render_dockerfile()

    assert dockerfile.startswith("FROM python:3.11\n")
    assert "WORKDIR /home/user" in dockerfile
    for name in template.PACKAGES:
        assert f" {name}=={locked[name]}" in dockerfile


def test_template_pins_come_from_the_lock_file_else_from_this_environment(tmp_path):
    import importlib.metadata

    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\n--find-links /x\nDuckDB==9.9.9 \\\n    --hash=sha256:ab\n"
        "psycopg[binary]==3.0.1 ; python_version >= '3.11'\n"
    )

    pins = template.pins(lock)

    assert "duckdb==9.9.9" in pins and "psycopg==3.0.1" in pins
    assert f"pyarrow=={importlib.metadata.version('pyarrow')}" in pins
    assert template.pins(tmp_path / "absent.lock")[0] == f"duckdb=={importlib.metadata.version('duckdb')}"


def test_template_build_failures_are_sandbox_errors(fake_e2b, monkeypatch):
    monkeypatch.setenv("E2B_API_URL", f"http://127.0.0.1:{_closed_port()}")

    with pytest.raises(SandboxError) as info:
        template.build("osiris-deps:test", api_key=fake_e2b.api_key)

    assert "cannot reach the E2B API" in info.value.message


# -- the real cloud, only on request ---------------------------------------------------------------


@pytest.mark.live
@pytest.mark.skipif(
    not (os.environ.get("OSIRIS_LIVE_TESTS") and os.environ.get("E2B_API_KEY")),
    reason="talks to the real E2B cloud: set OSIRIS_LIVE_TESTS=1 and E2B_API_KEY",
)
def test_live_e2b_round_trip(tmp_path):
    source = EVENTS + "import os\nos.makedirs('artifacts/s')\nopen('artifacts/s/r.json', 'w').write('{}')\n"
    with E2BSandbox(api_key=os.environ["E2B_API_KEY"], timeout=120) as box:
        hashes = box.prepare({"worker.py": source.encode(), "data/in.bin": b"\xff\x00"})
        lines: list[str] = []
        code = box.run(["python3", "worker.py"], {"SECRET": "x"}, 120, lines.append)
        fetched = box.fetch(tmp_path, ArtifactPolicy())

    assert code == 0 and len(lines) == 3 and len(hashes) == 2
    assert fetched.downloaded == [("artifacts/s/r.json", 2)]
