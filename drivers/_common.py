"""What every driver shares with the worker: the error that carries a hint, and the step context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StepError(Exception):
    """A failure the user can fix: `message` says what went wrong, `hint` says what to change."""

    def __init__(self, message: str, hint: str = "", error_type: str = "StepError"):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.error_type = error_type


@dataclass
class StepContext:
    """What a driver gets besides its config and inputs. Drivers never print or read the environment:
    the connection arrives resolved, and everything they report goes through `emit`."""

    step_id: str
    connection: dict[str, Any] | None
    artifacts_dir: Path
    base_dir: Path
    emit: Callable[..., None] = field(default=lambda event, **fields: None)
    plan_only: bool = False  # plan mode: inputs are empty tables; read what is needed, write nothing
    create_schema: bool = False  # the target schema is this run's own (per-PR isolation): create it
    diff: bool = False  # compare the incoming rows with the target inside the write, before applying them
    base_schema: str | None = None  # per-PR isolation: the schema the pipeline names (None: its default)
    results: dict[str, Any] = field(default_factory=dict)

    def report(self, event: str, **fields: Any) -> None:
        """Emit an event and remember its fields, so the worker can read measured values back."""
        self.results[event] = fields
        self.emit(event, **fields)
