"""Workflow commands: the `::name key=value,...::message` lines the runner reads from stdout/stderr.

Same split as @actions/core `command.ts`: one formatter and two escaping functions. Formatters are
pure and return lines without the newline, so tests compare exact bytes; `emit` does the writing,
to stdout by default or to any callable or text stream given.

The runner reads a line as a command when it starts with `::` after leading whitespace; it unescapes
`%0D`, `%0A` (and `%3A`, `%2C` in properties) and then `%25`. Escaping `%` first makes that the exact
inverse, and escaping CR/LF keeps one command on one line, so text in a message can never start a
second command.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

Write = Callable[[str], object] | TextIO | None

LEVELS = ("error", "warning", "notice")
# The runner truncates longer annotation messages (ExecutionContext._maxIssueMessageLength); cutting
# here lets us mark the cut instead of losing the end silently.
MAX_MESSAGE = 4096

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def escape_data(value: object) -> str:
    """Escape a command message: `%` first, then CR and LF."""
    return _text(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: object) -> str:
    """Escape a property value: the message rules plus `:` (ends the command info) and `,`."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def format_command(name: str, message: object = "", **props: object) -> str:
    """One command line, without the newline; properties that are None or "" are left out.

    The runner drops `key=` pairs anyway (it splits with RemoveEmptyEntries); leaving them out keeps
    the line short and means what we print is exactly what the runner keeps.
    """
    if not _NAME.match(name):
        raise ValueError(f"invalid workflow command name {name!r}")
    pairs = []
    for key, value in props.items():
        if not _KEY.match(key):
            raise ValueError(f"invalid workflow command property name {key!r}")
        if value is None or _text(value) == "":
            continue
        pairs.append(f"{key}={escape_property(value)}")
    info = f"{name} {','.join(pairs)}" if pairs else name
    return f"::{info}::{escape_data(message)}"


def annotation(
    level: str,
    message: object,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    col: int | None = None,
    end_col: int | None = None,
    title: str | None = None,
) -> str:
    """An `::error`/`::warning`/`::notice` line with positions the runner will keep as given.

    Positions are normalised the way the runner's ValidateLinesAndColumns would (end without start
    becomes the start, columns need a line and a single-line range, reversed ranges are dropped),
    so the annotation lands where the runner will show it. Property order follows @actions/core.
    """
    if level not in LEVELS:
        raise ValueError(f"annotation level must be one of {', '.join(LEVELS)}, got {level!r}")
    line, end_line, col, end_col = _positions(line, end_line, col, end_col)
    text = _text(message)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return format_command(
        level, text, title=title, file=file, line=line, endLine=end_line, col=col, endColumn=end_col
    )


def add_mask(value: object) -> list[str]:
    """`::add-mask::` lines for a secret: one per line long enough to mask, each trimmed and escaped.

    A raw newline would end the command after the first line and print the rest of the secret in
    clear; whitespace-only lines only earn a runner warning. Masks apply to output printed after
    them, so emit these before anything that might contain the value.
    """
    from osiris_action.redact import MIN_SECRET_LEN

    lines: list[str] = []
    for part in _LINE_BREAK.split(_text(value)):
        part = part.strip()
        # A mask shorter than the redactor's minimum reveals more than it hides: the log would show
        # every "ab" it masked, telling which short strings the secret contains.
        if len(part) >= MIN_SECRET_LEN and (cmd := format_command("add-mask", part)) not in lines:
            lines.append(cmd)
    return lines


def group(name: object) -> str:
    """Start a collapsible log section (the runner does not nest them)."""
    return format_command("group", name)


def endgroup() -> str:
    return format_command("endgroup")


@contextlib.contextmanager
def stop_commands(write: Write = None, token: str | None = None) -> Iterator[Callable[[str], None]]:
    """Print untrusted text (SQL errors, sandbox stdout, pipeline YAML) with command parsing paused.

    Yields an `echo(text)` callable; everything echoed between `::stop-commands::TOKEN` and
    `::TOKEN::` is plain log, so it cannot inject `::error` or `::add-mask` (nor legacy `##[...]`).
    The token is fresh and random so the text cannot guess it. If the text did not end with a
    newline, one is added before the resume line: glued to the end of a line, `::TOKEN::` would not
    be read and commands would stay off for the rest of the step.
    """
    out = writer(write)
    token = token or secrets.token_hex(16)
    out(format_command("stop-commands", token) + "\n")
    at_line_start = True

    def echo(text: str) -> None:
        nonlocal at_line_start
        if text:
            out(text)
            at_line_start = text.endswith(("\n", "\r"))

    try:
        yield echo
    finally:
        out(("" if at_line_start else "\n") + format_command(token) + "\n")


def emit(lines: str | Iterable[str], write: Write = None) -> None:
    """Write command lines, each followed by a newline, in one call."""
    if isinstance(lines, str):
        lines = [lines]
    text = "".join(f"{line}\n" for line in lines)
    if text:
        writer(write)(text)


def writer(target: Write = None) -> Callable[[str], None]:
    """Turn None (stdout, looked up at write time), a text stream or a callable into `write(text)`.

    Streams are flushed after each write so commands on stdout keep their order relative to stderr,
    which the runner reads separately.
    """
    if target is None:
        return lambda text: _to_stream(sys.stdout, text)
    if hasattr(target, "write"):
        return lambda text: _to_stream(target, text)
    if callable(target):
        return target
    raise TypeError(f"expected a callable or a text stream, got {type(target).__name__}")


def _to_stream(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def _text(value: object) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _positions(*values: int | None) -> tuple[int | None, ...]:
    line, end_line, col, end_col = (None if v is None or int(v) < 1 else int(v) for v in values)
    if line is None:
        line = end_line
    if end_line is not None and end_line < line:
        line = end_line = None
    if line is None or (end_line is not None and end_line != line):
        col = end_col = None
    if col is None:
        col = end_col
    if end_col is not None and end_col < col:
        col = end_col = None
    return line, end_line, col, end_col
