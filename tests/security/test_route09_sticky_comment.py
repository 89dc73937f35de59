"""Route 9: the sticky comment cannot be hijacked by posting its marker.

Anyone who can comment on a pull request can copy the hidden marker. The action must edit only a
comment written by its token's own identity (`github-actions[bot]` for a job's token, the login of a
personal token), and leave every other comment as it was.
"""

from __future__ import annotations

from tests.action.conftest import PR_NUMBER, REPOSITORY
from tests.security.conftest import assert_step_clean

MARKER = "<!-- osiris-run-pipeline:Osiris pipelines:pipelines -->"


def _run(world, canaries):
    return world.run("pull_request", {"mode": "compile", "comment": "always"}, env=canaries.env())


def test_a_strangers_comment_with_the_marker_is_never_edited(runner_world, canaries):
    runner_world.setup()
    planted = runner_world.api.add_comment(
        REPOSITORY, PR_NUMBER, f"Ping @everyone, approved! {MARKER}", login="mallory"
    )
    result = _run(runner_world, canaries)
    assert result.returncode == 0, result.explain()
    comments = runner_world.api.comments(REPOSITORY, PR_NUMBER)
    assert next(c for c in comments if c["id"] == planted["id"])["body"] == planted["body"]
    ours = [c for c in comments if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 1 and "Osiris pipelines" in ours[0]["body"]
    assert not [r for r in runner_world.api.state.requests if r.method == "PATCH"]
    # the next run updates its own comment, still not the stranger's
    result = _run(runner_world, canaries)
    assert len(runner_world.api.comments(REPOSITORY, PR_NUMBER)) == 2
    assert_step_clean(canaries, runner_world, result)


def test_a_personal_token_edits_only_its_own_comment(runner_world, canaries):
    runner_world.setup()
    runner_world.api.state.user_login = "ci-bot"
    bots = runner_world.api.add_comment(REPOSITORY, PR_NUMBER, f"old {MARKER}")  # github-actions[bot]
    result = _run(runner_world, canaries)
    assert result.returncode == 0, result.explain()
    comments = runner_world.api.comments(REPOSITORY, PR_NUMBER)
    assert next(c for c in comments if c["id"] == bots["id"])["body"] == bots["body"]
    assert [c["user"]["login"] for c in comments] == ["github-actions[bot]", "ci-bot"]
    assert_step_clean(canaries, runner_world, result)
