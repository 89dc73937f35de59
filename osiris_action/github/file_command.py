"""`GITHUB_OUTPUT` / `GITHUB_ENV` entries as `name<<ghadelimiter_<uuid4>` heredocs.

The runner reads these files after the step, line by line on LF: `NAME=VALUE` when `=` comes before
any `<<`, else a heredoc ending at the first line equal to the delimiter. A heredoc with a random
delimiter carries any value (newlines, `=`, `<<`) intact, which `NAME=VALUE` cannot. As in
@actions/core `file-command.ts`, a delimiter that occurs in the name or value is refused rather
than written, because the runner would cut the value there and read the rest as new entries.
Names are checked too: an `=` or `<<` in one would change how the whole entry is read.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping

PathLike = str | os.PathLike[str] | None


def format_entry(name: str, value: object, delimiter: str | None = None) -> str:
    """`name<<D\\nvalue\\nD\\n`; the runner gives back exactly `value` (it drops the LF before D)."""
    if not name or any(bad in name for bad in ("=", "<<", "\n", "\r")):
        raise ValueError(f"invalid name {name!r}: it must be non-empty without '=', '<<' or line breaks")
    text = to_value(value)
    delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    if delimiter in name:
        raise ValueError(f"unexpected input: name should not contain the delimiter {delimiter!r}")
    if delimiter in text:
        raise ValueError(f"unexpected input: value should not contain the delimiter {delimiter!r}")
    return f"{name}<<{delimiter}\n{text}\n{delimiter}\n"


def to_value(value: object) -> str:
    """Strings as they are, None as "", anything else as JSON (so True is `true`, as in the toolkit)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def append_entries(path: PathLike, values: Mapping[str, object]) -> bool:
    """Append all entries in one open and one write; False (nothing written) when path is unset.

    Every entry is formatted before the file is touched, so a refused value leaves the file as it
    was instead of half written (the runner applies entries up to a bad one and fails the step).
    """
    if not path or not values:
        return False
    text = "".join(format_entry(name, value) for name, value in values.items())
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return True


def set_output(path: PathLike, name: str, value: object) -> bool:
    """One step output, appended to the file named by GITHUB_OUTPUT."""
    return append_entries(path, {name: value})


def set_outputs(path: PathLike, values: Mapping[str, object]) -> bool:
    """Several step outputs in one write."""
    return append_entries(path, values)


def append_env(path: PathLike, name: str, value: object) -> bool:
    """An environment variable for later steps, appended to the file named by GITHUB_ENV."""
    return append_entries(path, {name: value})
