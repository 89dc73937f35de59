"""The sticky pull request comment, against a local server speaking GitHub's REST API."""

from __future__ import annotations

from tests.action.conftest import ORDERS_SUMMARY, PR_NUMBER, REPOSITORY, RunnerWorld

MARKER = "<!-- osiris-run-pipeline:Osiris pipelines:pipelines -->"


def test_comment_always_creates_one_comment_then_updates_it(runner_world: RunnerWorld) -> None:
    api = runner_world.api
    # Someone else's comment, and ours from another job of a matrix: neither may be touched.
    api.add_comment(REPOSITORY, PR_NUMBER, "LGTM", login="alice")
    other_job = "<!-- osiris-run-pipeline:Osiris pipelines:lint -->"
    other = api.add_comment(REPOSITORY, PR_NUMBER, f"other\n{other_job}")

    first = runner_world.run("pull_request", {"mode": "validate", "comment": "always"})
    assert first.returncode == 0, first.explain()
    assert not first.of_level("warning")
    comments = api.comments(REPOSITORY, PR_NUMBER)
    ours = [c for c in comments if MARKER in c["body"]]
    assert len(comments) == 3 and len(ours) == 1
    (created,) = ours
    assert created["body"].startswith("## ✅ Osiris pipelines: success")
    assert "mode validate" in created["body"]
    assert created["body"].rstrip().endswith(MARKER)
    (post,) = api.state.writes()
    assert (post.method, post.path) == ("POST", f"/repos/{REPOSITORY}/issues/{PR_NUMBER}/comments")
    assert post.headers["authorization"] == f"Bearer {runner_world.token}"
    assert post.headers["x-github-api-version"] == "2022-11-28"
    assert runner_world.token not in post.body["body"]

    second = runner_world.run("pull_request", {"mode": "compile", "comment": "always"})
    assert second.returncode == 0, second.explain()
    comments = api.comments(REPOSITORY, PR_NUMBER)
    assert len(comments) == 3, "updated in place, not a second comment"
    (updated,) = [c for c in comments if MARKER in c["body"]]
    assert updated["id"] == created["id"]
    assert "mode compile" in updated["body"] and "compiled" in updated["body"]
    assert next(c for c in comments if c["id"] == other["id"])["body"] == other["body"]
    patch = api.state.writes()[-1]
    assert (patch.method, patch.path) == ("PATCH", f"/repos/{REPOSITORY}/issues/comments/{created['id']}")


def test_comment_on_failure_stays_quiet_on_success(runner_world: RunnerWorld) -> None:
    result = runner_world.run("pull_request", {"mode": "validate", "comment": "on-failure"})
    assert result.returncode == 0, result.explain()
    assert runner_world.api.comments(REPOSITORY, PR_NUMBER) == []
    assert not runner_world.api.state.requests


def test_comment_on_failure_comments_on_failure(runner_world: RunnerWorld) -> None:
    broken = ORDERS_SUMMARY.replace("component: duckdb.processor", "component: duckdb.procesor")
    runner_world.setup(head={"pipelines/orders-summary.yaml": broken})
    result = runner_world.run("pull_request", {"mode": "validate", "comment": "on-failure"})
    assert result.returncode == 1, result.explain()
    (comment,) = runner_world.api.comments(REPOSITORY, PR_NUMBER)
    assert comment["body"].startswith("## ❌ Osiris pipelines: failure")
    assert MARKER in comment["body"]


def test_a_403_is_a_warning_not_a_failure(runner_world: RunnerWorld) -> None:
    runner_world.api.state.forbidden = True  # a fork's read-only token, or no pull-requests: write
    result = runner_world.run("pull_request_fork", {"mode": "validate", "comment": "always"})
    assert result.returncode == 0, result.explain()
    assert result.outputs["status"] == "success"
    (warning,) = result.of_level("warning")
    assert warning.title == "PR comment skipped"
    assert "403" in warning.message and "pull-requests: write" in warning.message
    assert not result.of_level("error")
    # who the token is (refused), then the comments (refused): no write attempted
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in runner_world.api.state.requests] == [
        ("GET", "user"),
        ("GET", "comments"),
    ]


def test_no_comment_outside_pull_requests(runner_world: RunnerWorld) -> None:
    runner_world.setup(checkout="main")
    result = runner_world.run("workflow_dispatch", {"mode": "validate", "comment": "always"})
    assert result.returncode == 0, result.explain()
    assert not runner_world.api.state.requests
