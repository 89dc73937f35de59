"""The step summary (`GITHUB_STEP_SUMMARY`): a builder, escaped, within the size limit, written once.

Like @actions/core `summary.ts`, each method adds a block and returns the builder. Unlike it, every
piece of user text is escaped (the toolkit escapes nothing, so a `<` or `|` in a table name breaks
the page) and the output respects a byte budget: the runner drops the whole summary, with an error,
when the file is over 1024 KiB. Over budget, long tables lose rows from the end and say how many;
only if that is not enough is the text cut, with a note.

User text goes through `escape_text` (Markdown punctuation backslash-escaped, HTML escaped, line
breaks as `<br>`); `Raw` marks fragments we wrote ourselves, such as `link_to` and `inline_code`.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

RUNNER_LIMIT = 1024 * 1024
# A margin under the runner's limit for anything else appended to the file and for masking.
DEFAULT_BUDGET = 1_000_000

_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]~|#"})
_BREAK = re.compile(r"\r\n|\r|\n")
_ORDERED_MARKER = re.compile(r"(\d+)([.)])")


class Raw(str):
    """Markdown or HTML we wrote ourselves: inserted without escaping."""


# An @ that starts a word is a mention: a pipeline's name, a step id or an error text would notify that
# user or team from the summary and the PR comment. A zero-width space after it keeps the text readable
# and the mention inert; an @ inside a word (an e-mail address, a DSN) is no mention and stays as it is.
_MENTION = re.compile(r"(?<![A-Za-z0-9_`])@(?=[A-Za-z0-9])")


def escape_text(text: object) -> str:
    """Text shown literally in Markdown or inline HTML; `Raw` passes through."""
    if isinstance(text, Raw):
        return text
    escaped = html.escape(str(text).translate(_MARKDOWN))
    return _BREAK.sub("<br>", no_mentions(escaped))


def no_mentions(text: str) -> str:
    """`text` with every @mention made inert (`@&#8203;name`)."""
    return _MENTION.sub("@&#8203;", text)


def escape_cell(text: object) -> str:
    """A GFM table cell: like `escape_text`, and line breaks never split the row, even in `Raw`."""
    cell = _BREAK.sub("<br>", escape_text(text))
    return cell if cell.strip() else " "


def link_to(text: object, href: str) -> Raw:
    return Raw(f'<a href="{html.escape(href, quote=True)}">{escape_text(text)}</a>')


def inline_code(text: object) -> Raw:
    return Raw(f"<code>{escape_text(text)}</code>")


def mermaid_label(text: object) -> str:
    """A quoted Mermaid node label; Mermaid's `#name;` entities keep quotes and brackets literal."""
    label = str(text).replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return '"' + _BREAK.sub("<br>", label) + '"'


@dataclass
class _Table:
    head: str
    rows: list[str]
    max_rows: int | None
    hint: str

    def render(self, cap: int) -> str:
        keep = min(len(self.rows), cap, len(self.rows) if self.max_rows is None else self.max_rows)
        text = self.head + "".join(self.rows[:keep])
        dropped = len(self.rows) - keep
        if dropped:
            rows = f"{dropped} more row{'s' if dropped != 1 else ''}"
            text += f"\n*{rows} not shown. {escape_text(self.hint)}*\n"
        return text


class Summary:
    """Build in memory, `render()` within `budget` bytes, `write(path)` once at the end of the step."""

    def __init__(
        self, budget: int = DEFAULT_BUDGET, overflow_hint: str = "The full list is in the artifacts."
    ) -> None:
        self.budget = budget
        self.overflow_hint = overflow_hint
        self._blocks: list[str | _Table] = []
        self._written = False

    @property
    def is_empty(self) -> bool:
        return not self._blocks

    def heading(self, text: object, level: int = 2) -> Summary:
        if not 1 <= level <= 6:
            raise ValueError(f"heading level must be 1-6, got {level}")
        return self._add(f"{'#' * level} {escape_text(' '.join(_BREAK.split(str(text))))}\n")

    def paragraph(self, text: object) -> Summary:
        return self._add(f"{_block_start(text)}\n")

    def raw(self, markdown: str) -> Summary:
        """Trusted Markdown, as is (a trailing newline is added when missing)."""
        return self._add(markdown.rstrip("\n") + "\n") if markdown.strip() else self

    def table(
        self, header: Sequence[object], rows: Iterable[Sequence[object]], max_rows: int | None = None
    ) -> Summary:
        """A GFM table; rows are padded or cut to the header's width. `max_rows` caps it up front."""
        width = len(header)
        if not width:
            raise ValueError("a table needs at least one header cell")
        head = _row(header) + "|" + " --- |" * width + "\n"
        body = [_row([*row, *[""] * (width - len(row))][:width]) for row in rows]
        self._blocks.append(_Table(head, body, max_rows, self.overflow_hint))
        return self

    def details(self, label: object, content: object, open: bool = False) -> Summary:
        """A collapsed section; content is a nested `Summary`, `Raw` Markdown or plain text.

        A blank line after `</summary>` is what makes GitHub render the Markdown inside.
        """
        label_html = no_mentions(html.escape(" ".join(_BREAK.split(str(label)))))
        self._add(f"<details{' open' if open else ''}><summary>{label_html}</summary>\n")
        if isinstance(content, Summary):
            self._blocks.extend(content._blocks)
        elif isinstance(content, Raw):
            self.raw(content)
        else:
            self.paragraph(content)
        return self._add("</details>\n")

    def code_block(self, code: str, lang: str = "") -> Summary:
        """A fenced block, longer than any backtick run in the code so the code cannot close it."""
        code = _BREAK.sub("\n", code).rstrip("\n")
        runs = re.findall(r"`+", code)
        fence = "`" * max(3, max(map(len, runs), default=0) + 1)
        info = re.sub(r"[^A-Za-z0-9_+.-]", "", lang)
        return self._add(f"{fence}{info}\n{code}\n{fence}\n")

    def mermaid(self, source: str) -> Summary:
        """A Mermaid diagram; put user text in node labels through `mermaid_label`."""
        return self.code_block(source, "mermaid")

    def list(self, items: Iterable[object], ordered: bool = False) -> Summary:
        lines = [f"{f'{n}.' if ordered else '-'} {_block_start(item)}\n" for n, item in enumerate(items, 1)]
        return self._add("".join(lines)) if lines else self

    def link(self, text: object, href: str) -> Summary:
        return self._add(f"{link_to(text, href)}\n")

    def render(self, budget: int | None = None) -> str:
        """The Markdown, at most `budget` bytes of UTF-8: tables are cut to a common row cap first."""
        budget = self.budget if budget is None else budget
        longest = max((len(b.rows) for b in self._blocks if isinstance(b, _Table)), default=0)
        text = self._render(longest)
        if _size(text) <= budget:
            return text
        if _size(smallest := self._render(0)) > budget:
            return _cut(smallest, budget, self.overflow_hint)
        fits, too_big = 0, longest
        while too_big - fits > 1:
            mid = (fits + too_big) // 2
            if _size(self._render(mid)) <= budget:
                fits = mid
            else:
                too_big = mid
        return self._render(fits)

    def write(self, path: str | os.PathLike[str] | None) -> bool:
        """Append the summary to `path` in one write; later calls do nothing (safe in a `finally`).

        What the file already holds counts against the budget, since the runner measures the file.
        """
        if self._written or not path or self.is_empty:
            return False
        existing = os.path.getsize(path) if os.path.exists(path) else 0
        separator = ""
        if existing:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                separator = "\n" if fh.read(1) == b"\n" else "\n\n"
        text = self.render(self.budget - existing - len(separator))
        with open(path, "a", encoding="utf-8", newline="") as fh:
            fh.write(separator + text)
        self._written = True
        return True

    def _add(self, block: str) -> Summary:
        self._blocks.append(block)
        return self

    def _render(self, cap: int) -> str:
        return "\n".join(b.render(cap) if isinstance(b, _Table) else b for b in self._blocks)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(escape_cell(c) for c in cells) + " |\n"


def _block_start(text: object) -> str:
    """Inline text that also cannot open a block (list, quote, setext line, code) where it starts."""
    if isinstance(text, Raw):
        return text
    escaped = escape_text(text).lstrip(" \t")
    if escaped[:1] in ("-", "+", "="):
        return "\\" + escaped
    if marker := _ORDERED_MARKER.match(escaped):
        return f"{marker[1]}\\{escaped[len(marker[1]) :]}"
    return escaped


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut(text: str, budget: int, hint: str) -> str:
    note = f"\n*Summary cut to fit GitHub's step summary limit. {escape_text(hint)}*\n"
    room = budget - _size(note)
    if room <= 0:
        return ""
    kept = text.encode("utf-8")[:room].decode("utf-8", "ignore")
    return kept[: kept.rfind("\n") + 1] + note
