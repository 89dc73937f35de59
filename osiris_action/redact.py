"""One redaction function for everything that leaves the process.

Osiris, the system this project replaces, had five redactors: the event ``Redactor``, the legacy string
masker, the log viewer's patterns, the E2B log sanitizer and the artifact masking. They disagreed about
what a secret is: the string masker leaked ``Authorization: Bearer`` tokens, three of them missed some
DSN passwords, the event redactor never masked a bare ``key`` but did mask ``author``, and the local
and E2B artifact paths each missed fields the other caught. Here stdout, logs, events, artifacts, the
step summary, workflow outputs and manifests all pass through the same :class:`Redactor`, so there is
one answer to "is this safe to show?".

A redactor has two layers:

* **Known values** - the secret values in play (passwords, keys, DSNs resolved from the environment),
  in every form they are likely to take when printed: raw, URL-encoded, JSON- and backslash-escaped,
  base64. This layer is exact and always on.
* **Patterns** - shapes that are secrets whatever their value: DSN passwords, ``password=`` in keyword
  DSNs, ``Authorization`` headers, ``api_key``-like keys, JWTs and vendor tokens (Supabase, E2B,
  GitHub). This catches secrets we were never told about. ``E2B_LOG_REDACT=0`` (or false/off/no)
  turns this layer off, as it did in Osiris, for debugging a pattern that masks too much.

The switch cannot expose a value we know is secret: turning it off only stops the guessing.

Usage::

    redactor = Redactor([os.environ["MYSQL_PASSWORD"]])
    print(redactor.redact(line))
    print(json.dumps(redactor.redact_obj(event)))

Redact structures before serialising them where possible: ``redact_obj`` knows which keys are
secret, while the text patterns have to recognise them in whatever shape the serialiser chose.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "Redactor",
    "hide_data_values",
    "is_reference",
    "is_secret_key",
    "patterns_enabled",
]

MASK = "***"

# A known value shorter than this is not treated as a secret. Masking every "ab" or "123" would shred
# the output (row counts, SQL, identifiers) and so hide the very information a failed run needs, while
# a secret that short gives no protection anyway. The pattern layer still masks such values where they
# sit in a recognisable place (a DSN password, ``password=...``).
MIN_SECRET_LEN = 4

# --- key names ------------------------------------------------------------------------------------------
# Compared after lower-casing and turning "-" into "_". Exact names only: a substring rule is what made
# Osiris mask ``author`` (substring "auth"); "key" alone would catch ``primary_key`` and ``monkey``.
SECRET_KEYS = frozenset(
    {
        "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "key",
        "service_role_key", "anon_key", "dsn", "pg_dsn", "sql_dsn", "connection_string",
        "authorization", "proxy_authorization", "x_api_key", "access_token", "refresh_token",
        "auth_token", "client_secret", "private_key", "secret_key", "access_key",
    }
)  # fmt: skip
# Longer names ending in one of these are secret too (mysql_password, github_token,
# supabase_service_role_key). A plain "_key" suffix is deliberately absent: primary_key, sort_key.
SECRET_SUFFIXES = (
    "_password", "_passwd", "_pwd", "_secret", "_token", "_api_key", "_apikey", "_dsn",
    "_role_key", "_anon_key", "_private_key", "_secret_key", "_access_key", "_connection_string",
)  # fmt: skip

# ``${ENV}`` and ``@family.alias`` name a secret without being one; they must stay readable so that a
# user can see which variable or connection a step uses.
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|@[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# Only these explicit words turn the pattern layer off: a typo must not silently disable redaction.
_OFF_WORDS = frozenset({"0", "false", "off", "no"})


def patterns_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``E2B_LOG_REDACT`` leaves the pattern layer on (the default)."""
    value = (os.environ if environ is None else environ).get("E2B_LOG_REDACT", "")
    return value.strip().lower() not in _OFF_WORDS


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (``password``, ``pg_dsn``, ``github_token``...)."""
    norm = name.strip().lower().replace("-", "_")
    return norm in SECRET_KEYS or norm.endswith(SECRET_SUFFIXES)


def is_reference(value: str) -> bool:
    """Whether ``value`` is exactly a ``${ENV}`` or ``@family.alias`` reference."""
    return _REFERENCE.fullmatch(value) is not None


# --- the pattern layer ----------------------------------------------------------------------------------
# Each rule is one regex, run over a lower-cased copy of the text (so every rule is case-insensitive and
# the spans line up with the original), with a group "v" (or "bare") holding the secret; the rest of the
# match (key, scheme, quotes) stays readable. A rule without such a group masks its whole match.
#
# Speed: Python's ``re`` finds candidates fast only when a pattern starts with a literal, so every rule
# starts with one and checks what precedes it with a look-behind placed after that literal. Started
# with the look-behind, or joined into one big alternation, the same rules run about ten times slower.


def _word(pattern: str) -> str:
    """``pattern`` where its leading literal does not continue a longer word.

    "_" and "-" may precede it (MYSQL_PASSWORD=, x-api-key:), a letter or digit may not (mytoken=).
    The leading run of ``[a-z0-9_]`` is taken as the literal, so it must not end in a quantified
    character.
    """
    literal = re.match("[a-z0-9_]*", pattern).group()
    return f"{literal}(?<![a-z0-9]{literal}){pattern[len(literal) :]}"


# Key names whose value is secret in "key=value", "key: value" and '"key": "value"' text. "token" and
# "secret" also cover access_token, client_secret... as the name may follow "_" or "-". "key" alone is
# secret only as a query parameter (?key=) or a quoted mapping key ("key": ...): elsewhere it is a
# column, a word in SQL, a sort key.
_SECRET_NAMES = (
    "passw(?:or)?d", "pwd", "secret(?:[-_]?key)?", "token", "api[-_]?key", "private[-_]?key",
    "role[-_]?key", "anon[-_]?key", "access[-_]?key", "connection[-_]?string", "dsn",
)  # fmt: skip
# The name must end there (password_hash, tokens are not secrets); then a quoted value, which may
# contain escapes, or a bare value up to a separator or bracket ('"token": {...}' is a nested object,
# not a value to cut in half). Only spaces and tabs around ":" or "=": a YAML "password:" heading a
# nested block must not take the next line as its value.
_KEY_VALUE = (
    r"(?![a-z0-9_-])(?P<kq>\\?[\"'])?[ \t]*[:=][ \t]*"
    r"(?:(?P<q>\\?[\"'])(?P<v>(?:\\.|(?!(?P=q))[^\\\n])*?)(?P=q)"
    r"|(?P<bare>(?:\$\{[^}\s]*\}|[^\s\"'\\&;,(){}[\]<>])+))"
)
_RULE_SOURCES = (
    # "Authorization: Bearer x", '"Authorization": "Basic x"', 'authorization=Token x'.
    _word(r"authorization(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?(?:(?:bearer|basic|token|digest)[ \t]+)?")
    + r"(?P<v>[^\s\"'\\,;)}\]<>]+)",
    # A bearer token outside a header: a curl command, an error message.
    _word(r"bearer[ \t]+(?P<v>[a-z0-9._~+/-]{8,}=*)"),
    *(_word(name + _KEY_VALUE) for name in _SECRET_NAMES),
    r"key(?<=[?&]key)" + _KEY_VALUE,
    r"key(?<=[\"']key)(?=\\?[\"'])" + _KEY_VALUE,
    # scheme://user:password@host, any scheme (postgresql, mysql+pymysql, redis, https...). The password
    # runs to the last "@" before a space or quote, so an unescaped "@" or "/" in it is still covered.
    r"://[^\s:/?#@\"'<>]*:(?P<v>[^\s\"'<>]+)@",
    # A JWT: header.payload.signature; an empty signature (alg "none") is still a token.
    _word(r"eyj[a-z0-9_-]{5,}\.[a-z0-9_-]{2,}\.[a-z0-9_-]*"),
    # Vendor tokens that announce themselves by their prefix: Supabase, E2B, GitHub.
    _word("sb_secret_[a-z0-9_-]{8,}"),
    _word("sb_publishable_[a-z0-9_-]{8,}"),
    _word("e2b_[0-9a-f]{20,}"),
    _word("gh[opsur]_[a-z0-9]{20,}"),
    _word("github_pat_[a-z0-9_]{20,}"),
)
# Each rule with its leading literal: a rule whose literal is not in the text cannot match, and "in" is
# much cheaper than a regex pass (most strings, such as event fields, contain none of the literals).
_RULES = tuple((re.match("[a-z0-9_:/]+", source).group(), re.compile(source)) for source in _RULE_SOURCES)
# An unquoted value that is a JSON or Python literal is not a secret ('"token": null').
_NOT_SECRETS = frozenset({"null", "true", "false", "none", MASK})


def _value_group(match: re.Match[str]) -> str | int:
    for name in ("v", "bare"):
        if name in match.re.groupindex and match.start(name) >= 0:
            return name
    return 0  # the whole match


def _pattern_edits(text: str) -> list[tuple[int, int, str]]:
    """(start, end, replacement) for every secret-shaped span in ``text``."""
    lowered = text.lower()
    if len(lowered) != len(text):
        # Only "İ" lower-cases to two characters; swap it so that positions line up again.
        lowered = text.replace("\u0130", "I").lower()
    edits: list[tuple[int, int, str]] = []
    for literal, rule in _RULES:
        if literal not in lowered:
            continue
        for match in rule.finditer(lowered):
            group = _value_group(match)
            start, end = match.span(group)
            value = text[start:end]
            if not value or value.lower() in _NOT_SECRETS or is_reference(value):
                continue
            if text.startswith("${{", start):  # a workflow's `${{ secrets.X }}`: a name, no value
                continue
            mask = MASK
            if group == "bare" and match.group("kq"):
                # '"password": 123456' is JSON: a bare *** would make the line unparseable.
                mask = match.group("kq") + MASK + match.group("kq")
            edits.append((start, end, mask))
    return edits


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with the edits applied; overlapping edits (a JWT inside a header) mask their union."""
    if not edits:
        return text
    edits.sort()
    out: list[str] = []
    pos = 0
    start, end, mask = edits[0]
    for next_start, next_end, next_mask in edits[1:]:
        if next_start < end:
            end, mask = max(end, next_end), MASK
            continue
        out += (text[pos:start], mask)
        pos = end
        start, end, mask = next_start, next_end, next_mask
    out += (text[pos:start], mask, text[end:])
    return "".join(out)


# --- the known-value layer ------------------------------------------------------------------------------
def _utf8(value: str) -> bytes:
    # Environment values may carry surrogate escapes for bytes that are not UTF-8; encode them back to
    # the bytes the process was given, which is what an encoder inside a driver would see.
    return value.encode("utf-8", "surrogateescape")


# How a string is printed by the code paths a secret may travel through. Each function returns the form
# the whole value takes; a form that cannot be built for a value (lone surrogates) is skipped.
_TEXT_FORMS: tuple[Callable[[str], str], ...] = (
    lambda s: s,
    lambda s: quote(s, safe=""),  # a DSN's userinfo, built properly
    lambda s: quote(s),  # urllib's default keeps "/"
    quote_plus,  # form bodies and query strings
    lambda s: quote(s, safe=" +"),  # quoting that leaves spaces and "+" alone
    lambda s: re.sub(r"[:@/]", lambda m: f"%{ord(m.group()):02X}", s),  # SQLAlchemy 1.x: only ":@/"
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),  # encoders that escape "/" (PHP, some loggers)
    lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1],  # a JSON document logged inside a JSON string
    lambda s: repr(s)[1:-1],
    lambda s: s.encode("unicode_escape").decode("ascii"),
    lambda s: repr(_utf8(s))[2:-1],  # a bytes object printed by a subprocess wrapper
)


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 text a value produces, wherever it sits in the encoded data.

    base64 turns 3 bytes into 4 characters, so the characters a value produces depend on its offset
    modulo 3 in the encoded data: alone it starts a group, in "user:secret" (HTTP Basic auth) it may
    start at any of the three positions. For each offset we drop the 0-2 leading bytes that share a
    group with whatever precedes the value and encode the rest. That leaves at most two bytes of the
    value visible in the neighbouring characters, which does not reveal it.
    """
    forms: set[str] = set()
    for skip in range(3):
        tail = raw[skip:]
        if len(tail) < MIN_SECRET_LEN:
            continue
        whole_groups = len(tail) // 3 * 3
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            padded = encode(tail).decode("ascii")
            forms.add(padded)  # the value ends the encoded data
            forms.add(padded.rstrip("="))  # ... without padding, as base64url in JWTs
            if whole_groups >= MIN_SECRET_LEN:
                # Followed by more data: only the complete groups are fixed by the value alone.
                forms.add(encode(tail[:whole_groups]).decode("ascii"))
    return forms


def _forms(secret: str) -> set[str]:
    forms: set[str] = set()
    for form in _TEXT_FORMS:
        try:
            forms.add(form(secret))
        except UnicodeError:
            continue
    forms |= _base64_forms(_utf8(secret))
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


def _trie_regex(words: Iterable[str]) -> str:
    """A regex matching any of ``words``, longest first, shaped as a trie.

    Python's ``re`` tries the branches of an alternation one by one at every position; a flat list of a
    few hundred encoded forms would cost that many comparisons per character. Sharing prefixes keeps
    the work per position to one branch per distinct next character.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        # Runs of single characters are written out in a loop, not recursively: a long secret's base64
        # would otherwise nest one call per character and hit the recursion limit.
        chain = ""
        while len(node) == 1 and "" not in node:
            ((char, node),) = node.items()
            chain += re.escape(char)
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return chain
        # A greedy "?" after a word that ends here: a longer value starting with a shorter one is
        # masked whole.
        return chain + "(?:" + "|".join(branches) + ")" + ("?" if "" in node else "")

    return build(root)


class Redactor:
    """Masks secrets in text and data on their way out of the process.

    ``Redactor(secrets)`` knows the given values; :meth:`add` teaches it more (a value resolved later).
    ``enabled`` is the pattern layer: ``None`` reads ``E2B_LOG_REDACT``. Known values are masked
    whatever ``enabled`` says. A redactor may be shared between threads (a reader thread redacting
    events while the main thread adds values).
    """

    __slots__ = ("_forms", "_known", "_lock", "_secrets", "_stale", "enabled")

    def __init__(self, secrets: Iterable[str] = (), *, enabled: bool | None = None) -> None:
        if isinstance(secrets, str):
            # Iterating a string would "know" its characters, all too short to mask: nothing at all.
            raise TypeError("Redactor(secrets) takes an iterable of values, not a single string")
        self.enabled = patterns_enabled() if enabled is None else enabled
        self._secrets: frozenset[str] = frozenset()
        self._forms: frozenset[str] = frozenset()
        self._known: re.Pattern[str] | None = None
        self._stale = False
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def __repr__(self) -> str:
        # Never the values: a redactor printed in a traceback must not be the leak.
        return f"Redactor({len(self._secrets)} known values, patterns {'on' if self.enabled else 'off'})"

    @property
    def secrets(self) -> frozenset[str]:
        """The known values (for the runner's ``::add-mask::``; never print them)."""
        return self._secrets

    def add(self, value: str | int) -> None:
        """Treat ``value`` as secret from now on (ignored when too short to mask safely)."""
        # The matcher is rebuilt on the next redaction, not here: values usually arrive one by one while
        # a run resolves its connections, and each rebuild costs milliseconds of start-up.
        with self._lock:
            self._stale |= self._remember(value)

    def _remember(self, value: str | int) -> bool:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # YAML reads "password: 123456" as a number
        if not isinstance(value, str):
            return False
        # A value read from a file often carries its newline; the stripped value is what gets printed.
        candidates = {value, value.strip()}
        # A multi-line secret (a PEM key, a JSON key file) is printed a line at a time as often as
        # whole: each line is a secret of its own, as the runner's masker treats it.
        candidates |= {line.strip() for line in value.splitlines()}
        candidates -= self._secrets
        new = {v for v in candidates if len(v) >= MIN_SECRET_LEN and not v.isspace()}
        if not new:
            return False
        self._secrets |= new
        for secret in new:
            self._forms |= _forms(secret)
        return True

    # --- text -------------------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with every known value and, when enabled, every secret-shaped value masked."""
        text = self._redact_known(text)
        if self.enabled:
            text = _apply(text, _pattern_edits(text))
        return text

    def _redact_known(self, text: str) -> str:
        if self._stale:
            with self._lock:
                if self._stale:
                    self._known = re.compile(_trie_regex(self._forms))
                    self._stale = False
        known = self._known
        if known is None:
            return text
        while True:
            masked = _mask_spans(known, text)
            # Masking can glue the neighbours of a value to the marker into another value (a secret
            # "ab**" next to "ab" + "***"). Each pass shortens the text, so this ends.
            if masked == text:
                return text
            text = masked

    # --- data -------------------------------------------------------------------------------------------
    def redact_obj(self, obj: Any) -> Any:
        """A copy of a JSON-like structure with secrets masked.

        Values under secret-named keys (:func:`is_secret_key`) become ``***`` unless they are ``${ENV}``
        or ``@family.alias`` references; every string, keys included, passes through :meth:`redact`.
        Other objects are returned as they are.
        """
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self._key(k): self._value_under(k, v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.redact_obj(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_obj(item) for item in obj)
        return obj

    def _key(self, key: Any) -> Any:
        return self.redact(key) if isinstance(key, str) else key

    def _value_under(self, key: Any, value: Any) -> Any:
        if not (isinstance(key, str) and is_secret_key(key)):
            return self.redact_obj(value)
        if isinstance(value, str):
            return self.redact(value) if is_reference(value) else MASK
        # YAML reads "password: 123456" as a number; it is still the password.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return MASK
        if isinstance(value, list | tuple):
            return [self._value_under(key, item) for item in value]
        return self.redact_obj(value)

    # --- bytes and files ----------------------------------------------------------------------------------
    def redact_bytes(self, data: bytes) -> bytes:
        """``data`` redacted as UTF-8 text; bytes that are not UTF-8 pass through unchanged.

        Meant for text artifacts (logs, JSON, SQL, CSV). Masking changes lengths, so a binary format
        (Parquet, Arrow) would be corrupted: do not pass those here.
        """
        text = data.decode("utf-8", "surrogateescape")
        redacted = self.redact(text)
        return data if redacted == text else redacted.encode("utf-8", "surrogateescape")

    def redact_file(self, path: str | os.PathLike[str]) -> bool:
        """Redact a text file in place; returns whether it changed (it is not rewritten otherwise)."""
        path = Path(path)
        data = path.read_bytes()
        redacted = self.redact_bytes(data)
        if redacted is data:
            return False
        path.write_bytes(redacted)
        return True


def _mask_spans(known: re.Pattern[str], text: str) -> str:
    """Replace every occurrence of a known form, merging overlapping ones.

    A plain ``sub`` would mask "abcdef" in "abcdefgh12" and leave "gh12" of an overlapping secret
    "cdefgh12" in clear; so a match is extended while the next one starts inside it. Searching on
    from just after a match's start costs nothing extra: without an overlap, that search finds the
    next match anyway.
    """
    out: list[str] = []
    pos = 0
    match = known.search(text)
    while match:
        start, end = match.span()
        match = known.search(text, start + 1)
        while match and match.start() < end:
            end = max(end, match.end())
            match = known.search(text, match.start() + 1)
        out += (text[pos:start], MASK)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# --- values from the data ------------------------------------------------------------------------------
# Database errors quote the rows they tripped on: Postgres `Key (email)=(a@b.c) already exists` and
# `Failing row contains (...)`, MySQL `Duplicate entry 'x' for key`, DuckDB `Could not convert string
# 'x' to INT32`. Such text is not a secret the redactor knows, but it is the data, and a pull request's
# comment may be public.
ELIDED = "…"
_DATA_VALUES = (
    (re.compile(r"(\bKey \([^)]*\)=)\((?:[^()]|\([^()]*\))*\)"), r"\1(" + ELIDED + ")"),
    (re.compile(r"(Failing row contains )\(.*\)"), r"\1(" + ELIDED + ")"),
    # a quoted value right after the word that introduces it: "string 'x'", "entry 'x'", "value: 'x'",
    # "for type integer: \"x\"", "Duplicate key \"note: x\""; our own quoting ("step 'x'") stays
    (
        re.compile(
            r"""((?:\b(?:string|value|entry|key|input|literal|row)\b|\btype \w+):?\s*)(['"])[^\n]*?\2"""
        ),
        r"\1\2" + ELIDED + r"\2",
    ),
)


def hide_data_values(text: str) -> str:
    """`text` (an error message) with the values it quotes from the data replaced by an ellipsis."""
    for pattern, replacement in _DATA_VALUES:
        text = pattern.sub(replacement, text)
    return text
