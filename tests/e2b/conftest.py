"""Fixtures pointing the real e2b SDK at an in-process FakeE2B (see envd_server.py)."""

from __future__ import annotations

import pytest

from .envd_server import E2B_ENV_VARS, FakeE2B


def _point_sdk_at(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    # The SDK reads these on every call, so clearing the developer's own settings first matters.
    for name in E2B_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fake_e2b(monkeypatch: pytest.MonkeyPatch):
    """A started FakeE2B with the SDK in REST mode: create/kill over HTTP, real ids and tokens."""
    with FakeE2B() as fake:
        _point_sdk_at(monkeypatch, fake.env())
        yield fake


@pytest.fixture
def fake_e2b_debug(monkeypatch: pytest.MonkeyPatch):
    """A started FakeE2B with the SDK in E2B_DEBUG mode: no REST calls, sandbox id "debug_sandbox_id"."""
    with FakeE2B() as fake:
        _point_sdk_at(monkeypatch, fake.debug_env())
        yield fake


@pytest.fixture
def fake_with(monkeypatch):
    """A FakeE2B with its own options (e.g. rewrite_cmd), the SDK pointed at it in REST mode."""
    started: list[FakeE2B] = []

    def start(**options) -> FakeE2B:
        fake = FakeE2B(**options).start()
        started.append(fake)
        for name in E2B_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        return fake

    yield start
    for fake in started:
        fake.stop()
