"""How the GitHub Actions runner reads what a step leaves behind, modelled for tests.

Written from the runner's rules (actions/runner `ActionCommand.cs` TryParseV2 and TryParse,
`ActionCommandManager.cs`, `FileCommandManager.cs`), not from our writers, so that a writer bug
cannot hide behind the same bug here. Reused by the tests of the whole action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REGISTERED = frozenset(
    {
        "add-mask",
        "add-matcher",
        "add-path",
        "debug",
        "echo",
        "endgroup",
        "error",
        "group",
        "notice",
        "remove-matcher",
        "save-state",
        "set-env",
        "set-output",
        "stop-commands",
        "warning",
    }
)
ISSUE_TYPES = ("error", "warning", "notice")
MAX_ISSUES_PER_TYPE = 10  # ExecutionContext._maxCountPerIssueType

# (escaped, literal) in the order the runner applies them when unescaping.
_DATA = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))
_LEGACY = (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]"), ("%25", "%"))
# .NET StreamReader.ReadLine, which reads the step's stdout and stderr, ends lines at CR, LF or CRLF.
_LINES = re.compile(r"\r\n|\r|\n")


@dataclass
class Command:
    name: str  # lower case: the runner compares names case-insensitively
    properties: dict[str, str]
    data: str
    raw: str
    legacy: bool = False

    def prop(self, key: str) -> str | None:
        """Property lookup ignoring case, as the runner's OrdinalIgnoreCase dictionary does."""
        return next((v for k, v in self.properties.items() if k.lower() == key.lower()), None)


@dataclass
class Transcript:
    commands: list[Command] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # plain output lines, masked as the log shows them
    masks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def named(self, name: str) -> list[Command]:
        return [c for c in self.commands if c.name == name]

    @property
    def annotations(self) -> list[Command]:
        return [c for c in self.commands if c.name in ISSUE_TYPES]

    @property
    def kept_annotations(self) -> list[Command]:
        """What shows as annotations: only the first 10 of each type per step."""
        seen = dict.fromkeys(ISSUE_TYPES, 0)
        kept = []
        for command in self.annotations:
            seen[command.name] += 1
            if seen[command.name] <= MAX_ISSUES_PER_TYPE:
                kept.append(command)
        return kept

    def mask(self, text: str) -> str:
        for secret in sorted(self.masks, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def unescape(text: str, table: tuple[tuple[str, str], ...]) -> str:
    for escaped, literal in table:
        text = text.replace(escaped, literal)
    return text


def split_lines(text: str) -> list[str]:
    lines = _LINES.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _split_pair(text: str) -> list[str]:
    """`text.Split('=', 2, StringSplitOptions.RemoveEmptyEntries)` in .NET."""
    start = 0
    while (at := text.find("=", start)) >= 0:
        if at > start:
            rest = text[at + 1 :]
            return [text[start:at], rest] if rest else [text[start:at]]
        start = at + 1
    return [text[start:]] if text[start:] else []


def parse_v2(line: str, registered: frozenset[str] | set[str] = REGISTERED) -> Command | None:
    """`::name k=v,k2=v2::data`, after trimming leading whitespace; unknown names are plain text."""
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if name.lower() not in {r.lower() for r in registered}:
        return None
    properties: dict[str, str] = {}
    if space > 0:
        for item in info[space + 1 :].strip().split(","):
            pair = _split_pair(item) if item else []
            if len(pair) == 2:
                _set(properties, pair[0], unescape(pair[1], _PROPERTY))
    return Command(name.lower(), properties, unescape(message[end + 2 :], _DATA), line)


def parse_legacy(line: str, registered: frozenset[str] | set[str] = REGISTERED) -> Command | None:
    """`##[name k=v;k2=v2]data`, found anywhere in the line."""
    start = line.find("##[")
    if start < 0:
        return None
    close = line.find("]", start)
    if close < 0:
        return None
    info = line[start + 3 : close]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if name.lower() not in {r.lower() for r in registered}:
        return None
    properties: dict[str, str] = {}
    if space > 0:
        for item in info[space + 1 :].split(";"):
            pair = _split_pair(item) if item else []
            if len(pair) == 2:
                _set(properties, pair[0], unescape(pair[1], _LEGACY))
    return Command(name.lower(), properties, unescape(line[close + 1 :], _LEGACY), line, legacy=True)


def parse_stdout(text: str, allow_unsafe_stop_tokens: bool = False) -> Transcript:
    """Replay a step's output through the runner's command processing."""
    out = Transcript()
    registered = set(REGISTERED)
    stop_token: str | None = None
    for line in split_lines(text):
        command = (parse_v2(line, registered) or parse_legacy(line, registered)) if line else None
        if command is None:
            out.log.append(out.mask(line))
        elif stop_token is not None:
            if command.name == stop_token.lower():
                registered.discard(stop_token)
                stop_token = None
            else:
                out.log.append(out.mask(line))  # parsed but not processed: printed as it is
        elif command.name == "stop-commands":
            token = command.data
            bad = not token or token.lower() == "pause-logging" or token.lower() in REGISTERED
            if bad and not allow_unsafe_stop_tokens:
                out.errors.append(f"invalid stop-commands token {token!r}")
                continue
            stop_token = token
            registered.add(token)
            if len(token) > 6:
                out.masks.append(token)
            out.commands.append(command)
        else:
            if command.name == "add-mask":
                _add_mask(out, command.data)
            out.commands.append(command)
    return out


def _add_mask(out: Transcript, value: str) -> None:
    if not value.strip():
        out.warnings.append("Can't add secret mask for empty string in ##[add-mask] command.")
        return
    for secret in [value, *(part.strip() for part in re.split(r"[\r\n]+", value))]:
        if secret and secret not in out.masks:
            out.masks.append(secret)


def _set(properties: dict[str, str], key: str, value: str) -> None:
    for existing in properties:
        if existing.lower() == key.lower():
            properties[existing] = value
            return
    properties[key] = value


class FileCommandError(ValueError):
    """The runner fails the step here; `partial` holds what it had already applied."""

    def __init__(self, message: str, partial: dict[str, str]) -> None:
        super().__init__(message)
        self.partial = partial


def parse_file_command(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV contents as the runner's Linux build reads them."""
    result: dict[str, str] = {}
    index = 0

    def read_line() -> tuple[str | None, str | None]:
        nonlocal index
        if index >= len(text):
            return None, None
        lf = text.find("\n", index)
        if lf < 0:
            line, index = text[index:], len(text)
            return line, None
        line, index = text[index:lf], lf + 1
        return line, "\n"

    while (line := read_line()[0]) is not None:
        if line == "":
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = line.split("=", 1)
            if not name:
                raise FileCommandError(f"Invalid format '{line}'. Name must not be empty", result)
            result[name] = value
        elif heredoc >= 0:
            name, delimiter = line.split("<<", 1)
            if not name or not delimiter:
                raise FileCommandError(
                    f"Invalid format '{line}'. Name must not be empty and delimiter must not be empty", result
                )
            start = end = index
            while True:
                candidate, newline = read_line()
                if candidate == delimiter:
                    break
                if candidate is None:
                    message = f"Invalid value. Matching delimiter not found '{delimiter}'"
                    raise FileCommandError(message, result)
                if newline is None:
                    raise FileCommandError("Invalid value. EOF marker missing new line.", result)
                end = index - len(newline)
            result[name] = text[start:end] if end > start else ""
        else:
            raise FileCommandError(f"Invalid format '{line}'", result)
    return result


def read_file_command(path: str) -> dict[str, str]:
    """Read as File.ReadAllText does: UTF-8, a byte-order mark skipped."""
    with open(path, "rb") as fh:
        return parse_file_command(fh.read().decode("utf-8-sig", errors="replace"))
