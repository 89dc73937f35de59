"""Canary secrets, and the one check every security test ends with: no canary anywhere.

A canary is a random value put where a real secret would be (the runner's token, the E2B key, a step
secret, a host file). An attack that works carries it somewhere a pipeline author can read it: the
log, an output, the summary, the pull request comment or a file of the run. A value can also leave in
disguise, so each canary is looked for in every form an encoder or an attacker would give it: as it
is, reversed, base64 (at each of the three alignments, standard and URL-safe) and hex (both cases).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


def new(label: str) -> str:
    """A value nothing else contains; `label` says which secret it stands for when a check fails."""
    return f"cnry{label}{secrets.token_hex(12)}"


def forms(value: str) -> dict[str, bytes]:
    """The byte strings that betray `value`, by name of the disguise."""
    raw = value.encode()
    found = {"raw": raw, "reversed": raw[::-1], "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode()}
    for skip in range(3):
        # The characters fixed by the value alone: drop the bytes that share a group with neighbours.
        tail = raw[skip:]
        whole = len(tail) // 3 * 3
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            found[f"{name}+{skip}"] = encode(tail[:whole])
    return found


@dataclass
class Canaries:
    """Named canary values; `env` puts them where the runner would put the real secrets."""

    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, *names: str) -> Canaries:
        return cls({name: new(name.replace("_", "").lower()[:10]) for name in names})

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def env(self) -> dict[str, str]:
        return dict(self.values)


def leaks(canaries: Mapping[str, str], data: bytes) -> list[str]:
    """'NAME as FORM' for every canary form found in `data`."""
    return [
        f"{name} as {how}"
        for name, value in canaries.items()
        for how, form in forms(value).items()
        if form in data
    ]


def assert_nowhere(
    canaries: Canaries | Mapping[str, str],
    *,
    texts: Mapping[str, str | bytes] | None = None,
    folders: Iterable[Path] = (),
    skip: Iterable[Path] = (),
) -> None:
    """Fail, naming the place and the form, if any canary shows in `texts` or in a file under `folders`.

    `texts` are the streams a test captured (stdout, stderr, GITHUB_OUTPUT, the summary, comment
    bodies); `folders` are searched recursively (symlinks are not followed: a link the attacker planted
    is not a leak by itself, what the run wrote is). Files under `skip` (a `.git` folder) are left out.
    """
    values = canaries.values if isinstance(canaries, Canaries) else dict(canaries)
    skipped = [p.resolve() for p in skip]
    found: list[str] = []
    for where, text in (texts or {}).items():
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        found += [f"{where}: {leak}" for leak in leaks(values, data)]
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            if any(path.resolve().is_relative_to(s) for s in skipped):
                continue
            found += [f"{path}: {leak}" for leak in leaks(values, path.read_bytes())]
    assert not found, "canary leaked:\n" + "\n".join(found)
