"""What triggered the run, from `GITHUB_EVENT_NAME` and the payload at `GITHUB_EVENT_PATH`.

Only the fields the action decides on: which pull request and commits to compare, whether the
token is read-only and secrets are absent (fork or Dependabot pull requests), and whether the pull
request was closed (clean-up). A missing payload is an empty one, so a local or `workflow_dispatch`
run works with whatever the environment gives.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEPENDABOT = "dependabot[bot]"
# Events that run the base branch's workflow with secrets and a writable token, whatever the pull
# request: code of a fork must never run, plan or clean up under them.
PRIVILEGED = frozenset({"pull_request_target", "issue_comment", "workflow_run"})


@dataclass(frozen=True)
class Event:
    """The trigger; pull-request fields are None for other events. `payload` holds the rest."""

    name: str = ""
    action: str | None = None
    repository: str | None = None
    ref: str | None = None
    sha: str | None = None
    actor: str | None = None
    pr_number: int | None = None
    pr_author: str | None = None
    base_sha: str | None = None
    head_sha: str | None = None
    base_ref: str | None = None
    head_ref: str | None = None
    base_repo: str | None = None
    head_repo: str | None = None
    private: bool | None = None  # the repository's visibility, when the payload says
    pr_known: bool = False  # the payload carried the pull request's head and base
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_pull_request(self) -> bool:
        return self.pr_number is not None

    @property
    def is_privileged(self) -> bool:
        return self.name in PRIVILEGED

    @property
    def is_fork(self) -> bool:
        """Head repository differs from the base. Unknown counts as a fork: a deleted fork (no head
        repo), or a pull request whose head and base neither the payload nor the API told."""
        if not self.is_pull_request:
            return False
        if self.base_repo is None or self.head_repo is None:
            return True
        return self.head_repo.lower() != self.base_repo.lower()

    def with_pull_request(self, pr: Mapping[str, Any]) -> Event:
        """This event completed with the pull request as the REST API returns it."""
        base, head = _obj(pr.get("base")), _obj(pr.get("head"))
        return replace(
            self,
            pr_author=self.pr_author or _str(_obj(pr.get("user")).get("login")),
            base_sha=_str(base.get("sha")),
            head_sha=_str(head.get("sha")),
            base_ref=_str(base.get("ref")),
            head_ref=_str(head.get("ref")),
            base_repo=_str(_obj(base.get("repo")).get("full_name")),
            head_repo=_str(_obj(head.get("repo")).get("full_name")),
            pr_known=bool(base and head),
        )

    @property
    def is_dependabot(self) -> bool:
        return DEPENDABOT in (self.actor, self.pr_author)


def load_event(env: Mapping[str, str] = os.environ) -> Event:
    """Read the event; a missing or empty file gives an empty payload, invalid JSON an error."""
    path = env.get("GITHUB_EVENT_PATH", "")
    payload: Any = {}
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if text.strip():
            try:
                payload = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"GITHUB_EVENT_PATH {path} is not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise ValueError(f"GITHUB_EVENT_PATH {path} does not hold a JSON object")
    return event_from_payload(env.get("GITHUB_EVENT_NAME", ""), payload, env)


def event_from_payload(name: str, payload: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Event:
    """Build an `Event`; `GITHUB_*` variables in `env` win over the same fields of the payload."""
    env = env or {}
    pr = _obj(payload.get("pull_request"))
    issue = _obj(payload.get("issue"))
    repository = _obj(payload.get("repository"))
    base, head = _obj(pr.get("base")), _obj(pr.get("head"))
    number = pr.get("number", payload.get("number") if pr else None)
    if number is None and "pull_request" in issue:
        number = issue.get("number")  # a comment on a pull request
    run = _obj(payload.get("workflow_run"))
    if run:
        # The run's own head: a fork's pull request is listed in `pull_requests` only for the base
        # repository's own branches, so the head repository is what tells.
        pulls = [p for p in run.get("pull_requests") or [] if isinstance(p, Mapping)]
        number = pulls[0].get("number") if pulls else (0 if run.get("event") == "pull_request" else None)
        base = {"repo": _obj(run.get("repository")) or repository}
        head = {"repo": _obj(run.get("head_repository")), "sha": run.get("head_sha")}
    private = repository.get("private")
    return Event(
        name=name,
        action=_str(payload.get("action")),
        repository=env.get("GITHUB_REPOSITORY") or _str(_obj(payload.get("repository")).get("full_name")),
        ref=env.get("GITHUB_REF") or _str(payload.get("ref")),
        sha=env.get("GITHUB_SHA") or _str(payload.get("after")),
        actor=env.get("GITHUB_ACTOR") or _str(_obj(payload.get("sender")).get("login")),
        pr_number=int(number) if number is not None else None,
        pr_author=_str(_obj(pr.get("user") or issue.get("user")).get("login")),
        base_sha=_str(base.get("sha")),
        head_sha=_str(head.get("sha")),
        base_ref=_str(base.get("ref")),
        head_ref=_str(head.get("ref")),
        base_repo=_str(_obj(base.get("repo")).get("full_name")),
        head_repo=_str(_obj(head.get("repo")).get("full_name")),
        private=private if isinstance(private, bool) else None,
        pr_known=bool(base and head),
        payload=payload,
    )


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
