"""The real e2b SDK, unmodified and over real HTTP, against FakeE2B.

These tests pin both sides: that the fake answers the way E2B does for the calls the adapter makes, and
that the SDK version we pin still behaves as documented (exception types, chunked output, timeouts).
"""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest
from e2b import (
    AuthenticationException,
    CommandExitException,
    FileNotFoundException,
    InvalidArgumentException,
    Sandbox,
    SandboxNotFoundException,
    SandboxNotRunningException,
    TimeoutException,
)

from .envd_server import DEBUG_SANDBOX_ID, E2B_ENV_VARS, FakeE2B


def _wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_generated_stubs_the_fake_mounts_still_exist():
    # The fake relies on these generated internals; an SDK upgrade that moves them must fail here first.
    from e2b.envd.filesystem import filesystem_connect, filesystem_pb
    from e2b.envd.process import process_connect, process_pb
    from e2b.envd.process.process_connect import ProcessWSGIApplication

    assert ProcessWSGIApplication is process_connect.ProcessWSGIApplication
    assert filesystem_connect.FilesystemWSGIApplication
    assert process_pb.StartResponse and filesystem_pb.EntryInfo


def test_create_sends_template_timeout_and_envs(fake_e2b):
    sbx = Sandbox.create(template="osiris-test", timeout=120, envs={"STAGE": "ci"}, metadata={"run": "1"})

    server_side = fake_e2b.sandboxes[sbx.sandbox_id]
    assert (server_side.template, server_side.timeout) == ("osiris-test", 120)
    assert server_side.envs == {"STAGE": "ci"}
    assert server_side.metadata == {"run": "1"}
    assert ("POST", "/v2/sandboxes") in fake_e2b.requests
    assert sbx.is_running()
    assert sbx.commands.run("echo $STAGE").stdout == "ci\n"


def test_write_files_is_one_multipart_call_and_bytes_round_trip(fake_e2b):
    sbx = Sandbox.create()
    binary = bytes(range(256)) + b"\r\n--not-a-boundary\r\n" + b"\xff" * 70_000
    sbx.files.write_files(
        [
            {"path": "/home/user/job/pipeline.yaml", "data": "steps: []\n"},
            {"path": "job/data.bin", "data": binary},
            {"path": "job/résumé.txt", "data": "ü"},
        ]
    )

    assert fake_e2b.requests.count(("POST", "/files")) == 1
    assert bytes(sbx.files.read("/home/user/job/data.bin", format="bytes")) == binary
    assert sbx.files.read("~/job/pipeline.yaml") == "steps: []\n"
    assert sbx.files.read("job/résumé.txt") == "ü"
    assert (fake_e2b.sandboxes[sbx.sandbox_id].home / "job" / "data.bin").read_bytes() == binary


def test_stdout_streams_in_chunks_that_rejoin_into_a_long_line(fake_e2b):
    sbx = Sandbox.create()
    chunks: list[str] = []

    result = sbx.commands.run(
        "head -c 100000 /dev/zero | tr '\\0' x; echo", on_stdout=chunks.append, timeout=10
    )

    assert len(chunks) > 1  # raw chunks, not lines: consumers must re-split on "\n"
    assert max(len(c) for c in chunks) <= 32 * 1024
    assert "".join(chunks) == result.stdout == "x" * 100_000 + "\n"


def test_process_environment_is_built_like_envd(fake_e2b):
    sbx = Sandbox.create(envs={"SANDBOX_LEVEL": "s", "OVERRIDDEN": "sandbox"})
    sbx.files.make_dir("work")

    out = sbx.commands.run(
        'echo "$SANDBOX_LEVEL $OVERRIDDEN $USER $LOGNAME"; test "$HOME" = "$(cd ~ && pwd)"; basename "$PWD"',
        envs={"OVERRIDDEN": "request"},
        cwd="/home/user/work",
    ).stdout

    assert out.splitlines() == ["s request user user", "work"]


def test_nonzero_exit_raises_command_exit_exception(fake_e2b):
    sbx = Sandbox.create()

    with pytest.raises(CommandExitException) as info:
        sbx.commands.run("echo partial; echo 'worker failed' >&2; exit 3")

    assert info.value.exit_code == 3
    assert info.value.stdout == "partial\n"
    assert info.value.stderr == "worker failed\n"
    assert info.value.error == "exit status 3"


def test_command_timeout_raises_and_really_kills_the_process(fake_e2b):
    sbx = Sandbox.create()

    with pytest.raises(TimeoutException) as info:
        sbx.commands.run("echo $$ > pid; exec sleep 30", timeout=1)

    assert not isinstance(info.value, SandboxNotRunningException)
    pid = int(sbx.files.read("pid"))
    assert _wait_until(lambda: _process_gone(pid))
    assert sbx.commands.list() == []


def test_background_command_listed_and_killed_by_signal(fake_e2b):
    sbx = Sandbox.create()
    handle = sbx.commands.run("sleep 30", background=True, timeout=0)

    assert [p.pid for p in sbx.commands.list()] == [handle.pid]
    assert handle.kill() is True
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert (info.value.exit_code, info.value.error) == (-1, "signal: killed")
    assert sbx.commands.kill(handle.pid) is False  # already gone: NOT_FOUND maps to False


def test_sandbox_expiry_kills_running_command_and_later_calls(fake_e2b):
    sbx = Sandbox.create(timeout=1)

    with pytest.raises(SandboxNotRunningException):
        sbx.commands.run("sleep 5", timeout=10)

    assert not fake_e2b.sandboxes[sbx.sandbox_id].alive
    assert not sbx.is_running()
    with pytest.raises(SandboxNotRunningException):
        sbx.files.read("anything")


def test_missing_file_and_escaping_paths(fake_e2b):
    sbx = Sandbox.create()

    with pytest.raises(FileNotFoundException):
        sbx.files.read("/home/user/out/missing.json")
    assert sbx.files.exists("out/missing.json") is False
    with pytest.raises(InvalidArgumentException):
        sbx.files.read("../../../../etc/hostname")
    with pytest.raises(InvalidArgumentException):
        sbx.commands.run("true", cwd="/home/user/nope")


def test_filesystem_rpcs(fake_e2b):
    sbx = Sandbox.create()
    sbx.files.write("a/b/c.txt", "c")

    assert sbx.files.make_dir("a") is False  # ALREADY_EXISTS maps to False
    assert [e.path for e in sbx.files.list("a", depth=2)] == ["/home/user/a/b", "/home/user/a/b/c.txt"]
    assert sbx.files.rename("a/b/c.txt", "moved/c.txt").path == "/home/user/moved/c.txt"
    assert sbx.files.get_info("moved/c.txt").size == 1
    sbx.files.remove("a")
    assert not sbx.files.exists("a")


def test_bad_api_key_raises_authentication_exception(fake_e2b, monkeypatch):
    monkeypatch.setenv("E2B_API_KEY", "e2b_wrong")

    with pytest.raises(AuthenticationException):
        Sandbox.create()
    assert fake_e2b.sandboxes == {}


def test_unreachable_api_raises_httpx_connect_error(fake_e2b, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("E2B_API_URL", f"http://127.0.0.1:{closed_port}")

    # Not a SandboxException: callers must catch transport errors separately.
    with pytest.raises(httpx.ConnectError):
        Sandbox.create()


def test_kill_is_a_recorded_delete_and_later_calls_fail(fake_e2b):
    with Sandbox.create() as sbx:
        sandbox_id = sbx.sandbox_id
        assert Sandbox.connect(sandbox_id).commands.run("echo again").stdout == "again\n"

    assert ("DELETE", f"/sandboxes/{sandbox_id}") in fake_e2b.requests
    assert not fake_e2b.sandboxes[sandbox_id].alive
    with pytest.raises(SandboxNotRunningException):
        sbx.commands.run("echo too late")
    assert Sandbox.kill(sandbox_id) is False  # 404 from the API is False, not an exception
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect(sandbox_id)


def test_envd_refuses_unknown_sandbox_and_wrong_token(fake_e2b):
    sandbox = fake_e2b.create_sandbox()
    headers = {"E2b-Sandbox-Id": sandbox.id}

    gone = httpx.get(f"{fake_e2b.url}/health", headers={"E2b-Sandbox-Id": "nope"})
    assert gone.status_code == 502
    assert gone.json() == {"sandboxId": "nope", "message": "The sandbox was not found", "code": 502}
    assert httpx.get(f"{fake_e2b.url}/health", headers={**headers, "X-Access-Token": "x"}).status_code == 401
    ok = httpx.get(f"{fake_e2b.url}/health", headers={**headers, "X-Access-Token": sandbox.token})
    assert ok.status_code == 204


def test_rewrite_cmd_and_keepalives(monkeypatch):
    def no_pip(cmd: str) -> str:
        return cmd.replace("pip install", "test -f")

    with FakeE2B(rewrite_cmd=no_pip, keepalive_interval=0.05) as fake:
        for name in E2B_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        sbx = Sandbox.create()
        sbx.files.write("/home/user/requirements.txt", "duckdb\n")

        result = sbx.commands.run("pip install /home/user/requirements.txt && sleep 0.3 && echo done")

        assert result.stdout == "done\n"


def test_debug_mode_skips_the_rest_api(fake_e2b_debug):
    sbx = Sandbox.create(envs={"DROPPED": "1"}, timeout=5)

    assert sbx.sandbox_id == DEBUG_SANDBOX_ID
    assert sbx.commands.run('echo "${DROPPED:-unset}"').stdout == "unset\n"
    sbx.files.write("hello.txt", "hi")
    assert sbx.files.read("hello.txt") == "hi"
    assert sbx.kill() is True
    rest_calls = [r for r in fake_e2b_debug.requests if r[1].startswith(("/sandboxes", "/v2/"))]
    assert rest_calls == []
    assert fake_e2b_debug.sandboxes[DEBUG_SANDBOX_ID].alive  # kill() never reached the server
