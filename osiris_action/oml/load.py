"""Read a YAML file into plain Python data while keeping the position of every key and value.

PyYAML's `safe_load` throws positions away and silently keeps the last of two duplicate keys; its
composer also recurses per nesting level (a deeply nested file crashes the C extension) and expands
aliases without limit (a "billion laughs" file exhausts memory). So we build the tree ourselves from
libyaml's event stream: iteratively, with a depth limit, an expansion budget, duplicate-key detection
and a span for every key and value.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml import events as ev
from yaml.nodes import ScalarNode

from osiris_action.diagnostics import Diagnostic, Span

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 200_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()

Path_ = tuple[Any, ...]
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_BREAK_KEEP = re.compile("(\r\n|[\r\n\x85\u2028\u2029])")  # split, keeping each break


@dataclass
class Document:
    """One YAML file: its data, the source text and the span of every key and value by path."""

    file: str
    text: str
    data: Any = None
    values: dict[Path_, Span] = field(default_factory=dict)
    keys: dict[Path_, Span] = field(default_factory=dict)

    @functools.cached_property
    def lines(self) -> list[str]:
        """The source lines as YAML counts them, so that `lines[span.line - 1]` is the line libyaml meant."""
        return _BREAK.split(self.text)

    def span(self, path: Path_, part: str = "value") -> Span:
        """The span of the value (or key) at `path`; falls back to the nearest enclosing node."""
        table = self.keys if part == "key" else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), Span(1, 1))


class LoadError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _span(start, end) -> Span:
    return Span(start.line + 1, start.column + 1, end.line + 1, end.column + 1)


_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(
    "tag:yaml.org,2002:" + name for name in ("null", "bool", "int", "float", "str", "timestamp", "binary")
)


def _scalar(event: ev.ScalarEvent) -> Any:
    """The Python value of a scalar, as `safe_load` gives it; dates become ISO strings, bytes text.

    Only scalar constructors run: SafeConstructor's `!!map`/`!!omap`/`!!set` constructors are
    generators that would put a generator object into the data, and a bad explicit tag such as
    `!!timestamp 'x'` makes its constructor fail with an arbitrary exception: that is a YAML error.
    """
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:  # quoted or block, without a tag: always a string
            return event.value
        tag = _resolver.resolve(ScalarNode, event.value, event.implicit)
    if tag == _STR or tag not in _SCALAR_TAGS:  # the common case first: a plain string
        return event.value
    node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        value = _constructor.yaml_constructors[tag](_constructor, node)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
        kind = tag.rsplit(":", 1)[-1]
        raise yaml.MarkedYAMLError(
            problem=f"cannot read {event.value!r} as !!{kind} ({type(exc).__name__})",
            problem_mark=event.start_mark,
        ) from exc
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


class _Builder:
    """Turns libyaml events into data, recording spans; raises LoadError on the first hard problem."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.anchors: dict[str, tuple[Any, int]] = {}
        # the spans inside each anchored mapping or list, relative to it: an alias copies them, so that
        # a finding in merged or aliased config points at where the value is written
        self.anchor_spans: dict[str, list[tuple[Path_, Span]]] = {}
        self.order: list[tuple[Path_, Span]] = []  # every value span in the order it was recorded
        self.count = 0
        self.duplicates: list[Diagnostic] = []

    def fail(self, code: str, message: str, span: Span, hint: str) -> None:
        raise LoadError(Diagnostic(self.doc.file, span, "error", code, message, hint))

    def build(self, stream) -> Any:
        # Stack frames: [container, path, pending_key, key_span, size_so_far, start_event, anchor]
        stack: list[list[Any]] = []
        root: Any = None
        have_root = False
        for event in stream:
            if type(event) is ev.ScalarEvent:  # most events are scalars: test for them first
                value = _scalar(event)
                # A long string weighs more, so that aliasing one thousands of times cannot blow up what
                # later copies the data (the manifest) while the file itself stays small.
                weight = 1 + len(value) // 256 if isinstance(value, str) else 1
                self._spend(weight, event)
                span = _span(event.start_mark, event.end_mark)
                if event.anchor:
                    self.anchors[event.anchor] = (value, weight)
                if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is _NO_KEY:
                    self._set_key(stack[-1], value, span, event)
                    continue
                path = self._child_path(stack)
                if path is not None:
                    self._put(path, span)
                if not self._attach(stack, value, weight, span):
                    root, have_root = value, True
                continue
            if isinstance(event, ev.StreamStartEvent | ev.StreamEndEvent | ev.DocumentEndEvent):
                continue
            if isinstance(event, ev.DocumentStartEvent):
                if have_root:
                    self.fail(
                        "OML003",
                        "the file holds more than one YAML document",
                        _span(event.start_mark, event.end_mark),
                        "Keep one pipeline per file; remove the extra '---' document.",
                    )
                continue
            if isinstance(event, ev.MappingEndEvent | ev.SequenceEndEvent):
                container, path, _k, _ks, size, start, anchor, first = stack.pop()
                self._put(path, _span(start.start_mark, event.end_mark))
                if anchor:
                    self.anchors[anchor] = (container, size)
                    n = len(path)  # what this container recorded since it started, relative to it
                    self.anchor_spans[anchor] = [(p[n:], sp) for p, sp in self.order[first:] if len(p) > n]
                self._attach(stack, container, size, self.doc.values[path])
                if not stack:
                    root, have_root = container, True
                continue

            path = self._child_path(stack)
            if isinstance(event, ev.AliasEvent):
                if event.anchor not in self.anchors:
                    self.fail(
                        "OML003",
                        f"unknown alias '*{event.anchor}'",
                        _span(event.start_mark, event.end_mark),
                        "Define the anchor with '&name' before using '*name'.",
                    )
                value, size = self.anchors[event.anchor]
                self._spend(size, event)
                span = _span(event.start_mark, event.end_mark)
                if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is _NO_KEY:
                    self._set_key(stack[-1], value, span, event)
                    continue
                if path is not None:
                    self._put(path, span, replace=False)
                    self._copy_spans(event.anchor, path[:-1] if path[-1] is _MERGE else path)
                if not self._attach(stack, value, size, span):
                    root, have_root = value, True
                continue
            if isinstance(event, ev.MappingStartEvent | ev.SequenceStartEvent):
                self._spend(1, event)
                if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is _NO_KEY:
                    self.fail(
                        "OML003",
                        "a mapping key must be a plain value, not a list or mapping",
                        _span(event.start_mark, event.end_mark),
                        "Use a string as the key.",
                    )
                if len(stack) >= MAX_DEPTH:
                    self.fail("OML004", _TOO_DEEP, _span(event.start_mark, event.end_mark), _TOO_DEEP_HINT)
                container: Any = {} if isinstance(event, ev.MappingStartEvent) else []
                stack.append(
                    [
                        container,
                        path if path is not None else (),
                        _NO_KEY,
                        None,
                        1,
                        event,
                        event.anchor,
                        len(self.order),
                    ]
                )
        return root

    def _put(self, path: Path_, span: Span, replace: bool = True) -> None:
        if path not in self.doc.values:
            self.order.append((path, span))
        elif not replace:
            return
        self.doc.values[path] = span

    def _copy_spans(self, anchor: str, base: Path_) -> None:
        # values only: a key span would make a legal override of a merged key look like a duplicate
        for relative, span in self.anchor_spans.get(anchor, ()):
            self._put((*base, *relative), span, replace=False)

    def _spend(self, size: int, event) -> None:
        self.count += size
        if self.count > MAX_VALUES:
            self.fail(
                "OML004",
                f"the YAML expands to more than {MAX_VALUES:,} values (aliases repeated too often?)",
                _span(event.start_mark, event.end_mark),
                "Remove the repeated '*alias' references; a pipeline file is small.",
            )

    def _child_path(self, stack) -> Path_ | None:
        if not stack:
            return ()
        frame = stack[-1]
        if isinstance(frame[0], list):
            return (*frame[1], len(frame[0]))
        if frame[2] is _NO_KEY:
            return None
        return (*frame[1], frame[2])

    def _set_key(self, frame, key, span: Span, event) -> None:
        if isinstance(key, list | dict):
            self.fail("OML003", "a mapping key must be a plain value", span, "Use a string as the key.")
        container, path = frame[0], frame[1]
        if key == "<<" and isinstance(event, ev.ScalarEvent) and event.implicit[0]:
            frame[2], frame[3] = _MERGE, span
            return
        if key in container and (*path, key) in self.doc.keys:
            first = self.doc.keys[(*path, key)]
            self.duplicates.append(
                Diagnostic(
                    self.doc.file,
                    span,
                    "error",
                    "OML002",
                    f"duplicate key '{event.value if isinstance(event, ev.ScalarEvent) else key}' "
                    f"(first defined on line {first.line})",
                    "YAML keeps only the last value, so the first one is silently ignored; "
                    "remove one of the two.",
                )
            )
        frame[2], frame[3] = key, span
        self.doc.keys[(*path, key)] = span

    def _attach(self, stack, value, size: int, span: Span) -> bool:
        if not stack:
            return False
        frame = stack[-1]
        frame[4] += size
        container = frame[0]
        if isinstance(container, list):
            container.append(value)
            return True
        key = frame[2]
        if key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if isinstance(source, dict):
                    for k, v in source.items():
                        container.setdefault(k, v)
        else:
            container[key] = value
        frame[2] = _NO_KEY
        return True


_TOO_DEEP = f"the YAML nests deeper than {MAX_DEPTH} levels"
_TOO_DEEP_HINT = "A pipeline never needs this depth; flatten the structure."
_NO_KEY = object()
_MERGE = object()


def load_text(text: str, file: str) -> tuple[Document, list[Diagnostic]]:
    """Parse YAML text. Returns the document and the diagnostics found while reading it."""
    doc = Document(file=file, text=text)
    builder = _Builder(doc)
    try:
        doc.data = builder.build(yaml.parse(text, Loader=_Loader))
    except LoadError as exc:
        return doc, [exc.diagnostic]
    except yaml.MarkedYAMLError as exc:
        unclosed = _unclosed(exc, file, text)
        if unclosed is not None:
            return doc, [unclosed]
        mark = exc.problem_mark or exc.context_mark
        span = Span(mark.line + 1, mark.column + 1) if mark else Span(1, 1)
        problem = exc.problem or "invalid YAML"
        if "maximum nesting depth" in problem:
            # libyaml >= 0.2.6 stops at 1,000 levels while scanning ahead, before our own limit sees the
            # 65th: the same input problem, so the same diagnostic (at libyaml's position).
            return doc, [Diagnostic(file, span, "error", "OML004", _TOO_DEEP, _TOO_DEEP_HINT)]
        if exc.context:
            problem = (
                f"{exc.context}: {problem}" if "while" not in exc.context else f"{problem} ({exc.context})"
            )
        return doc, [
            Diagnostic(
                file,
                span,
                "error",
                "OML001",
                f"YAML syntax error: {problem}",
                "Check indentation, quotes and colons at this position.",
            )
        ]
    except yaml.reader.ReaderError as exc:  # a character YAML forbids; libyaml counts UTF-8 bytes
        head = (
            text[: exc.position]
            if _Loader is yaml.SafeLoader
            else text.encode()[: exc.position].decode(errors="ignore")
        )
        before = _BREAK.split(head)
        return doc, [
            Diagnostic(
                file,
                Span(len(before), len(before[-1]) + 1),
                "error",
                "OML001",
                f"YAML syntax error: {exc.reason} (character U+{exc.character:04X})",
                'Remove the character, or write it as an escape inside double quotes, e.g. "\\x07".',
            )
        ]
    except yaml.YAMLError as exc:
        return doc, [Diagnostic(file, Span(1, 1), "error", "OML001", f"YAML syntax error: {exc}", _YAML_HINT)]
    return doc, builder.duplicates


_YAML_HINT = "Check indentation, quotes and colons near this position."


def _unclosed(exc: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic | None:
    """Something opened (a quote, a bracket) and the file ended before it closed: the end of the file is
    no place to look, so the finding points where it opened and names both positions."""
    opened, end = exc.context_mark, exc.problem_mark
    if opened is None or end is None or (opened.line, opened.column) == (end.line, end.column):
        return None
    after = "".join(_BREAK_KEEP.split(text)[end.line * 2 :])[end.column :]
    if "end of stream" not in (exc.problem or "") and after.strip():
        return None
    what = (exc.context or "a value").removeprefix("while scanning ").removeprefix("while parsing ")
    why = "" if "end of stream" in (exc.problem or "") else f" ({exc.problem})"
    return Diagnostic(
        file,
        Span(opened.line + 1, opened.column + 1),
        "error",
        "OML001",
        f"YAML syntax error: {what} opened at line {opened.line + 1}, column {opened.column + 1} is never "
        f"closed; the file ends at line {end.line + 1}, column {end.column + 1}{why}",
        "Close it where the value ends (a quote inside a quoted value is written twice in single quotes, "
        'or as \\" in double quotes).',
    )


def load_file(path: Path, display: str | None = None) -> tuple[Document, list[Diagnostic]]:
    """Read and parse one file, turning unreadable input into one diagnostic instead of an exception."""
    file = display or str(path)
    empty = Document(file=file, text="")

    def problem(message: str, hint: str, span: Span | None = None) -> tuple[Document, list[Diagnostic]]:
        return empty, [Diagnostic(file, span or Span(1, 1), "error", "OML004", message, hint)]

    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return problem(
                f"file is too large for a pipeline ({size / 1e6:.1f} MB > {MAX_BYTES / 1e6:.0f} MB)",
                "A pipeline file holds steps, not data; move data into a CSV or a database table.",
            )
        raw = path.read_bytes()
    except OSError as exc:
        return problem(f"cannot read file: {exc.strerror or exc}", "Check the path and its permissions.")
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return problem("file is binary, not YAML", "Point the tool at .yaml pipeline files only.")
    try:
        text = (
            raw.decode("utf-8-sig")
            if not raw.startswith((b"\xff\xfe", b"\xfe\xff"))
            else raw.decode("utf-16")
        )
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return problem(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            "Save the file as UTF-8.",
            Span(line, col),
        )
    if not text.strip():
        return problem("file is empty", "A pipeline needs oml_version, name and steps.")
    return load_text(text, file)
