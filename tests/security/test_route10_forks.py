"""Route 10: a fork's pipelines never run, plan or clean up under an event that carries secrets.

`pull_request_target`, `issue_comment` and `workflow_run` run the base repository's workflow with its
secrets. A fork's pull request adds a connection to a "database" the attacker controls (a listener
here) with `password: ${MYSQL_PASSWORD}`; the action must refuse before any connection is made, also
when the payload does not say where the pull request comes from (it asks the API, and treats an
unanswered question as a fork).
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.action.conftest import REPOSITORY
from tests.security.conftest import assert_step_clean

PIPELINE = """\
oml_version: "0.1.0"
name: exfiltrate
steps:
  - id: read
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.attacker"
      query: SELECT 1 AS n
  - id: write
    component: postgres.writer
    mode: write
    needs: [read]
    config:
      connection: "@postgres.attacker"
      table: loot
"""


class Listener:
    """A TCP port that records every connection made to it (the attacker's server)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def attacker():
    listener = Listener()
    yield listener
    listener.close()


def _fork_files(port: int) -> dict[str, str]:
    connections = f"""\
connections:
  mysql:
    attacker: {{host: 127.0.0.1, port: {port}, user: root, password: "${{MYSQL_PASSWORD}}", database: x}}
  postgres:
    attacker: {{host: 127.0.0.1, port: {port}, user: root, password: "${{MYSQL_PASSWORD}}", database: x}}
"""
    return {"pipelines/osiris_connections.yaml": connections, "pipelines/attack.yaml": PIPELINE}


def _fork_pull(world) -> dict:
    pull = world.payload("pull_request_fork")["pull_request"]
    pull["number"] = 43
    return pull


@pytest.mark.parametrize(
    "event, api_knows",
    [
        ("pull_request_target_fork", False),
        ("issue_comment_fork", True),
        ("issue_comment_fork", False),  # the API does not answer: unknown is a fork
        ("workflow_run_fork", False),
    ],
)
@pytest.mark.parametrize("mode", ["run", "plan"])
def test_a_forks_pipeline_never_runs_with_secrets(runner_world, canaries, attacker, event, api_knows, mode):
    runner_world.setup()
    runner_world.write(_fork_files(attacker.port))
    if api_knows:
        runner_world.api.state.pulls[(REPOSITORY, 43)] = _fork_pull(runner_world)
    result = runner_world.run(
        event,
        {"mode": mode, "changed-only": "false", "pipelines": "pipelines/attack.yaml", "comment": "always"},
        env=canaries.env(),
        timeout=120,
    )
    assert attacker.connections == 0
    assert result.returncode == 1, result.explain()
    assert result.outputs["status"] == "failure"
    refusals = [a for a in result.of_level("error") if "refusing to" in a.message and "fork" in a.message]
    assert refusals, result.explain()
    assert "compiled" in result.summary  # still validated and compiled: the author sees the findings
    assert_step_clean(canaries, runner_world, result)


@pytest.mark.parametrize("event", ["pull_request_target_fork", "pull_request_fork"])
def test_cleanup_never_connects_for_a_fork(runner_world, canaries, attacker, event):
    runner_world.setup()
    runner_world.write(_fork_files(attacker.port))
    payload = runner_world.payload(event)
    payload["action"] = "closed"
    result = runner_world.run(
        event,
        {"mode": "cleanup", "isolate": "pr", "pipelines": "pipelines/attack.yaml"},
        env=canaries.env(),
        payload=payload,
    )
    assert attacker.connections == 0
    assert result.returncode == 1, result.explain()
    assert any("refusing to clean up" in a.message for a in result.of_level("error")), result.explain()
    assert_step_clean(canaries, runner_world, result)
