"""Which files a pull request changed: git diff of base...head, with the REST API as fallback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from osiris_action.github.event import Event


def _git(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(workspace), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _have(workspace: Path, sha: str) -> bool:
    return _git(workspace, "cat-file", "-e", f"{sha}^{{commit}}").returncode == 0


def changed_files(workspace: Path, event: Event, token: str | None, env=None) -> tuple[list[str], str]:
    """(paths relative to the workspace, how they were found). Raises nothing: an empty list with
    the reason when neither git nor the API could tell."""
    base, head = event.base_sha, event.head_sha
    if base and head:
        for sha in (base, head):
            if not _have(workspace, sha):  # shallow checkouts lack the base commit: fetch just it
                _git(workspace, "fetch", "--no-tags", "--depth=1", "origin", sha)
        if _have(workspace, base) and _have(workspace, head):
            merge_base = _git(workspace, "merge-base", base, head)
            start = merge_base.stdout.strip() if merge_base.returncode == 0 else base
            # -z: without it git quotes and escapes unusual paths ("caf\303\251.yaml").
            diff = _git(workspace, "diff", "--name-only", "-z", "--no-renames", start, head)
            if diff.returncode == 0:
                return sorted(p for p in diff.stdout.split("\0") if p), "git diff"
    if event.repository and event.pr_number:
        from osiris_action.github.rest import GitHubClient, GitHubError  # httpx: only when git cannot tell

        try:
            with (
                GitHubClient.from_env(token, env) if env is not None else GitHubClient.from_env(token) as api
            ):
                files = api.list_pr_files(event.repository, event.pr_number)
            return sorted(f["filename"] for f in files), "GitHub API"
        except GitHubError as exc:
            return [], f"could not list the pull request's files ({exc})"
    return [], "no base and head commits in the event"
