"""Action inputs, read from `INPUT_*` variables exactly as the runner names them.

The runner sets `INPUT_` + the input name with spaces turned into `_` and upper-cased; hyphens are
kept (`pipeline-path` -> `INPUT_PIPELINE-PATH`), which is why the image must not start through a
shell that drops such variables. It does not enforce `required: true`, and booleans arrive as
strings, so the checks live here, with errors that name the input and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

TRUE = ("true", "True", "TRUE")
FALSE = ("false", "False", "FALSE")


class InputError(ValueError):
    """A bad or missing input: `message` says what is wrong, `hint` how to fix it."""

    def __init__(self, message: str, hint: str = "", name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.name = name


def env_name(name: str) -> str:
    return "INPUT_" + name.replace(" ", "_").upper()


def get_input(name: str, env: Mapping[str, str] = os.environ, *, required: bool = False) -> str:
    """The trimmed value, "" when unset; `required` turns "" into an InputError."""
    value = env.get(env_name(name), "").strip()
    if required and not value:
        raise InputError(
            f"Input '{name}' is required and was not supplied",
            f"Set it under `with:` in the workflow step (environment variable {env_name(name)}).",
            name,
        )
    return value


def get_bool(name: str, env: Mapping[str, str] = os.environ, default: bool | None = None) -> bool:
    """YAML 1.2 core booleans only, as @actions/core `getBooleanInput`; "" gives `default` if set.

    `yes`, `on` or `1` are refused rather than guessed, so a typo cannot silently flip a switch.
    """
    value = get_input(name, env)
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    if not value and default is not None:
        return default
    raise InputError(
        f"Input '{name}' must be a boolean, got {_show(value)}",
        f"Allowed values: {' | '.join(TRUE + FALSE)}.",
        name,
    )


def get_multiline(name: str, env: Mapping[str, str] = os.environ) -> list[str]:
    """One item per line, each trimmed; blank lines are dropped."""
    return [line.strip() for line in get_input(name, env).split("\n") if line.strip()]


def get_choice(
    name: str, allowed: Iterable[str], default: str | None = None, env: Mapping[str, str] = os.environ
) -> str:
    """One of `allowed` (matched case-insensitively, returned as spelled in `allowed`)."""
    allowed = list(allowed)
    value = get_input(name, env)
    if not value and default is not None:
        return default
    for choice in allowed:
        if choice.lower() == value.lower():
            return choice
    raise InputError(
        f"Input '{name}' must be one of {', '.join(allowed)}, got {_show(value)}",
        f"Allowed values for '{name}': {' | '.join(allowed)}.",
        name,
    )


def _show(value: str) -> str:
    # Bounded, because a misplaced secret could end up in the wrong input.
    return repr(value if len(value) <= 40 else value[:37] + "...") if value else "an empty value"
